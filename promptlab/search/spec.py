"""The ``[search]`` table of an experiment file: the pool of terms, the weights, the budget, checked up front.

An experiment file with a ``[search]`` table describes the starting prompt as any experiment does
(``model``, ``[params]``, ``[prompt]`` subject, intent and fixed terms) and what the search may use::

    [search]
    budget = 400                      # images in all: the rounds and the confirmation
    scorer = "micro-judge"            # what the candidates are ranked by (default: the file's scorer)
    categories = ["artist", "site"]   # every term of these vocabulary categories joins the pool
    max_terms = 5                     # terms in a prompt at most (default: one per group)
    weights = [0.8, 1.3]              # the weight range, searched in steps of 0.1 (default [1.0, 1.0])
    order = false                     # true: the search also moves terms within the prompt
    method = "halving"                # or "random": random search with the same budget (a baseline)
    seed = 0                          # the search's random seed: candidates and seeds follow from it
    confirm_seeds = 16                # fresh seeds the winner and the start prompt are compared on

    [search.terms]                    # more terms, by group: a vocabulary category or a name of your own
    color = ["red", "blue"]
    background = ["on a sky blue background", "on a black background"]

A group contributes at most one term to a prompt, as an experiment's category axis does.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from promptlab.errors import ExperimentError, PromptlabError, PromptSyntaxError, SearchError, VocabError
from promptlab.experiment import ExperimentSpec, parse_experiment, to_toml
from promptlab.experiment.check import Checker
from promptlab.prompt import Prompt, Term
from promptlab.render.params import MAX_WEIGHT
from promptlab.tokens import CLIP_WINDOW, count_tokens
from promptlab.vocab import FORBIDDEN_TERM_CHARS, Vocabulary, load_vocab

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

SEARCH_KEYS = (
    "budget", "scorer", "categories", "terms", "max_terms", "weights", "order", "method", "seed",
    "confirm_seeds", "population", "round_seeds",
)  # fmt: skip
METHODS: tuple[str, ...] = ("halving", "random")
#: Weights are searched on this grid inside the file's range.
WEIGHT_STEP = 0.1
DEFAULT_CONFIRM_SEEDS = 16
#: Candidates per round, and new seeds each round's candidates are all rendered on.
DEFAULT_POPULATION = 16
DEFAULT_ROUND_SEEDS = 2
# Keys an experiment file has that a search decides itself.
_NOT_IN_A_SEARCH = {
    "axes": "the search chooses the terms; list them in [search.terms] or [search] categories",
    "seeds": "the search draws its own seeds (set [search] seed and confirm_seeds)",
    "strategy": "the search is its own strategy ([search] method)",
    "subjects": "a search starts from one subject: [prompt] subject",
}


@dataclass(frozen=True)
class SearchSpec:
    """A validated search: the experiment it records into, the pool of terms by group, and its limits."""

    experiment: ExperimentSpec
    groups: dict[str, tuple[str, ...]]
    budget: int
    scorer: str
    max_terms: int
    weights: tuple[float, ...]
    order: bool
    method: str
    seed: int
    confirm_seeds: int
    population: int
    round_seeds: int

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def intent(self) -> str:
        return self.experiment.intent_for(self.experiment.subjects[0])

    @property
    def start(self) -> tuple[Term, ...]:
        """The starting prompt's terms: the file's fixed terms."""
        return self.experiment.terms

    @property
    def confirmation_images(self) -> int:
        """Images the confirmation takes: the winner and the start prompt on each confirmation seed."""
        return 2 * self.confirm_seeds

    @property
    def round_images(self) -> int:
        return self.population * self.round_seeds

    @property
    def pool_size(self) -> int:
        return sum(len(terms) for terms in self.groups.values())


def load_search(path: str | Path, *, vocab: Vocabulary | None = None) -> SearchSpec:
    """Read and check a search file; SearchError (or ExperimentError) names the key, the value and the fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SearchError(f"cannot read search file {path}: {exc}") from exc
    return parse_search(text, path, vocab=vocab)


