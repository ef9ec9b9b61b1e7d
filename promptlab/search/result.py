"""What a search returns: its rounds, the winner confirmed on fresh seeds against the start, the path, the spend."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from promptlab.analysis import Effect, format_effect


@dataclass(frozen=True)
class Scored:
    """A candidate after a round: its prompt, its mean score over every seed it has had, and that seed count."""

    variant_key: str
    label: str
    mean: float
    n_seeds: int


@dataclass(frozen=True)
class Round:
    """One round: the seeds its candidates shared, each candidate's standing, and which went on."""

    index: int
    seeds: tuple[int, ...]
    candidates: tuple[Scored, ...]
    kept: tuple[str, ...]
    images: int

    @property
    def best(self) -> Scored:
        return self.candidates[0]


@dataclass(frozen=True)
class SearchProgress:
    """Where a search stands: images spent (rendered now or found recorded) of the budget, and the best so far."""

    phase: str
    round: int
    spent: int
    budget: int
    best_label: str
    best_score: float

    @property
    def left(self) -> int:
        return max(self.budget - self.spent, 0)


@dataclass(frozen=True)
class TermStep:
    """A term the search tried, and whether the winner kept it. ``effect``: for a term the last round measured,
    what it made on that round's ``n_seeds`` shared seeds (the leader with it less the leader without it);
    NaN for the others, chosen or dropped in earlier rounds on fewer and unshared seeds."""

    group: str
    term: str
    kept: bool
    effect: float
    n_seeds: int


@dataclass(frozen=True)
class SearchResult:
    """A finished search. ``gain`` is the winner minus the start prompt on the confirmation seeds, paired by seed,
    with its calibrated CI (``promptlab.analysis``); ``rounds`` and ``path`` say how it got there."""

    experiment: str
    method: str
    scorer: str
    intent: str
    start_prompt: str
    winner_prompt: str
    winner_prompt_a1111: str
    winner_label: str
    winner_terms: tuple[str, ...]
    winner_key: str
    start_key: str
    selection_seeds: tuple[int, ...]
    confirm_seeds: tuple[int, ...]
    winner_scores: tuple[float, ...]
    start_scores: tuple[float, ...]
    gain: Effect | None
    budget: int
    spent: int
    rendered: int
    rounds: tuple[Round, ...]
    path: tuple[TermStep, ...] = field(default_factory=tuple)

    @property
    def winner_mean(self) -> float:
        return _mean(self.winner_scores)

    @property
    def start_mean(self) -> float:
        return _mean(self.start_scores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; NaN becomes null."""
        data = asdict(self)
        data["winner_mean"] = self.winner_mean
        data["start_mean"] = self.start_mean
        return _jsonable(data)


def format_search(result: SearchResult) -> list[str]:
    """The lines ``promptlab search`` prints: the winner in both syntaxes, its gain with CI, the budget, the path."""
    lines = [
        f"Winner ({result.method}, {len(result.rounds)} rounds): {result.winner_prompt}",
        f"  A1111 syntax: {result.winner_prompt_a1111}",
        f"  Started from: {result.start_prompt}",
    ]
    seeds = len(result.confirm_seeds)
    if result.gain is None:
        lines.append(f"Gain: none; the start prompt stayed best ({result.scorer} {result.start_mean:.2f} on {seeds} fresh seeds)")
    else:
        lines.append(f"Gain on {seeds} fresh seeds ({result.scorer} vs intent): {format_effect(result.gain)}")
        lines.append(f"  winner {result.winner_mean:.2f}, start {result.start_mean:.2f}")
    lines.append(f"Budget: {result.spent} of {result.budget} images spent ({result.rendered} rendered now)")
    helped = [step for step in result.path if step.kept]
    dropped = [step for step in result.path if not step.kept and step.n_seeds]
    earlier = [step.term for step in result.path if not step.kept and not step.n_seeds]
    if helped:
        lines.append("Kept: " + ", ".join(_step(s) for s in helped))
    if dropped:
        lines.append("Dropped in the last round: " + ", ".join(_step(s) for s in dropped))
    if earlier:
        lines.append("Dropped in earlier rounds: " + ", ".join(earlier))
    for item in result.rounds:
        lines.append(
            f"  round {item.index + 1}: {len(item.candidates)} candidates x {len(item.seeds)} seeds, "
            f"best {item.best.label} ({item.best.mean:.2f} over {item.best.n_seeds} seeds)"
        )
    return lines


def _step(step: TermStep) -> str:
    """``red (+35.20 on 12 shared seeds)``: what the term made in the last round, or that it was not measured there."""
    if step.n_seeds == 0:
        return f"{step.term} (no last round measured it: random search, or a budget too small for one)"
    if math.isnan(step.effect):
        return f"{step.term} (its images in the last round failed)"
    return f"{step.term} ({step.effect:+.2f} on {step.n_seeds} shared seeds)"


def _mean(values: tuple[float, ...]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value
