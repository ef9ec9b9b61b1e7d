"""Writing an experiment file: a parsed experiment's dict back to TOML text (through tomli-w), and the
dict for a prompt built from the vocabulary (the dashboard's Build page).

    >>> from promptlab.prompt import Prompt, Term
    >>> from promptlab.vocab import load_vocab
    >>> prompt = Prompt("a red fox", (Term("pop-art", 1.3, "style"), Term("oil painting", 1.0, "medium")))
    >>> print(to_toml(draft_experiment(prompt, name="fox", vocab=load_vocab())), end="")
    name = "fox"
    model = "tiny-sd"
    seeds = 4
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
from typing import Any

import tomli_w

from promptlab.errors import ExperimentError
from promptlab.experiment.spec import ExperimentSpec, term_spec
from promptlab.prompt import Prompt, Term
from promptlab.vocab import Vocabulary

#: What a drafted experiment renders with until the user changes it: the tiny model, 4 seeds.
DRAFT_MODEL = "tiny-sd"
DRAFT_SEEDS = 4


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
    seeds: int = DRAFT_SEEDS,
) -> dict[str, Any]:
    """The experiment file (as a dict for ``to_toml``) that renders ``prompt``: its terms as fixed
    terms by category, in the prompt's order.

    An experiment orders categories, not single terms: where the prompt's categories are not in
    vocabulary order, an ``order`` axis of one level keeps them as they are (``order_terms`` makes
    sure a category's terms sit together). ``negative`` is written in ``syntax``.
    """
    terms: dict[str, list[str]] = {}
    for term in prompt.terms:
        if term.category is None:
            raise ExperimentError(f"term {term.text!r} has no category; an experiment file lists terms by category")
        terms.setdefault(term.category, []).append(term_spec(term))
    raw: dict[str, Any] = {
        "name": name,
        "model": model,
        "seeds": seeds,
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


def experiment_name(subject: str) -> str:
    """A file-safe default name for an experiment about ``subject``.

    >>> experiment_name("A red fox, at dawn!")
    'a-red-fox-at-dawn'
    """
    return re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:40] or "experiment"
