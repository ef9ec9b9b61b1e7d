"""What people's votes say: each variant's strength, who wins each pair, and how far each scorer agrees.

    votes = store.list_votes("squirrel-styles")
    result = analyze_votes(votes, store.vote_scores("squirrel-styles"), experiment="squirrel-styles")
    format_votes(result)    # 'aesthetic agrees with you on 71% (95% CI 63-78%) of 120 pairs', ...
    pair = next_pair(store.vote_runs("squirrel-styles"), votes, voter="ana", rng=random.Random(0))

The choices, and why (``tests/test_votes.py`` checks each interval by simulating votes whose truth is known):

1. Strength: a Bradley-Terry model, P(a preferred to b) = 1 / (1 + exp(-(s_a - s_b))), fitted by
   maximum likelihood with Firth's penalty (the Jeffreys prior), so a variant that won every vote
   still gets a finite strength. A tie counts as half a win for each side (the model's probability
   is then the expected share of a vote). Strengths are centred (their mean is 0), and
   ``win_chance`` is the chance to be preferred to a variant of average strength, 1 / (1 + exp(-s)).
   The interval is Wald's on the centred strength, from the inverse information matrix scaled by
   the ties' dispersion: a half win varies less than a win or a loss (p(1 - p) - ties / 4 against
   p(1 - p)), the share of ties estimated as (ties + 1) / (votes + 2), so that votes all tied
   still give a width.
   It counts votes as independent: right for votes on different pairs of images, which is what
   the Judge page shows one person; votes by several people on the same pair are not. Votes that
   never link two groups of variants (several subjects: a vote compares one subject's images)
   give each group its own strengths, centred within it, and ``group`` says which.
2. Pairs: for each two variants, the share of their votes the first won (ties half) with a Wilson
   interval.
3. Agreement: for each vote that chose an image (not a tie), whether a scorer gave the chosen
   image the higher score (its "intent" scores of both runs, as ``Store.vote_scores`` gives them).
   Both images of a vote show one subject, so both were scored against the same intent text:
   scorers meaningful only within one prompt (PickScore, HPS) compare like with like here. Votes
   where the scorer gave both the same score are left out and counted (``scorer_ties``); the
   share of agreeing votes has a Wilson interval.
4. Sides: the share of decisive votes that chose the left image, with a Wilson interval; 50% when
   people look at the images, not at where they are.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from promptlab.analysis.inference import Interval, wilson_interval
from promptlab.errors import ExportError, PromptlabError
from promptlab.store import VoteRun, VoteView

#: The level of every interval here.
VOTE_LEVEL = 0.95

#: The columns ``votes_table`` and ``export_votes`` write, in order.
VOTE_COLUMNS = (
    "experiment", "vote_id", "left_run_id", "right_run_id", "left_variant_key", "right_variant_key",
    "left_label", "right_label", "seed", "subject", "choice", "voter", "created_at",
)  # fmt: skip

#: The files ``export_votes`` writes, by suffix.
VOTE_FORMATS = (".csv", ".json")

#: What a tie is worth to each side of a vote.
TIE_SHARE = 0.5


@dataclass(frozen=True)
class VotePair:
    """Two runs to show side by side: the left one and the right one."""

    left: VoteRun
    right: VoteRun

    @property
    def key(self) -> frozenset[int]:
        """The pair whichever side each run is on."""
        return frozenset((self.left.run_id, self.right.run_id))


@dataclass(frozen=True)
class Strength:
    """A variant's Bradley-Terry strength (centred log-odds) and its chance to beat a variant of average strength."""

    variant_key: str
    label: str
    strength: float
    ci_low: float
    ci_high: float
    win_chance: float
    win_low: float
    win_high: float
    votes: int
    wins: float
    group: int


@dataclass(frozen=True)
class PairRecord:
    """Two variants' votes against each other: the share the first won (ties half), with its interval."""

    a_key: str
    a_label: str
    b_key: str
    b_label: str
    votes: int
    a_wins: float
    share: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Agreement:
    """How often a scorer preferred the image a person chose, over the decisive votes it scored both images of."""

    scorer: str
    agree: int
    n: int
    share: float
    ci_low: float
    ci_high: float
    scorer_ties: int
    unscored: int


