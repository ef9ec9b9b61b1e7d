"""Running a search: rounds of candidates on shared seeds, the weak dropped, the strong given more seeds,
then the winner confirmed on fresh seeds against the start prompt.

Every round is a set of cells (candidate variant x the round's seeds) of one experiment, the file's
``name``, rendered, scored and recorded by the runner like any experiment's; so resuming is
running again: the candidates follow from ``[search] seed`` and the recorded scores, and the
runner skips every cell the store holds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from promptlab.analysis import analyze
from promptlab.errors import PromptlabError, SearchError
from promptlab.experiment import Cell, Variant, term_spec
from promptlab.prompt import Term
from promptlab.runner import Plan, run_experiment
from promptlab.search.candidates import Candidate, Space
from promptlab.search.result import (
    Round,
    Scored,
    SearchProgress,
    SearchResult,
    TermStep,
)
from promptlab.search.spec import SearchSpec
from promptlab.store import Store

#: Score points a term must earn to stay: of two candidates that score alike, the shorter prompt ranks first.
TERM_COST = 1.0
#: Seeds each candidate of the last round gets, where the budget allows: a word that shows on one seed in
#: three (a background most seeds draw anyway) shows on some of twelve. Words are judged on half as many at least.
FINAL_SEEDS = 12
# Selection seeds and confirmation seeds are drawn from ranges that never meet.
_SELECTION_SEEDS = range(1, 1_000_000)
_CONFIRM_SEEDS = range(1_000_000, 2_000_000)
#: The axis the confirmation's comparison is read on: "start" and "winner".
PROMPT_AXIS = "prompt"

SearchCallback = Callable[[SearchProgress], None]


def search_seeds(spec: SearchSpec) -> tuple[list[int], list[int]]:
    """The selection seeds (in the order rounds use them) and the confirmation seeds: disjoint, fixed by ``seed``."""
    rng = random.Random(f"promptlab-search:{spec.seed}")
    selection = rng.sample(_SELECTION_SEEDS, min(spec.budget, len(_SELECTION_SEEDS)))
    confirm = sorted(rng.sample(_CONFIRM_SEEDS, spec.confirm_seeds))
    return selection, confirm


class _Search:
    """One search's state: the store, the experiment row, the scores recorded so far, the spend."""

    def __init__(self, spec: SearchSpec, store: Store, scorer: Any, progress: SearchCallback | None) -> None:
        self.spec = spec
        self.store = store
        self.scorer = scorer
        self.progress = progress
        self.space = Space(spec)
        experiment = spec.experiment
        row = store.get_or_create_experiment(experiment.name, experiment.raw, experiment.path, subject=experiment.subject)
        assert row.id is not None
        self.experiment_id = row.id
        store.clean_partials()
        self.scores: dict[str, dict[int, float]] = {}
        self.spent = 0
        self.rendered = 0
        self.rounds: list[Round] = []
        self.seen: dict[str, Candidate] = {}  # every candidate rendered, by variant key
        # What the last round measured of a term: (group, TEXT:WEIGHT) -> (score made on its seeds, those seeds).
        self.measured: dict[tuple[str, str], tuple[float, int]] = {}
        # Every term that survived a round, as (group, TEXT:WEIGHT as a file writes it), in the order they first did.
        self.survived: dict[tuple[str, str], None] = {}

    def render(self, variants: Sequence[Variant], seeds: Sequence[int]) -> None:
        """Render, score and record every (variant, seed) the store lacks; read every score back."""
        every = [Cell(variant, seed) for variant in variants for seed in seeds]
        done = self.store.existing_cells(self.experiment_id)
        lost = {(b.variant_key, b.seed): b.run_id for b in self.store.broken_images(self.experiment_id)}
        todo = tuple(cell for cell in every if cell.key not in done or cell.key in lost)
        if todo:
            plan = Plan(self.experiment_id, len(every), todo, lost)
            summary = run_experiment(self.spec.experiment, self.store, plan=plan, scorer=self.scorer)
            self.rendered += summary.rendered
        self.spent += len(every)
        self._read_scores({v.key for v in variants}, set(seeds))

    def render_candidates(self, candidates: Sequence[Candidate], seeds: Sequence[int]) -> None:
        """``render`` for the search's candidates, remembered by variant key."""
        for candidate in candidates:
            self.seen.setdefault(self.space.variant(candidate).key, candidate)
        self.render([self.space.variant(c) for c in candidates], seeds)

    def _read_scores(self, keys: set[str], seeds: set[int]) -> None:
        frame = self.store.runs_frame(self.spec.name, "intent")
        frame = frame[frame["variant_key"].isin(keys) & frame["seed"].isin(seeds)]
        means = frame.groupby(["variant_key", "seed"])["score"].mean()
        for (key, seed), value in means.items():
            self.scores.setdefault(str(key), {})[int(seed)] = float(value)

    def mean(self, candidate: Candidate, seeds: Sequence[int] | None = None) -> tuple[float, int]:
        """The candidate's mean score over ``seeds`` (default: every seed it has had), and how many."""
        scores = self.scores.get(self.space.variant(candidate).key, {})
        values = [v for s, v in scores.items() if (seeds is None or s in seeds) and not math.isnan(v)]
        return (sum(values) / len(values), len(values)) if values else (math.nan, 0)

    def rank(self, candidates: Sequence[Candidate], seeds: Sequence[int] | None = None) -> list[Candidate]:
        """Best first: mean over ``seeds`` (default: every seed a candidate has had), less ``TERM_COST`` per term;
        unscored last."""

        def key(candidate: Candidate) -> float:
            mean, _ = self.mean(candidate, seeds)
            return -math.inf if math.isnan(mean) else mean - TERM_COST * len(candidate.terms)

        return sorted(candidates, key=key, reverse=True)

    def record_round(self, ranked: list[Candidate], seeds: Sequence[int], kept: Sequence[Candidate], images: int) -> None:
        standings = tuple(Scored(self.space.variant(c).key, c.label, *self.mean(c)) for c in ranked)
        self.rounds.append(Round(len(self.rounds), tuple(seeds), standings, tuple(c.label for c in kept), images))
        for candidate in kept:
            for term in candidate.terms:
                self.survived.setdefault((term.category or "", term_spec(term)), None)
        self.report("search", ranked[0])

    def report(self, phase: str, best: Candidate) -> None:
        if self.progress is not None:
            mean, _ = self.mean(best)
            self.progress(SearchProgress(phase, len(self.rounds), self.spent, self.spec.budget, best.label, mean))


