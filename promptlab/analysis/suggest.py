"""Terms that helped across experiments: what the dashboard's Build page suggests."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from promptlab.analysis.frame import ABSENT
from promptlab.analysis.results import Analysis


@dataclass(frozen=True)
class TermSuggestion:
    """A vocabulary term that raised the score in an earlier experiment: its effect there against its
    axis's reference (usually the category absent), as ``Effect`` measured it."""

    term: str
    category: str
    experiment: str
    mean_diff: float
    ci_low: float
    ci_high: float
    significant: bool


def term_suggestions(
    results: Iterable[Analysis], categories: Collection[str], *, exclude: Collection[str] = ()
) -> list[TermSuggestion]:
    """Terms that helped across experiments: every category-axis term with a positive effect, largest first.

    ``categories`` are the vocabulary's categories: axes named otherwise (parameters, models, term
    weights) are not terms. The absent level is no term, an effect that could not be estimated is
    left out, and so are the terms in ``exclude`` (those already in the prompt). A term helped
    in several experiments is listed once per experiment.
    """
    found = [
        TermSuggestion(
            term=str(effect.level),
            category=effect.axis,
            experiment=result.experiment,
            mean_diff=effect.mean_diff,
            ci_low=effect.ci_low,
            ci_high=effect.ci_high,
            significant=effect.significant,
        )
        for result in results
        for effect in result.effects
        if effect.axis in categories
        and effect.level not in (ABSENT, None)
        and str(effect.level) not in exclude
        and effect.mean_diff > 0
    ]
    return sorted(found, key=lambda s: (-s.mean_diff, s.experiment, s.term))