@dataclass(frozen=True)
class VoteAnalysis:
    """Everything the votes of one experiment say (see the module's docstring for how)."""

    experiment: str
    n_votes: int
    n_ties: int
    voters: tuple[str, ...]
    strengths: tuple[Strength, ...]
    pairs: tuple[PairRecord, ...]
    agreements: tuple[Agreement, ...]
    left_share: float
    left_low: float
    left_high: float
    groups: int
    level: float = VOTE_LEVEL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (NaN, where a number cannot be told, becomes None)."""
        return _json_safe(asdict(self))


# 1. Which pair to show next


def next_pair(
    runs: Sequence[VoteRun],
    votes: Sequence[VoteView],
    *,
    voter: str,
    rng: random.Random,
    exclude: Collection[frozenset[int]] = (),
) -> VotePair | None:
    """The next two runs to show ``voter``: one seed and subject, two variants; None where there is no such pair.

    Never a pair ``voter`` voted on before until they have voted on every pair (then the ones they
    voted on least); of those, the variant pairs with the fewest votes from anybody; one of them at
    random (``rng``), its sides shuffled. Pairs in ``exclude`` (skipped, or shown now) are left out
    while there are others ``voter`` has voted on as few times; never at the cost of a pair again.
    """
    # 1. Every pair the experiment offers
    by_cell: dict[tuple[int, str], list[VoteRun]] = defaultdict(list)
    for run in runs:
        by_cell[run.seed, run.subject].append(run)
    pairs = [
        VotePair(a, b) for cell in by_cell.values() for a, b in combinations(cell, 2) if a.variant_key != b.variant_key
    ]
    if not pairs:
        return None
    # 2. The pairs this voter has voted on least (never twice until every pair is used), not excluded
    mine = Counter(frozenset((v.left_run_id, v.right_run_id)) for v in votes if v.voter == voter)
    fewest_mine = min(mine[p.key] for p in pairs)
    pool = [p for p in pairs if mine[p.key] == fewest_mine]
    pool = [p for p in pool if p.key not in exclude] or pool
    # 3. Of those, the variant pairs with the fewest votes from anybody
    by_variants = Counter(frozenset((v.left_variant_key, v.right_variant_key)) for v in votes)
    fewest = min(by_variants[_variants(p)] for p in pool)
    pool = [p for p in pool if by_variants[_variants(p)] == fewest]
    # 4. One at random, its sides shuffled
    chosen = pool[rng.randrange(len(pool))]
    return VotePair(chosen.right, chosen.left) if rng.random() < 0.5 else chosen


def _variants(pair: VotePair) -> frozenset[str]:
    return frozenset((pair.left.variant_key, pair.right.variant_key))


# 2. What the votes say


def analyze_votes(votes: Sequence[VoteView], scores: pd.DataFrame | None = None, *, experiment: str = "") -> VoteAnalysis:
    """Strengths, pair records, each scorer's agreement and the side bias of one experiment's votes.

    ``scores`` is ``Store.vote_scores``: columns run_id, scorer, value. PromptlabError where there are no votes.
    """
    if not votes:
        where = f"experiment {experiment!r}" if experiment else "this experiment"
        raise PromptlabError(f"{where} has no votes yet: judge its images on the dashboard's Judge page")
    decisive = [v for v in votes if v.choice != "tie"]
    left = sum(v.choice == "left" for v in decisive)
    sides = wilson_interval(left, len(decisive), VOTE_LEVEL) if decisive else Interval(math.nan, math.nan)
    strengths = bradley_terry(votes)
    return VoteAnalysis(
        experiment=experiment,
        n_votes=len(votes),
        n_ties=len(votes) - len(decisive),
        voters=tuple(sorted({v.voter for v in votes})),
        strengths=tuple(strengths),
        pairs=tuple(pair_records(votes)),
        agreements=tuple(scorer_agreement(votes, scores)) if scores is not None else (),
        left_share=left / len(decisive) if decisive else math.nan,
        left_low=sides.low,
        left_high=sides.high,
        groups=len({s.group for s in strengths}),
    )


def bradley_terry(votes: Sequence[VoteView], level: float = VOTE_LEVEL) -> list[Strength]:
    """Each voted variant's strength with its interval, strongest first within each group of linked variants."""
    labels = _labels(votes)
    found: list[Strength] = []
    for group, keys in enumerate(_groups(votes)):
        ours = [v for v in votes if v.left_variant_key in keys]
        found += sorted(_fit_group(ours, keys, labels, group, level), key=lambda s: (-s.strength, s.variant_key))
    return found