def run_search(
    spec: SearchSpec, store: Store, *, scorer: Any = None, progress: SearchCallback | None = None
) -> SearchResult:
    """Search ``spec``'s pool for the prompt its scorer rates best against the intent, within ``spec.budget`` images.

    ``scorer`` is a loaded scorer (default: ``load_scorer(spec.scorer)``); ``progress`` is called after
    every round and after the confirmation. Every image is a run of the experiment ``spec.name``.
    """
    # 1. Check the request: the file was checked when read; the scorer loads before any image.
    from promptlab.scoring import load_scorer

    scorer = scorer or load_scorer(spec.scorer)
    search = _Search(spec, store, scorer, progress)
    selection, confirm = search_seeds(spec)
    # 2. Choose: successive halving over generations, or random candidates on the same seeds.
    selecting = spec.budget - spec.confirmation_images
    if spec.method == "random":
        winner = _random_search(search, selection, selecting)
    else:
        winner = _halving(search, selection, selecting)
    # 3. Confirm the winner against the start prompt on fresh seeds.
    return _confirm(search, winner, confirm)


def _halving(search: _Search, seeds: list[int], budget: int) -> Candidate:
    """Rounds of ``population`` candidates on ``round_seeds`` new shared seeds; the best quarter stays, the rest are
    replaced by mutations of it; a last round gives what budget is left to the leader and its neighbours."""
    spec, space = search.spec, search.space
    rng = random.Random(spec.seed)
    start = space.start()
    tried = {start.key}
    population = [start, *_fresh(space, rng, tried, spec.population - 1)]
    keep = max(1, spec.population // 4)
    # The last round's share: FINAL_SEEDS seeds for the leader and a neighbour in every group, a third at most.
    reserve = min(budget // 3, (1 + len(space.groups)) * FINAL_SEEDS)
    used = 0
    while True:
        round_seeds = seeds[used : used + spec.round_seeds]
        used += len(round_seeds)
        search.render_candidates(population, round_seeds)
        ranked = search.rank(population)
        survivors = ranked[:keep]
        search.record_round(ranked, round_seeds, survivors, len(population) * len(round_seeds))
        left = budget - search.spent
        # Stop where another round would leave the last one less than it needs.
        if left - spec.round_images < reserve:
            break
        children: list[Candidate] = []
        for _ in range(spec.population - keep):
            parent = survivors[min(rng.randrange(keep), rng.randrange(keep))]
            child = space.mutate(parent, rng, tried) or next(iter(_fresh(space, rng, tried, 1)), None)
            if child is None:
                break
            tried.add(child.key)
            children.append(child)
        population = survivors + children
    # The last round: the leader and its neighbours (the leader with each of its terms dropped, and with a term
    # of each group it lacks), on as many new seeds as the budget has left; a word that earns nothing goes.
    # Where the budget gives them too few seeds to tell a word's worth, the additions go first, then the drops:
    # the survivors then share what is left, and the best of them wins as it is.
    leader = survivors[0]
    prunings = [_without(space, leader, index) for index in range(len(leader.terms))]
    for final in ([leader, *prunings, *_additions(search, leader)], [leader, *prunings], survivors):
        final = list(dict.fromkeys(final))
        extra = min(left // len(final), len(seeds) - used)
        if extra >= FINAL_SEEDS // 2:
            break
    if extra < 1:
        return leader
    round_seeds = seeds[used : used + extra]
    search.render_candidates(final, round_seeds)
    # Ranked on these seeds alone: the new candidates have no others, and all share them.
    ranked = search.rank(final, round_seeds)
    idle: list[Term] = []
    if leader in final and all(p in final for p in prunings):
        _measure(search, leader, [c for c in final if len(c.terms) > len(leader.terms)], round_seeds)
        idle = [term for term in leader.terms if search.measured[(term.category or "", term_spec(term))][0] < TERM_COST]
    winner = space.arrange([t for t in ranked[0].terms if t not in idle], keep_order=True)
    search.record_round(ranked, round_seeds, [winner], len(final) * extra)
    return winner


def _additions(search: _Search, leader: Candidate) -> list[Candidate]:
    """The leader with one more term: for each group it lacks, the term (with its weight) of that group whose
    candidates scored best on average, each by its mean over its seeds; none where the leader has its most terms."""
    if len(leader.terms) >= search.spec.max_terms:
        return []
    means: dict[Term, list[float]] = {}
    for candidate in search.seen.values():
        mean, _ = search.mean(candidate)
        if not math.isnan(mean):
            for term in candidate.terms:
                means.setdefault(term, []).append(mean)
    found = []
    for group in search.space.groups:
        if leader.group_term(group) is None:
            scored = [(sum(values) / len(values), term_spec(term), term) for term, values in means.items() if term.category == group]
            if scored:
                found.append(search.space.arrange([*leader.terms, max(scored)[2]]))
    return found


def _without(space: Space, candidate: Candidate, index: int) -> Candidate:
    return space.arrange([t for i, t in enumerate(candidate.terms) if i != index], keep_order=True)


def _measure(search: _Search, leader: Candidate, additions: Sequence[Candidate], seeds: Sequence[int]) -> None:
    """What each of the leader's terms, and each term added to it, made on ``seeds`` (shared by all): the leader
    less the leader without the term, the addition less the leader. A term the leader has keeps its place only
    where this is ``TERM_COST`` or more; a drop with no score (NaN: its images failed) keeps its term."""
    top, _ = search.mean(leader, seeds)
    for index, term in enumerate(leader.terms):
        cost = top - search.mean(_without(search.space, leader, index), seeds)[0]
        search.measured[(term.category or "", term_spec(term))] = (cost, len(seeds))
    for addition in additions:
        added = next(t for t in addition.terms if t not in leader.terms)
        gain = search.mean(addition, seeds)[0] - top
        search.measured[(added.category or "", term_spec(added))] = (gain, len(seeds))


def _random_search(search: _Search, seeds: list[int], budget: int) -> Candidate:
    """Random search with the same budget: the start and random candidates, each on the same ``round_seeds`` seeds."""
    spec, space = search.spec, search.space
    rng = random.Random(spec.seed)
    start = space.start()
    tried = {start.key}
    count = budget // spec.round_seeds
    candidates = [start, *_fresh(space, rng, tried, count - 1)]
    round_seeds = seeds[: spec.round_seeds]
    best: list[Candidate] = []
    for begin in range(0, len(candidates), spec.population):
        batch = candidates[begin : begin + spec.population]
        search.render_candidates(batch, round_seeds)
        best = search.rank([*best, *batch])[:1]
        search.record_round(search.rank(batch), round_seeds, best, len(batch) * len(round_seeds))
    return best[0]


def _fresh(space: Space, rng: random.Random, tried: set[Any], count: int) -> list[Candidate]:
    """Up to ``count`` random candidates not tried before (fewer when the pool runs out)."""
    found: list[Candidate] = []
    misses = 0
    while len(found) < count and misses < 100:
        candidate = space.random(rng)
        if candidate.key in tried:
            misses += 1
            continue
        tried.add(candidate.key)
        found.append(candidate)
    return found


def _confirm(search: _Search, winner: Candidate, seeds: list[int]) -> SearchResult:
    """The winner and the start on ``seeds`` (fresh: never used to choose), compared by the paired analysis."""
    spec, space = search.spec, search.space
    start = space.start()
    variants = {"start": space.variant(start), "winner": space.variant(winner)}
    search.render(list({v.key: v for v in variants.values()}.values()), seeds)
    search.report("confirm", winner)
    scores = {name: tuple(search.scores.get(v.key, {}).get(s, math.nan) for s in seeds) for name, v in variants.items()}
    gain = None
    if variants["winner"].key != variants["start"].key:
        gain = _gain(search, variants, seeds)
    return SearchResult(
        experiment=spec.name,
        method=spec.method,
        scorer=spec.scorer,
        intent=spec.intent,
        start_prompt=variants["start"].prompt.to_compel(),
        winner_prompt=variants["winner"].prompt.to_compel(),
        winner_prompt_a1111=variants["winner"].prompt.to_a1111(),
        winner_label=winner.label,
        winner_terms=tuple(term.text for term in winner.terms),
        winner_key=variants["winner"].key,
        start_key=variants["start"].key,
        selection_seeds=tuple(sorted({s for r in search.rounds for s in r.seeds})),
        confirm_seeds=tuple(seeds),
        winner_scores=scores["winner"],
        start_scores=scores["start"],
        gain=gain,
        budget=spec.budget,
        spent=search.spent,
        rendered=search.rendered,
        rounds=tuple(search.rounds),
        path=_path(search, winner),
    )


def _gain(search: _Search, variants: dict[str, Variant], seeds: list[int]) -> Any:
    frame = search.store.runs_frame(search.spec.name, "intent")
    frame = frame[frame["seed"].isin(seeds) & frame["variant_key"].isin([v.key for v in variants.values()])]
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("axis:")])
    names = {v.key: name for name, v in variants.items()}
    frame = frame.assign(**{f"axis:{PROMPT_AXIS}": frame["variant_key"].map(names)})
    try:
        result = analyze(frame, reference={PROMPT_AXIS: "start"}, experiment=search.spec.name)
    except PromptlabError as exc:
        raise SearchError(f"search {search.spec.name!r}: the confirmation has no usable scores: {exc}") from exc
    return next((e for e in result.effects if e.axis == PROMPT_AXIS and e.level == "winner"), None)


def _path(search: _Search, winner: Candidate) -> tuple[TermStep, ...]:
    """Each term that ever survived a round or was tried in the last one, and whether the winner kept it; for
    the terms the last round measured (the leader's, and those added to it), the score the term made on that
    round's shared seeds. Scores over all the selection runs are not given: the rounds choose which candidates
    hold a term, so a word's average there says more about its company than about the word."""
    survived = dict(search.survived)
    survived.update(dict.fromkeys(search.measured))
    for term in winner.terms:
        survived.setdefault((term.category or "", term_spec(term)), None)
    kept = {(t.category or "", term_spec(t)) for t in winner.terms}
    steps = []
    for group, text in survived:
        effect, n = search.measured.get((group, text), (math.nan, 0))
        steps.append(TermStep(group, text, (group, text) in kept, effect, n))
    return tuple(sorted(steps, key=lambda s: (not s.kept, -(s.effect if not math.isnan(s.effect) else -math.inf))))