def parse_search(text: str, source: str | Path = "<search>", *, vocab: Vocabulary | None = None) -> SearchSpec:
    """Check a search file's text: the experiment part by the experiment rules, then the ``[search]`` table.

    Every check that can fail does so here, before any image is rendered: an empty pool, a
    budget smaller than one round and the confirmation, an intent longer than the scorer reads.
    """
    # 1. The experiment part, and which of its keys a search decides itself.
    name = str(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{name}: invalid TOML: {exc}") from exc
    check = Checker(name)
    table = check.table(raw, "search", required=True)
    check.keys(table, SEARCH_KEYS, "[search]")
    for key, why in _NOT_IN_A_SEARCH.items():
        if key in raw:
            raise SearchError(f"{name}: {key}: not in a search file; {why}")
    try:
        vocab = vocab or load_vocab()
    except VocabError as exc:
        raise SearchError(f"{name}: cannot load the vocabulary: {exc}") from exc
    experiment = parse_experiment(text, source, vocab=vocab)

    # 2. The pool: vocabulary categories whole, then the listed terms by group; the start's terms join it.
    groups = _pool(check, table, vocab, experiment.terms)
    if not any(groups.values()):
        raise SearchError(
            f"{name}: [search] the pool of terms is empty: name vocabulary categories "
            '(categories = ["color"]) or terms ([search.terms] color = ["red"])'
        )

    # 3. Weights, sizes, method and seeds.
    weights = _weights(check, table)
    max_terms = check.integer(table, "max_terms", "[search]", minimum=1) or len(groups)
    method = check.choice(table, "method", METHODS, "[search]", default="halving")
    population = check.integer(table, "population", "[search]", minimum=2) or DEFAULT_POPULATION
    round_seeds = check.integer(table, "round_seeds", "[search]", minimum=1) or DEFAULT_ROUND_SEEDS
    confirm_seeds = check.integer(table, "confirm_seeds", "[search]", minimum=2) or DEFAULT_CONFIRM_SEEDS
    order = table.get("order", False)
    if not isinstance(order, bool):
        check.fail("[search] order", order, "true or false")
    scorer = check.string(table, "scorer", "[search]", nonempty=True) or experiment.scorer
    spec = SearchSpec(
        experiment=replace(experiment, scorer=scorer),
        groups=groups,
        budget=check.integer(table, "budget", "[search]", minimum=1, required=True),
        scorer=scorer,
        max_terms=max_terms,
        weights=weights,
        order=order,
        method=method,
        seed=check.integer(table, "seed", "[search]", minimum=0) or 0,
        confirm_seeds=confirm_seeds,
        population=population,
        round_seeds=round_seeds,
    )

    # 4. The budget holds one round and the confirmation; the scorer can read the intent.
    smallest = spec.round_images + spec.confirmation_images
    if spec.budget < smallest:
        raise SearchError(
            f"{name}: [search] budget = {spec.budget}: smaller than one round ({spec.population} candidates x "
            f"{spec.round_seeds} seeds = {spec.round_images} images) and the confirmation ({spec.confirm_seeds} "
            f"seeds x 2 prompts = {spec.confirmation_images}); set budget >= {smallest} or lower population, "
            "round_seeds or confirm_seeds"
        )
    _check_intent(name, spec.intent)
    return spec


def _pool(check: Checker, table: Mapping[str, Any], vocab: Vocabulary, start: tuple[Term, ...]) -> dict[str, tuple[str, ...]]:
    groups: dict[str, list[str]] = {}
    for category in check.string_list(table, "categories", "[search]") or []:
        if category not in vocab.categories:
            check.fail("[search] categories", category, f"a vocabulary category: one of {', '.join(vocab.categories)}")
        groups[category] = [term.text for term in vocab.categories[category].terms]
    listed = table.get("terms", {})
    if not isinstance(listed, dict):
        check.fail("[search] terms", listed, 'a table of group = ["term", ...], e.g. [search.terms] color = ["red"]')
    for group, texts in listed.items():
        where = f"[search.terms] {group}"
        if not isinstance(texts, list):
            check.fail(where, texts, 'a list of terms, e.g. ["red", "blue"]')
        for text in texts:
            _add(groups.setdefault(group, []), _pool_term(check, where, text))
    for term in start:
        _add(groups.setdefault(term.category, []), term.text)
    return {group: tuple(texts) for group, texts in groups.items()}


def _add(texts: list[str], text: str) -> None:
    if text.casefold() not in {t.casefold() for t in texts}:
        texts.append(text)


def _pool_term(check: Checker, where: str, text: Any) -> str:
    expected = "a term's text (the search picks its weight from [search] weights)"
    if not isinstance(text, str) or not text.strip():
        check.fail(where, text, expected)
    check.short(text, where)
    bad = sorted({c for c in text if c in FORBIDDEN_TERM_CHARS})
    if bad:
        check.fail(where, text, f"{expected}, without {' '.join(bad)}")
    try:
        Prompt("", (Term(text.strip()),)).to_compel()
    except PromptSyntaxError as exc:
        check.fail(where, text, f"text compel reads as written ({exc})")
    return text.strip()


def _weights(check: Checker, table: Mapping[str, Any]) -> tuple[float, ...]:
    value = table.get("weights", [1.0, 1.0])
    expected = f"[low, high]: a weight range from 0 to {MAX_WEIGHT:g}, e.g. [0.8, 1.3]"
    numbers = isinstance(value, list) and len(value) == 2
    numbers = numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not numbers or not 0 <= value[0] <= value[1] <= MAX_WEIGHT:
        check.fail("[search] weights", value, expected)
    low, high = (round(float(v), 1) for v in value)
    steps = round((high - low) / WEIGHT_STEP)
    grid = {round(low + i * WEIGHT_STEP, 1) for i in range(steps + 1)}
    return tuple(sorted(grid | ({1.0} if low <= 1.0 <= high else set())))


def _check_intent(name: str, intent: str) -> None:
    tokens = count_tokens(Prompt(intent)).total
    if tokens > CLIP_WINDOW:
        raise SearchError(
            f"{name}: [prompt] intent is {tokens} tokens: the scorer reads {CLIP_WINDOW} (CLIP's 77 less start and "
            "end); shorten the intent to what the image must show"
        )


#: Keys of an experiment file a search file leaves out (the search decides them).
DROPPED_KEYS = ("axes", "seeds", "strategy", "samples", "random_seed", "subjects")


def draft_search(
    raw: Mapping[str, Any],
    *,
    budget: int,
    categories: Sequence[str] = (),
    terms: Mapping[str, Sequence[str]] | None = None,
    scorer: str | None = None,
    max_terms: int | None = None,
    weights: tuple[float, float] = (1.0, 1.0),
    seed: int = 0,
    intent: str | None = None,
) -> dict[str, Any]:
    """A search file's parsed TOML from an experiment file's (the Build page's prompt and choices).

    The experiment's subject, intent (unless ``intent`` is given), fixed terms, model and parameters
    stay; its axes, seeds and strategy go, and the terms its category axes compared join the pool,
    by category, with ``terms``; ``parse_search(to_toml(...))`` reads the result. The name gains
    ``-search``.

    >>> raw = {"name": "stars", "model": "micro", "seeds": 4, "prompt": {"subject": "a star"},
    ...        "axes": {"color": ["red", "", "blue"]}}
    >>> draft = draft_search(raw, budget=200, categories=["artist"])
    >>> draft["name"], "axes" in draft, draft["search"]["terms"], draft["search"]["categories"]
    ('stars-search', False, {'color': ['red', 'blue']}, ['artist'])
    """
    draft = {key: value for key, value in raw.items() if key not in DROPPED_KEYS and key != "search"}
    draft["name"] = f"{raw.get('name', 'experiment')}-search"
    if intent:
        draft["prompt"] = {**dict(raw.get("prompt", {})), "intent": intent}
    pool: dict[str, list[str]] = {}
    for name, levels in dict(raw.get("axes", {})).items():
        if isinstance(levels, list) and all(isinstance(level, str) for level in levels) and name != "model":
            for level in levels:
                text = level.rsplit(":", 1)[0].strip() if ":" in level else level.strip()
                if text and text not in pool.setdefault(name, []):
                    pool[name].append(text)
    for group, texts in (terms or {}).items():
        for text in texts:
            if text.strip() and text.strip() not in pool.setdefault(group, []):
                pool[group].append(text.strip())
    table: dict[str, Any] = {"budget": budget}
    if scorer:
        table["scorer"] = scorer
    if categories:
        table["categories"] = list(categories)
    if max_terms:
        table["max_terms"] = max_terms
    if weights != (1.0, 1.0):
        table["weights"] = [float(weights[0]), float(weights[1])]
    table["seed"] = seed
    if pool:
        table["terms"] = {group: texts for group, texts in pool.items() if texts}
    draft["search"] = table
    return draft


def written_prompt(raw: Mapping[str, Any], vocab: Vocabulary | None = None) -> str:
    """What an experiment file's prompt says, weights aside: its first subject and its fixed terms, the
    intent a search aims for where the file gives none; the subject alone where the file does not read.

    >>> written_prompt({"name": "s", "model": "micro", "prompt": {"subject": "a star", "terms": {"color": ["red:1.2"]}}})
    'a star, red'
    """
    try:
        spec = parse_experiment(to_toml(raw), vocab=vocab)
    except PromptlabError:
        return str(dict(raw.get("prompt", {})).get("subject", ""))
    return Prompt(spec.subjects[0], spec.terms).to_plain()