def pair_records(votes: Sequence[VoteView], level: float = VOTE_LEVEL) -> list[PairRecord]:
    """For each two variants that met, the share of their votes the first won (ties half), in order of first vote."""
    labels = _labels(votes)
    met: dict[frozenset[str], list[float]] = {}
    order: dict[frozenset[str], tuple[str, str]] = {}
    for v in votes:
        key = frozenset((v.left_variant_key, v.right_variant_key))
        a, _ = order.setdefault(key, (v.left_variant_key, v.right_variant_key))
        met.setdefault(key, []).append(_share_of(v, a))
    records = []
    for key, shares in met.items():
        a, b = order[key]
        wins = float(sum(shares))
        interval = wilson_interval(wins, len(shares), level)
        records.append(PairRecord(a, labels[a], b, labels[b], len(shares), wins, wins / len(shares), interval.low, interval.high))
    return records


def scorer_agreement(votes: Sequence[VoteView], scores: pd.DataFrame, level: float = VOTE_LEVEL) -> list[Agreement]:
    """Each scorer's share of decisive votes where it scored the chosen image higher, most agreeing first."""
    by_run: dict[str, dict[int, float]] = defaultdict(dict)
    for run_id, scorer, value in scores[["run_id", "scorer", "value"]].itertuples(index=False):
        by_run[str(scorer)][int(run_id)] = float(value)
    decisive = [v for v in votes if v.choice != "tie"]
    found = []
    for scorer, values in by_run.items():
        agree = n = ties = unscored = 0
        for v in decisive:
            chosen, other = (v.left_run_id, v.right_run_id) if v.choice == "left" else (v.right_run_id, v.left_run_id)
            if chosen not in values or other not in values:
                unscored += 1
            elif values[chosen] == values[other]:
                ties += 1
            else:
                n += 1
                agree += values[chosen] > values[other]
        interval = wilson_interval(agree, n, level) if n else Interval(math.nan, math.nan)
        found.append(Agreement(scorer, agree, n, agree / n if n else math.nan, interval.low, interval.high, ties, unscored))
    return sorted(found, key=lambda a: (-(a.share if not math.isnan(a.share) else -1.0), a.scorer))


# 3. How it reads


