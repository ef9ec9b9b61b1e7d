"""Writing an experiment file: a parsed experiment's dict back to TOML text (through tomli-w), and the
dict for a prompt built from the vocabulary (the dashboard's Build page).

    >>> from promptlab.prompt import Prompt, Term
    >>> from promptlab.vocab import load_vocab
    >>> prompt = Prompt("a red fox", (Term("pop-art", 1.3, "style"), Term("oil painting", 1.0, "medium")))
    >>> print(to_toml(draft_experiment(prompt, name="fox", vocab=load_vocab())), end="")
    name = "fox"
    model = "micro"
    scorer = "micro-clip"
    seeds = 4
    <BLANKLINE>
    [params]
    width = 64
    height = 64
    <BLANKLINE>
    [prompt]
    subject = "a red fox"
    negative = ""
    negative_presets = []
    <BLANKLINE>
    [prompt.terms]
    style = [
        "pop-art:1.3",
    ]
    medium = [
        "oil painting",
    ]
    <BLANKLINE>
    [axes]
    order = [
        [
            "style",
            "medium",
        ],
    ]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from promptlab.errors import ExperimentError
from promptlab.experiment.spec import (
    ABSENT,
    MODEL_RULE,
    PARAMS,
    ExperimentSpec,
    default_scorer,
    term_spec,
)
from promptlab.prompt import Prompt, Term
from promptlab.vocab import Vocabulary

#: What a drafted experiment renders with until the user changes it: the built-in micro model, which
#: needs no download and renders a 64x64 image in about 0.3 s on a CPU, and 4 seeds.
DRAFT_MODEL = "micro"
DRAFT_SEEDS = 4
#: The size a model is drafted with when the user names none: micro's own 64x64; any other model
#: gets its pipeline's own size. (Its scorer is the file's default for it: ``default_scorer``.)
DRAFT_SIZES: dict[str, int] = {"micro": 64}


def to_toml(experiment: ExperimentSpec | Mapping[str, Any]) -> str:
    """An experiment file's text: ``parse_experiment`` reads it back to the same spec.

    ``experiment`` is a spec (its ``raw``, the file as parsed) or such a dict: top-level keys, then
    tables (``[params]``, ``[prompt]``, ``[axes]``). A value TOML cannot hold raises ExperimentError.
    """
    raw = experiment.raw if isinstance(experiment, ExperimentSpec) else experiment
    name = raw.get("name", "the experiment")
    try:
        text = tomli_w.dumps(_plain(raw))
    except (TypeError, ValueError) as exc:
        raise ExperimentError(f"experiment {name!r}: cannot be written as TOML: {exc}") from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode()
        raise ExperimentError(
            f"experiment {name!r}: holds {bad}, a lone surrogate no UTF-8 file can hold; remove it"
        ) from None
    return text


def _plain(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, which is what tomli-w writes."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def draft_experiment(
    prompt: Prompt,
    *,
    name: str,
    vocab: Vocabulary,
    negative: str = "",
    negative_presets: Sequence[str] = (),
    syntax: str = "compel",
    model: str = DRAFT_MODEL,
    scorer: str | None = None,
    seeds: int = DRAFT_SEEDS,
) -> dict[str, Any]:
    """The experiment file (as a dict for ``to_toml``) that renders ``prompt``: its terms as fixed
    terms by category, in the prompt's order.

    ``model`` alone chooses the rest: micro (the default) is scored with micro-clip at 64x64, so the
    draft runs offline in seconds; another model gets ``draft_scorer(model)`` unless ``scorer`` is
    given (several, comma-separated, the ranking one first: ``scorer_keys``), and its pipeline's own size.

    An experiment orders categories, not single terms: where the prompt's categories are not in
    vocabulary order, an ``order`` axis of one level keeps them as they are (``order_terms`` makes
    sure a category's terms sit together). ``negative`` is written in ``syntax``.
    """
    terms: dict[str, list[str]] = {}
    for term in prompt.terms:
        if term.category is None:
            raise ExperimentError(f"term {term.text!r} has no category; an experiment file lists terms by category")
        terms.setdefault(term.category, []).append(term_spec(term))
    raw: dict[str, Any] = {"name": name, "model": model, **scorer_keys(scorer or draft_scorer(model)), "seeds": seeds}
    if model in DRAFT_SIZES:
        raw["params"] = {"width": DRAFT_SIZES[model], "height": DRAFT_SIZES[model]}
    raw |= {
        "prompt": {
            "subject": prompt.subject,
            "negative": negative,
            "negative_presets": list(negative_presets),
            "terms": terms,
        },
    }
    if syntax != "compel":
        raw["syntax"] = syntax
    if list(terms) != [category for category in vocab.categories if category in terms]:
        raw["axes"] = {"order": [list(terms)]}
    return raw


def scorer_keys(text: str) -> dict[str, Any]:
    """An experiment file's scorer key(s) for ``text``: one name, or several comma-separated (the ranking one first).

    >>> scorer_keys("micro-clip"), scorer_keys(" micro-clip, micro-judge "), scorer_keys("")
    ({'scorer': 'micro-clip'}, {'scorers': ['micro-clip', 'micro-judge']}, {})
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    return {} if not names else {"scorer": names[0]} if len(names) == 1 else {"scorers": names}


def scorer_text(raw: Mapping[str, Any]) -> str:
    """The scorer key(s) of a parsed experiment file as one line, as ``scorer_keys`` reads it back.

    >>> scorer_text({"scorers": ["micro-clip", "micro-judge"]}), scorer_text({"scorer": "clip"}), scorer_text({})
    ('micro-clip, micro-judge', 'clip', '')
    """
    found = raw.get("scorers") or ([raw["scorer"]] if raw.get("scorer") else [])
    return ", ".join(str(name) for name in found)


def draft_scorer(model: str) -> str:
    """The scorer a draft for ``model`` is written with: micro's own for micro, else the file's default.

    >>> draft_scorer("micro"), draft_scorer("runwayml/stable-diffusion-v1-5")
    ('micro-clip', 'clip')
    """
    return default_scorer([model])


def order_terms(picked: Sequence[tuple[float, Term]]) -> list[Term]:
    """Terms ordered by their positions, each category where its first term goes (ties keep the given order).

    An experiment file orders categories, not single terms, so a category's terms stay together.

    >>> a, b, c = Term("pop-art", 1.0, "style"), Term("oil painting", 1.0, "medium"), Term("cubism", 1.0, "style")
    >>> [t.text for t in order_terms([(2, a), (1, b), (3, c)])]
    ['oil painting', 'pop-art', 'cubism']
    >>> [t.text for t in order_terms([(1, a), (2, b), (3, c)])]
    ['pop-art', 'cubism', 'oil painting']
    """
    ranked = sorted(range(len(picked)), key=lambda i: (picked[i][0], i))
    first: dict[str | None, int] = {}
    for rank, index in enumerate(ranked):
        first.setdefault(picked[index][1].category, rank)
    ranks = {index: rank for rank, index in enumerate(ranked)}
    return [picked[i][1] for i in sorted(ranked, key=lambda i: (first[picked[i][1].category], ranks[i]))]


def term_positions(
    terms: Sequence[tuple[str, str]], wanted: Mapping[tuple[str, str], float], previous: Mapping[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    """Positions 1..n, once each, for ``terms`` (``(category, text)``, in vocabulary order) in the order
    ``order_terms`` puts them: what the Build page shows and renders.

    ``wanted`` holds the positions the user asked for, ``previous`` the ones shown before. A term
    moved up goes before a term already at its new position, one moved down after it; a new term
    (in neither) goes last; a category's terms stay together, so a move that would split them is undone.

    >>> oil, pop = ("medium", "oil painting"), ("style", "pop-art")
    >>> term_positions([oil, pop], {}, {})
    {('medium', 'oil painting'): 1, ('style', 'pop-art'): 2}
    >>> term_positions([oil, pop], {oil: 1, pop: 1}, {oil: 1, pop: 2})
    {('style', 'pop-art'): 1, ('medium', 'oil painting'): 2}
    >>> term_positions([oil, pop], {oil: 2, pop: 2}, {oil: 1, pop: 2})
    {('style', 'pop-art'): 1, ('medium', 'oil painting'): 2}
    """

    def rank(index: int) -> tuple[float, int, int]:
        term = terms[index]
        before = previous.get(term)
        want = wanted.get(term, before)
        if want is None:
            return (float("inf"), 1, index)
        moved = 1 if before is None or want == before else (0 if want < before else 2)
        return (float(want), moved, index)

    ranked = sorted(range(len(terms)), key=rank)
    picked = [(float(ranked.index(i)), Term(text, 1.0, category)) for i, (category, text) in enumerate(terms)]
    return {(term.category or "", term.text): number for number, term in enumerate(order_terms(picked), 1)}


def experiment_name(subject: str) -> str:
    """A file-safe default name for an experiment about ``subject``.

    >>> experiment_name("A red fox, at dawn!")
    'a-red-fox-at-dawn'
    """
    return re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:40] or "experiment"


def draft_comparison(
    prompt: Prompt,
    *,
    name: str,
    vocab: Vocabulary,
    axes: Mapping[str, Sequence[Term | None]],
    param_axes: Mapping[str, Sequence[Any]] | None = None,
    params: Mapping[str, Any] | None = None,
    intent: str | None = None,
    negative: str = "",
    negative_presets: Sequence[str] = (),
    syntax: str = "compel",
    model: str = DRAFT_MODEL,
    scorer: str | None = None,
    seeds: int | Sequence[int] = DRAFT_SEEDS,
    weight_axes: Mapping[str, Sequence[float]] | None = None,
    lora: str | None = None,
    lora_strengths: Sequence[float] = (),
) -> dict[str, Any]:
    """The experiment file (as a dict for ``to_toml``) that compares levels: ``draft_experiment``'s
    file for ``prompt`` (its subject and fixed terms) plus an axis per entry of ``axes``.

    ``axes`` maps a vocabulary category to its levels, each a ``Term`` of that category or None for
    "no term of this category"; ``param_axes`` maps a parameter (``guidance_scale``, ``scheduler``,
    ``width``, ...) or ``model`` to its values (as text or typed): several make an axis, one sets it
    for every cell (the first model chooses the draft's scorer and size); ``params`` sets parameters
    for every cell; ``weight_axes`` maps a term of ``prompt`` to the weights it is rendered at
    (``[axes.weights]``: the same term, weight by weight). ``lora`` (a file, a name in the LoRA folder
    or a hub id) applies to every cell at its one strength of ``lora_strengths`` (1 if none), or makes
    an axis of several (``loras = [lora]`` with ``[axes] lora_strength``).

    >>> from promptlab.vocab import load_vocab
    >>> raw = draft_comparison(Prompt("a fox", ()), name="fox", vocab=load_vocab(), seeds=2,
    ...     axes={"color": [Term("red", 1.0, "color"), None]},
    ...     param_axes={"guidance_scale": ["5", "7.5"], "num_inference_steps": ["4"]})
    >>> raw["axes"], raw["params"], raw["seeds"]
    ({'color': ['red', ''], 'guidance_scale': [5.0, 7.5]}, {'width': 64, 'height': 64, 'num_inference_steps': 4}, 2)
    >>> draft_comparison(Prompt("a fox", (Term("red", 1.0, "color"),)), name="fox", vocab=load_vocab(),
    ...     axes={}, weight_axes={"red": [0.5, 1.0, 1.5]})["axes"]
    {'weights': {'red': [0.5, 1.0, 1.5]}}
    >>> raw = draft_comparison(Prompt("a fox", ()), name="fox", vocab=load_vocab(), axes={},
    ...     lora="teal", lora_strengths=[0, 0.5, 1])
    >>> raw["loras"], raw["axes"]
    (['teal'], {'lora_strength': [0.0, 0.5, 1.0]})
    """
    typed = {param: _param_levels(param, values) for param, values in (param_axes or {}).items()}
    model = typed["model"][0] if "model" in typed else model
    raw = draft_experiment(
        prompt, name=name, vocab=vocab, negative=negative, negative_presets=negative_presets, syntax=syntax,
        model=model, scorer=scorer, seeds=seeds if isinstance(seeds, int) else 1,
    )  # fmt: skip
    if not isinstance(seeds, int):
        raw["seeds"] = list(seeds)
    if intent and intent.strip():
        raw["prompt"]["intent"] = intent.strip()
    raw["params"] = {**raw.get("params", {}), **dict(params or {})}
    swept: dict[str, list[Any]] = dict(raw.get("axes", {}))
    for category, levels in axes.items():
        swept[category] = _category_levels(category, levels, vocab)
    weights = {text: [float(w) for w in levels] for text, levels in (weight_axes or {}).items() if levels}
    if weights:
        swept["weights"] = weights
    for param, values in typed.items():
        if len(values) > 1:
            swept[param] = values
        elif param != "model":
            raw["params"][param] = values[0]
    if lora and lora.strip():
        strengths = [float(strength) for strength in lora_strengths] or [1.0]
        # A file named from where the user is goes in by its full path: the experiment file may be saved elsewhere.
        lora = str(Path(lora.strip()).expanduser().resolve()) if Path(lora.strip()).expanduser().is_file() else lora.strip()
        raw["loras"] = [lora if len(strengths) > 1 else f"{lora}:{strengths[0]:g}"]
        if len(strengths) > 1:
            swept["lora_strength"] = strengths
    if swept:
        raw["axes"] = swept
    return raw


def _category_levels(category: str, levels: Sequence[Term | None], vocab: Vocabulary) -> list[str]:
    if category not in vocab.categories:
        known = ", ".join(vocab.categories)
        raise ExperimentError(f"axis {category!r}: no such vocabulary category; use one of {known}")
    if not levels:
        raise ExperimentError(f"axis {category!r}: no levels; pick at least one term (or 'no term')")
    written = [ABSENT if term is None else term_spec(term) for term in levels]
    if len(set(written)) != len(written):
        raise ExperimentError(f"axis {category!r}: a level is listed twice in {written}; list each once")
    return written


def _param_levels(param: str, values: Sequence[Any]) -> list[Any]:
    if param != "model" and param not in PARAMS:
        known = ", ".join(["model", *PARAMS])
        raise ExperimentError(f"axis {param!r}: not a parameter; use one of {known}")
    if not values:
        raise ExperimentError(f"axis {param!r}: no values; give at least one")
    rule = MODEL_RULE if param == "model" else PARAMS[param]
    try:
        typed = [rule.kind(value) for value in values]
    except (TypeError, ValueError):
        raise ExperimentError(f"axis {param!r}: {list(values)} are not all {rule.expected}") from None
    bad = [value for value in typed if not rule.check(value)]
    if bad:
        raise ExperimentError(f"axis {param!r}: {bad} not {rule.expected}")
    if len(set(typed)) != len(typed):
        raise ExperimentError(f"axis {param!r}: a value is listed twice in {typed}; list each once")
    return typed