def counted(n: int, noun: str) -> str:
    """``1 vote``, ``2 votes``, ``0 ties``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_agreement(agreement: Agreement) -> str:
    """``aesthetic agrees with you on 71% (95% CI 63-78%) of 120 pairs``, or why there is no share."""
    if agreement.n == 0:
        return f"{agreement.scorer}: no decisive vote has its scores on both images"
    return (
        f"{agreement.scorer} agrees with you on {100 * agreement.share:.0f}% "
        f"({_level(VOTE_LEVEL)} CI {100 * agreement.ci_low:.0f}-{100 * agreement.ci_high:.0f}%) of {agreement.n} pairs"
        + (f" ({agreement.scorer_ties} where it scored both alike left out)" if agreement.scorer_ties else "")
    )


def format_strength(strength: Strength) -> str:
    """``pop-art  +0.62 (95% CI +0.21..+1.03): beats an average variant 65% (55-74%), 40 votes``."""
    return (
        f"{strength.label}  {strength.strength:+.2f} ({_level(VOTE_LEVEL)} CI {strength.ci_low:+.2f}..{strength.ci_high:+.2f}): "
        f"beats an average variant {100 * strength.win_chance:.0f}% ({100 * strength.win_low:.0f}-{100 * strength.win_high:.0f}%), "
        f"{strength.votes} votes"
    )


def format_votes(result: VoteAnalysis) -> list[str]:
    """The lines ``promptlab votes list`` prints: counts, strengths, pair records, agreements, sides."""
    voters = ", ".join(result.voters)
    lines = [f"{counted(result.n_votes, 'vote')} ({counted(result.n_ties, 'tie')}) by {voters}"]
    lines.append("Strength (Bradley-Terry, ties half a win; centred, so 0 is an average variant):")
    for group in range(result.groups):
        if result.groups > 1:
            lines.append(f"  group {group + 1} (no vote links it to the others: its strengths compare only within it)")
        lines += [f"  {format_strength(s)}" for s in result.strengths if s.group == group]
    lines.append("Pairs (share of their votes the first won, ties half):")
    lines += [
        f"  {p.a_label} vs {p.b_label}: {100 * p.share:.0f}% ({100 * p.ci_low:.0f}-{100 * p.ci_high:.0f}%) of {p.votes}"
        for p in result.pairs
    ]
    if result.agreements:
        lines.append("Scorers (decisive votes where the scorer scored the chosen image higher):")
        lines += [f"  {format_agreement(a)}" for a in result.agreements]
    if not math.isnan(result.left_share):
        lines.append(
            f"Sides: the left image was chosen in {100 * result.left_share:.0f}% "
            f"({100 * result.left_low:.0f}-{100 * result.left_high:.0f}%) of {result.n_votes - result.n_ties} decisive votes"
        )
    return lines


def strengths_table(result: VoteAnalysis) -> pd.DataFrame:
    """The strengths as the Insights page shows them, one row per variant."""
    return pd.DataFrame(
        [
            {
                "variant": s.label,
                "strength": s.strength,
                f"{_level(result.level)} CI": f"{s.ci_low:+.2f}..{s.ci_high:+.2f}",
                "beats an average variant": f"{100 * s.win_chance:.0f}% ({100 * s.win_low:.0f}-{100 * s.win_high:.0f}%)",
                "votes": s.votes,
                "wins": s.wins,
                **({"group": s.group + 1} if result.groups > 1 else {}),
            }
            for s in result.strengths
        ]
    )


def votes_table(votes: Sequence[VoteView]) -> pd.DataFrame:
    """Every vote, one row each, with the columns in ``VOTE_COLUMNS`` (the time in ISO 8601, UTC)."""
    rows = [{**v.to_dict(), "vote_id": v.id} for v in votes]
    return pd.DataFrame(rows, columns=list(VOTE_COLUMNS))


def export_votes(votes: Sequence[VoteView], path: str | Path) -> Path:
    """Write every vote to ``path``: a CSV file (one row a vote) or a JSON list, by its suffix; the path.

    ExportError names a suffix that is neither, or a file that cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VOTE_FORMATS:
        raise ExportError(f"votes file {path}: suffix {path.suffix or '(none)'!r}; expected {' or '.join(VOTE_FORMATS)}")
    table = votes_table(votes)
    try:
        if suffix == ".csv":
            table.to_csv(path, index=False)
        else:
            path.write_text(json.dumps(table.to_dict("records"), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write votes file {path}: {exc.strerror or exc}") from exc
    return path


# The fit


def _fit_group(votes: Sequence[VoteView], keys: list[str], labels: dict[str, str], group: int, level: float) -> list[Strength]:
    """Bradley-Terry on the votes among ``keys`` (one linked group): Firth-penalised ML, quasi-binomial Wald intervals."""
    index = {key: i for i, key in enumerate(keys)}
    k = len(keys)
    n_votes = Counter[str]()
    wins = Counter[str]()
    for v in votes:
        n_votes[v.left_variant_key] += 1
        n_votes[v.right_variant_key] += 1
        wins[v.left_variant_key] += _share_of(v, v.left_variant_key)
        wins[v.right_variant_key] += _share_of(v, v.right_variant_key)
    if k == 1:
        return []
    # 1. The design: +1 for the left variant, -1 for the right, the first variant the reference (strength 0)
    x = np.zeros((len(votes), k))
    rows = np.arange(len(votes))
    x[rows, [index[v.left_variant_key] for v in votes]] = 1.0
    x[rows, [index[v.right_variant_key] for v in votes]] = -1.0
    x = x[:, 1:]
    y = np.array([_share_of(v, v.left_variant_key) for v in votes])
    # 2. The fit and its covariance, then centred
    beta, info = _firth_logit(x, y)
    p = _expit(x @ beta)
    # A tie (half a win) varies less than a win or a loss: Var(y) = p(1 - p) - ties / 4. The share of ties
    # counts one more tie and one more decisive vote; never narrower than votes all tied (1 / (n + 2)).
    ties = (float(np.sum(y == TIE_SHARE)) + 1) / (len(y) + 2)
    dispersion = max(float(np.mean(np.clip(1 - ties / (4 * p * (1 - p)), 0.0, None))), 1 / (len(y) + 2))
    cov = np.zeros((k, k))
    cov[1:, 1:] = np.linalg.inv(info) * dispersion
    theta = np.concatenate([[0.0], beta])
    centre = np.eye(k) - 1.0 / k
    theta, cov = centre @ theta, centre @ cov @ centre.T
    z = NormalDist().inv_cdf(0.5 + level / 2)
    half = z * np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return [
        Strength(
            variant_key=key,
            label=labels[key],
            strength=float(theta[i]),
            ci_low=float(theta[i] - half[i]),
            ci_high=float(theta[i] + half[i]),
            win_chance=float(_expit(theta[i])),
            win_low=float(_expit(theta[i] - half[i])),
            win_high=float(_expit(theta[i] + half[i])),
            votes=n_votes[key],
            wins=float(wins[key]),
            group=group,
        )
        for key, i in index.items()
    ]


def _firth_logit(x: np.ndarray, y: np.ndarray, max_iter: int = 100, tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression (no intercept) with Firth's penalty: coefficients and the Fisher information at them.

    Newton steps on the modified score X'(y - p + h (1/2 - p)), h the hat matrix's diagonal, each
    halved until the penalised log-likelihood rises (as R's logistf does), and none longer than 5.
    """
    beta = np.zeros(x.shape[1])
    best = _penalised_loglik(x, y, beta)
    for _ in range(max_iter):
        p = _expit(x @ beta)
        w = p * (1 - p)
        info = x.T @ (x * w[:, None])
        inverse = np.linalg.pinv(info)
        hat = w * np.einsum("ij,jk,ik->i", x, inverse, x)
        step = inverse @ (x.T @ (y - p + hat * (0.5 - p)))
        largest = float(np.max(np.abs(step))) if step.size else 0.0
        if largest < tol:
            break
        step *= min(1.0, 5 / largest)
        for _ in range(30):
            found = _penalised_loglik(x, y, beta + step)
            if found >= best:
                break
            step /= 2
        else:
            break
        beta, best = beta + step, found
    p = _expit(x @ beta)
    return beta, x.T @ (x * (p * (1 - p))[:, None])


def _penalised_loglik(x: np.ndarray, y: np.ndarray, beta: np.ndarray) -> float:
    """The log-likelihood of shares ``y`` plus Firth's penalty, half the log-determinant of the information."""
    eta = x @ beta
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    p = _expit(eta)
    sign, logdet = np.linalg.slogdet(x.T @ (x * (p * (1 - p))[:, None]))
    return loglik + 0.5 * logdet if sign > 0 else -math.inf


def _expit(value: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.asarray(value, dtype=float)))


def _groups(votes: Sequence[VoteView]) -> list[list[str]]:
    """The variants the votes link, one list per linked group, each in order of first vote."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for v in votes:
        for key in (v.left_variant_key, v.right_variant_key):
            parent.setdefault(key, key)
        parent[root(v.left_variant_key)] = root(v.right_variant_key)
    groups: dict[str, list[str]] = {}
    for key in parent:
        groups.setdefault(root(key), []).append(key)
    return list(groups.values())


def _labels(votes: Sequence[VoteView]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for v in votes:
        labels.setdefault(v.left_variant_key, v.left_label or v.left_variant_key)
        labels.setdefault(v.right_variant_key, v.right_label or v.right_variant_key)
    return labels


def _share_of(vote: VoteView, variant_key: str) -> float:
    """What ``vote`` gave ``variant_key``'s image: 1 chosen, 0 not, ``TIE_SHARE`` for a tie."""
    if vote.choice == "tie":
        return TIE_SHARE
    chosen = vote.left_variant_key if vote.choice == "left" else vote.right_variant_key
    return 1.0 if chosen == variant_key else 0.0


def _level(level: float) -> str:
    return f"{100 * level:.3g}%"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
