"""People's votes: the store keeps them whole and refuses bad pairs; the pair to show next; what the
votes say (strengths and scorer agreement, their intervals checked by simulating votes whose truth
is known); the ``promptlab votes`` commands."""

from __future__ import annotations

import io
import json
import math
import random
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage
from sqlalchemy import event, inspect, text
from sqlmodel import SQLModel
from typer.testing import CliRunner

from promptlab.analysis import (
    analyze_votes,
    bradley_terry,
    export_votes,
    format_agreement,
    format_votes,
    next_pair,
    pair_records,
    scorer_agreement,
)
from promptlab.cli import app
from promptlab.errors import ExportError, PromptlabError, StoreError
from promptlab.prompt import Prompt, Term
from promptlab.store import RunRecord, ScoreRecord, Store, VoteRun, VoteView, open_store

runner = CliRunner()


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 6), (shade, 255 - shade, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def record(experiment_id: int, key: str, seed: int, subject: str = "a squirrel") -> RunRecord:
    return RunRecord(
        experiment_id=experiment_id,
        variant_key=f"{subject}|{key}",
        seed=seed,
        prompt=Prompt(subject, (Term(key, 1.0, "style"),)),
        model="tiny-sd",
        label=f"style={key}",
    )


def fill(store: Store, name: str = "e", keys: tuple[str, ...] = ("a", "b", "c"), seeds: int = 2, subjects: tuple[str, ...] = ("a squirrel",)) -> dict[tuple[str, int, str], int]:
    """An experiment of ``keys`` x ``seeds`` x ``subjects`` recorded runs, each scored by clip (a first) and aesthetic (a last)."""
    experiment = store.add_experiment(name, {"scorers": ["clip", "aesthetic"]})
    ids = {}
    for index, key in enumerate(keys):
        for seed in range(seeds):
            for subject in subjects:
                scores = [ScoreRecord("intent", "clip", 10.0 - index, "x"), ScoreRecord("intent", "aesthetic", float(index), "x")]
                run = store.record_run(record(experiment.id, key, seed, subject), png(40 * index + seed + len(subject)), scores)
                ids[key, seed, subject] = run.id
    return ids


@pytest.fixture
def store() -> Any:
    with open_store() as opened:
        yield opened


def vote_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM vote")).scalar_one())


# The store


def test_a_vote_keeps_both_runs_as_shown_with_who_and_when(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "ana")
    ids = fill(store)
    vote = store.record_vote(ids["b", 1, "a squirrel"], ids["a", 1, "a squirrel"], "left")
    (listed,) = store.list_votes("e")
    assert listed == vote
    assert (vote.left_run_id, vote.right_run_id) == (ids["b", 1, "a squirrel"], ids["a", 1, "a squirrel"])
    assert (vote.left_label, vote.right_label, vote.seed, vote.subject) == ("style=b", "style=a", 1, "a squirrel")
    assert (vote.choice, vote.voter, vote.experiment) == ("left", "ana", "e")
    assert vote.created_at.tzinfo is not None and abs((datetime.now(timezone.utc) - vote.created_at).total_seconds()) < 60
    tie = store.record_vote(ids["a", 0, "a squirrel"], ids["c", 0, "a squirrel"], "tie", voter="bo")
    assert [v.id for v in store.list_votes("e")] == [vote.id, tie.id]
    assert tie.voter == "bo"


@pytest.mark.parametrize(
    ("left", "right", "choice", "message"),
    [
        (("a", 0, "s1"), ("b", 1, "s1"), "left", r"seeds 0 and 1; a vote compares two variants on one seed"),
        (("a", 0, "s1"), ("b", 0, "s2"), "left", r"subjects 's1' and 's2'"),
        (("a", 0, "s1"), ("a", 0, "s2"), "left", r"subjects"),
        (("a", 0, "s1"), ("a", 0, "s1"), "left", r"against itself"),
        (("a", 0, "s1"), ("b", 0, "s1"), "skip", r"vote choice 'skip': expected one of left, right, tie"),
    ],
)
def test_a_vote_that_compares_no_two_variants_on_one_seed_is_refused_and_nothing_written(
    store: Store, left: tuple[str, int, str], right: tuple[str, int, str], choice: str, message: str
) -> None:
    ids = fill(store, keys=("a", "b"), subjects=("s1", "s2"))
    with pytest.raises(StoreError, match=message):
        store.record_vote(ids[left], ids[right], choice)
    assert vote_count(store) == 0


def test_a_vote_across_experiments_is_refused(store: Store) -> None:
    ids = fill(store, keys=("a", "b"))
    other = fill(store, "f", keys=("a", "b"))
    with pytest.raises(StoreError, match="are from two experiments"):
        store.record_vote(ids["a", 0, "a squirrel"], other["b", 0, "a squirrel"], "left")
    assert vote_count(store) == 0


def test_a_vote_on_a_deleted_or_failed_run_is_refused_by_its_id(store: Store) -> None:
    ids = fill(store, keys=("a", "b"))
    with pytest.raises(StoreError, match=r"run 999 is not in .*\(deleted\?\)"):
        store.record_vote(ids["a", 0, "a squirrel"], 999, "left")
    experiment = store.get_experiment("e")
    failed = store.record_failure(record(experiment.id, "c", 0), "out of memory")
    with pytest.raises(StoreError, match=f"run {failed.id} failed and has no image"):
        store.record_vote(failed.id, ids["a", 0, "a squirrel"], "right")
    assert vote_count(store) == 0


def test_a_run_rendered_again_takes_its_votes_with_it_and_a_vote_on_it_is_refused(store: Store) -> None:
    ids = fill(store, keys=("a", "b"))
    left, right = ids["a", 0, "a squirrel"], ids["b", 0, "a squirrel"]
    store.record_vote(left, right, "left")
    store.record_vote(ids["a", 1, "a squirrel"], ids["b", 1, "a squirrel"], "right")
    experiment = store.get_experiment("e")
    # its image lost, the cell is rendered again: a new run replaces the old one
    again = store.record_run(record(experiment.id, "a", 0), png(99), replace=[left])
    assert again.id != left
    assert [(v.left_run_id, v.choice) for v in store.list_votes("e")] == [(ids["a", 1, "a squirrel"], "right")]
    with pytest.raises(StoreError, match=f"run {left} is not in"):
        store.record_vote(left, right, "left")
    assert len(store.list_votes("e")) == 1


def test_a_vote_whose_commit_fails_leaves_nothing(store: Store) -> None:
    ids = fill(store, keys=("a", "b"))

    def crash(conn: Any) -> None:
        raise RuntimeError("the process dies as the database commits")

    event.listen(store.engine, "commit", crash)
    try:
        with pytest.raises(RuntimeError):
            store.record_vote(ids["a", 0, "a squirrel"], ids["b", 0, "a squirrel"], "left")
    finally:
        event.remove(store.engine, "commit", crash)
    assert vote_count(store) == 0


def test_a_read_only_store_lists_votes_and_refuses_one(store: Store) -> None:
    ids = fill(store, keys=("a", "b"))
    store.record_vote(ids["a", 0, "a squirrel"], ids["b", 0, "a squirrel"], "left")
    with open_store(read_only=True) as reader:
        assert len(reader.list_votes("e")) == 1
        with pytest.raises(StoreError, match="read-only"):
            reader.record_vote(ids["a", 1, "a squirrel"], ids["b", 1, "a squirrel"], "left")  # type: ignore[attr-defined]


def test_the_vote_table_matches_its_model_and_its_migration_is_recorded(store: Store) -> None:
    found = inspect(store.engine)
    model = SQLModel.metadata.tables["vote"]
    assert {c["name"]: c["nullable"] for c in found.get_columns("vote")} == {c.name: c.nullable for c in model.columns}
    indexes = {i["name"]: tuple(i["column_names"]) for i in found.get_indexes("vote")}
    assert indexes == {i.name: tuple(c.name for c in i.columns) for i in model.indexes}
    keys = {fk["constrained_columns"][0]: fk["options"].get("ondelete") for fk in found.get_foreign_keys("vote")}
    assert keys == {"experiment_id": None, "left_run_id": "CASCADE", "right_run_id": "CASCADE"}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM _migration WHERE name = 'm007_vote'")).scalar_one() == 1


def test_vote_runs_and_vote_scores_give_what_the_page_and_the_analysis_need(store: Store) -> None:
    ids = fill(store, keys=("a", "b"))
    runs = store.vote_runs("e")
    assert sorted(r.run_id for r in runs) == sorted(ids.values())
    assert all(r.image.is_file() and r.label.startswith("style=") for r in runs)
    assert store.vote_scores("e").empty
    store.record_vote(ids["a", 0, "a squirrel"], ids["b", 0, "a squirrel"], "left")
    scores = store.vote_scores("e")
    assert list(scores.columns) == ["run_id", "scorer", "value"]
    assert sorted(map(tuple, scores.to_numpy().tolist())) == sorted(
        [(ids["a", 0, "a squirrel"], "clip", 10.0), (ids["a", 0, "a squirrel"], "aesthetic", 0.0),
         (ids["b", 0, "a squirrel"], "clip", 9.0), (ids["b", 0, "a squirrel"], "aesthetic", 1.0)]
    )  # fmt: skip
    with pytest.raises(StoreError, match="score kind 'nope'"):
        store.vote_scores("e", "nope")


# The pair to show next


def runs_of(keys: tuple[str, ...], seeds: int, subjects: tuple[str, ...] = ("s",)) -> list[VoteRun]:
    runs, run_id = [], 0
    for key in keys:
        for seed in range(seeds):
            for subject in subjects:
                run_id += 1
                runs.append(VoteRun(run_id, f"{subject}|{key}", key, seed, subject, Path(f"/x/{run_id}.png")))
    return runs


def view(vote_id: int, left: VoteRun, right: VoteRun, choice: str, voter: str = "me") -> VoteView:
    return VoteView(vote_id, 1, "e", left.run_id, right.run_id, left.variant_key, right.variant_key, left.label,
                    right.label, left.seed, left.subject, choice, voter, datetime.now(timezone.utc))  # fmt: skip


def test_a_pair_is_one_seed_and_subject_from_two_variants_and_never_repeats_until_all_are_used() -> None:
    runs = runs_of(("a", "b", "c"), seeds=2, subjects=("s1", "s2"))
    every = 2 * 2 * 3  # seeds x subjects x variant pairs
    rng, votes, seen = random.Random(0), [], []
    for i in range(every):
        pair = next_pair(runs, votes, voter="me", rng=rng)
        assert pair is not None
        assert pair.left.seed == pair.right.seed and pair.left.subject == pair.right.subject
        assert pair.left.variant_key != pair.right.variant_key
        seen.append(pair.key)
        votes.append(view(i, pair.left, pair.right, "left"))
    assert len(set(seen)) == every
    again = next_pair(runs, votes, voter="me", rng=rng)
    assert again is not None and again.key in seen
    # another voter starts afresh, but with the pairs nobody has voted on least
    assert next_pair(runs, votes[:3], voter="you", rng=random.Random(1)) is not None


def test_the_least_voted_variant_pairs_come_first_and_the_sides_are_shuffled() -> None:
    runs = runs_of(("a", "b", "c"), seeds=4)
    by_key = {(r.label, r.seed): r for r in runs}
    votes = [view(i, by_key["a", i], by_key["b", i], "left", voter="someone") for i in range(4)]
    votes += [view(10 + i, by_key["a", i], by_key["c", i], "left", voter="someone") for i in range(3)]
    lefts = Counter()
    for seed in range(40):
        pair = next_pair(runs, votes, voter="me", rng=random.Random(seed))
        assert pair is not None and {pair.left.label, pair.right.label} == {"b", "c"}
        lefts[pair.left.label] += 1
    assert set(lefts) == {"b", "c"}
    assert next_pair(runs, votes, voter="me", rng=random.Random(3)) == next_pair(runs, votes, voter="me", rng=random.Random(3))


def test_an_excluded_pair_is_left_out_while_there_are_others_and_no_pair_is_none() -> None:
    runs = runs_of(("a", "b"), seeds=2)
    first = next_pair(runs, [], voter="me", rng=random.Random(0))
    assert first is not None
    second = next_pair(runs, [], voter="me", rng=random.Random(0), exclude={first.key})
    assert second is not None and second.key != first.key
    assert next_pair(runs, [], voter="me", rng=random.Random(0), exclude={first.key, second.key}) is not None
    # a pair voted on comes again only after every other, excluded ones too
    voted = [view(0, first.left, first.right, "left")]
    again = next_pair(runs, voted, voter="me", rng=random.Random(0), exclude={second.key})
    assert again is not None and again.key == second.key
    assert next_pair(runs_of(("a",), seeds=3), [], voter="me", rng=random.Random(0)) is None
    assert next_pair([], [], voter="me", rng=random.Random(0)) is None


# What the votes say


def simulate_votes(rng: np.random.Generator, strengths: np.ndarray, n: int, ties: float) -> list[VoteView]:
    """``n`` votes on random pairs of variants whose true Bradley-Terry strengths are ``strengths``:
    a tie with probability ``ties``, the expected share of the left side expit(s_left - s_right)."""
    runs = [VoteRun(i, f"v{i}", f"v{i}", 0, "s", Path("/x")) for i in range(len(strengths))]
    votes = []
    for i in range(n):
        a, b = rng.choice(len(strengths), 2, replace=False)
        p = 1 / (1 + math.exp(-(strengths[a] - strengths[b])))
        u = rng.random()
        choice = "left" if u < p - ties / 2 else "tie" if u < p + ties / 2 else "right"
        votes.append(view(i, runs[a], runs[b], choice))
    return votes


@pytest.mark.parametrize(("n", "ties"), [(120, 0.2), (60, 0.0)])
def test_strength_intervals_cover_the_true_strengths_95_percent_of_the_time(n: int, ties: float) -> None:
    """400 simulated experiments of 4 variants with known strengths: each 95% interval covers its
    variant's true (centred) strength in about 95% of them (binomial SE of a coverage: 1.1 points)."""
    rng = np.random.default_rng(27)
    truth = np.array([0.8, 0.2, -0.3, -0.7])
    truth -= truth.mean()
    hits, done = np.zeros(len(truth)), 0
    for _ in range(400):
        strengths = {s.variant_key: s for s in bradley_terry(simulate_votes(rng, truth, n, ties))}
        if len(strengths) < len(truth):
            continue
        done += 1
        hits += [strengths[f"v{i}"].ci_low <= truth[i] <= strengths[f"v{i}"].ci_high for i in range(len(truth))]
    coverage = hits / done
    assert done >= 395
    assert 0.93 <= coverage.mean() <= 0.98, coverage
    assert all(0.91 <= c <= 0.99 for c in coverage), coverage


def test_strengths_order_the_variants_and_stay_finite_when_one_wins_every_vote() -> None:
    runs = runs_of(("a", "b", "c"), seeds=6)
    by_key = {(r.label, r.seed): r for r in runs}
    votes = [view(i, by_key["a", i], by_key["b", i], "left") for i in range(6)]
    votes += [view(10 + i, by_key["c", i], by_key["a", i], "right") for i in range(6)]
    votes += [view(20 + i, by_key["b", i], by_key["c", i], "left" if i < 4 else "tie") for i in range(6)]
    strengths = bradley_terry(votes)
    assert [s.label for s in strengths] == ["a", "b", "c"]
    assert all(math.isfinite(s.strength) and s.ci_low < s.strength < s.ci_high for s in strengths)
    assert sum(s.strength for s in strengths) == pytest.approx(0, abs=1e-9)
    assert strengths[0].wins == 12 and strengths[0].votes == 12 and strengths[2].wins == 1
    assert 0.5 < strengths[0].win_low < strengths[0].win_chance < strengths[0].win_high < 1


def test_votes_that_never_link_two_subjects_give_each_its_own_group() -> None:
    runs = runs_of(("a", "b"), seeds=3, subjects=("s1", "s2"))
    pairs = {}
    for r in runs:
        pairs.setdefault((r.seed, r.subject), []).append(r)
    votes = [view(i, *cell, "left" if i % 3 else "right") for i, cell in enumerate(pairs.values())]
    result = analyze_votes(votes)
    assert result.groups == 2
    for group in range(2):
        assert sum(s.strength for s in result.strengths if s.group == group) == pytest.approx(0, abs=1e-9)
    assert any("group 2" in line for line in format_votes(result))


def test_pair_records_and_the_side_share_count_ties_half() -> None:
    runs = runs_of(("a", "b"), seeds=4)
    by_key = {(r.label, r.seed): r for r in runs}
    votes = [
        view(0, by_key["a", 0], by_key["b", 0], "left"),
        view(1, by_key["b", 1], by_key["a", 1], "right"),
        view(2, by_key["a", 2], by_key["b", 2], "tie"),
        view(3, by_key["b", 3], by_key["a", 3], "left"),
    ]
    (record,) = pair_records(votes)
    assert (record.a_label, record.b_label, record.votes, record.a_wins) == ("a", "b", 4, 2.5)
    assert record.ci_low < 0.625 < record.ci_high
    result = analyze_votes(votes)
    assert (result.n_votes, result.n_ties, result.left_share) == (4, 1, pytest.approx(2 / 3))


def test_agreement_counts_the_decisive_votes_where_the_scorer_preferred_the_chosen_image() -> None:
    runs = runs_of(("a", "b"), seeds=4)
    by_key = {(r.label, r.seed): r for r in runs}
    votes = [
        view(0, by_key["a", 0], by_key["b", 0], "left"),   # clip agrees, hps disagrees
        view(1, by_key["b", 1], by_key["a", 1], "right"),  # clip agrees, hps ties (left out)
        view(2, by_key["a", 2], by_key["b", 2], "tie"),    # a tie: no side to agree with
        view(3, by_key["b", 3], by_key["a", 3], "left"),   # clip disagrees; hps has no score of b
    ]  # fmt: skip
    rows = []
    for seed in range(4):
        rows += [(by_key["a", seed].run_id, "clip", 0.3), (by_key["b", seed].run_id, "clip", 0.2)]
        rows += [(by_key["a", seed].run_id, "hps", 0.1)]
    rows += [(by_key["b", 0].run_id, "hps", 0.4), (by_key["b", 1].run_id, "hps", 0.1)]
    scores = pd.DataFrame(rows, columns=["run_id", "scorer", "value"])
    found = {a.scorer: a for a in scorer_agreement(votes, scores)}
    assert (found["clip"].agree, found["clip"].n, found["clip"].scorer_ties, found["clip"].unscored) == (2, 3, 0, 0)
    assert (found["hps"].agree, found["hps"].n, found["hps"].scorer_ties, found["hps"].unscored) == (0, 1, 1, 1)
    assert [a.scorer for a in scorer_agreement(votes, scores)] == ["clip", "hps"]
    assert format_agreement(found["clip"]) == "clip agrees with you on 67% (95% CI 21-94%) of 3 pairs"


def test_agreement_intervals_cover_a_scorers_true_agreement_95_percent_of_the_time() -> None:
    """400 simulated sets of 120 decisive votes, a scorer agreeing with each with probability 0.7."""
    rng = np.random.default_rng(5)
    runs = runs_of(("a", "b"), seeds=120)
    by_key = {(r.label, r.seed): r for r in runs}
    votes = [view(i, by_key["a", i], by_key["b", i], "left") for i in range(120)]
    covered = 0
    for _ in range(400):
        agrees = rng.random(120) < 0.7
        rows = [(by_key["a", i].run_id, "s", 1.0 if agrees[i] else 0.0) for i in range(120)]
        rows += [(by_key["b", i].run_id, "s", 0.5) for i in range(120)]
        (found,) = scorer_agreement(votes, pd.DataFrame(rows, columns=["run_id", "scorer", "value"]))
        covered += found.ci_low <= 0.7 <= found.ci_high
    assert 0.92 <= covered / 400 <= 0.98


def test_no_votes_says_where_to_judge() -> None:
    with pytest.raises(PromptlabError, match="experiment 'e' has no votes yet: judge its images on the dashboard's Judge page"):
        analyze_votes([], experiment="e")


def test_the_analysis_of_stored_votes_reads_as_the_cli_prints_it(store: Store) -> None:
    ids = fill(store, keys=("a", "b"), seeds=4)
    for seed in range(4):
        store.record_vote(ids["b", seed, "a squirrel"], ids["a", seed, "a squirrel"], "right", voter="me")
    result = analyze_votes(store.list_votes("e"), store.vote_scores("e"), experiment="e")
    lines = format_votes(result)
    assert lines[0] == "4 votes (0 ties) by me"
    assert "  clip agrees with you on 100% (95% CI 51-100%) of 4 pairs" in lines
    assert "  aesthetic agrees with you on 0% (95% CI 0-49%) of 4 pairs" in lines
    assert json.loads(json.dumps(result.to_dict()))["strengths"][0]["label"] == "style=a"


# Export and the CLI


def test_export_writes_every_vote_as_csv_or_json(store: Store, tmp_path: Path) -> None:
    ids = fill(store, keys=("a", "b"))
    store.record_vote(ids["a", 0, "a squirrel"], ids["b", 0, "a squirrel"], "left", voter="me")
    store.record_vote(ids["b", 1, "a squirrel"], ids["a", 1, "a squirrel"], "tie", voter="you")
    votes = store.list_votes("e")
    table = pd.read_csv(export_votes(votes, tmp_path / "votes.csv"))
    assert table[["left_run_id", "right_run_id", "left_label", "right_label", "seed", "choice", "voter"]].values.tolist() == [
        [ids["a", 0, "a squirrel"], ids["b", 0, "a squirrel"], "style=a", "style=b", 0, "left", "me"],
        [ids["b", 1, "a squirrel"], ids["a", 1, "a squirrel"], "style=b", "style=a", 1, "tie", "you"],
    ]
    rows = json.loads(export_votes(votes, tmp_path / "votes.json").read_text())
    assert rows[1]["experiment"] == "e" and rows[1]["choice"] == "tie"
    assert datetime.fromisoformat(rows[0]["created_at"]) == votes[0].created_at
    with pytest.raises(ExportError, match=r"votes\.xlsx: suffix '\.xlsx'; expected \.csv or \.json"):
        export_votes(votes, tmp_path / "votes.xlsx")


def test_the_votes_commands_add_list_and_export(store: Store, tmp_path: Path) -> None:
    ids = fill(store, keys=("a", "b"), seeds=3)
    for seed in range(3):
        result = runner.invoke(app, ["votes", "add", str(ids["a", seed, "a squirrel"]), str(ids["b", seed, "a squirrel"]), "left", "--voter", "me"])
        assert result.exit_code == 0, result.output
    assert result.output.startswith("vote 3: left (style=a left, style=b right, seed 2)")
    added = json.loads(runner.invoke(app, ["votes", "add", str(ids["b", 0, "a squirrel"]), str(ids["a", 0, "a squirrel"]), "tie", "--format", "json"]).output)
    assert added["choice"] == "tie" and added["left_label"] == "style=b"
    listed = runner.invoke(app, ["votes", "list", "e"])
    assert listed.exit_code == 0 and "clip agrees with you on 100%" in listed.output
    data = json.loads(runner.invoke(app, ["votes", "list", "e", "--format", "json"]).output)
    assert data["n_votes"] == 4 and {a["scorer"] for a in data["agreements"]} == {"clip", "aesthetic"}
    out = tmp_path / "v.csv"
    exported = runner.invoke(app, ["votes", "export", "e", "--out", str(out)])
    assert exported.output.strip() == f"wrote 4 votes to {out}" and len(pd.read_csv(out)) == 4
    assert json.loads(runner.invoke(app, ["votes", "export", "e", "--out", str(out), "--format", "json"]).output) == {"path": str(out), "votes": 4}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["votes", "add", "1", "999", "left"], "run 999 is not in"),
        (["votes", "add", "1", "2", "maybe"], "vote choice 'maybe'"),
        (["votes", "list", "nope"], "no experiment 'nope'"),
        (["votes", "list", "e"], "has no votes yet"),
        (["votes", "export", "e", "--out", "votes.txt"], "expected .csv or .json"),
    ],
)
def test_the_votes_commands_refuse_bad_input_with_exit_code_1(store: Store, args: list[str], message: str) -> None:
    fill(store, keys=("a", "b"))
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in str(result.exception), result.exception


def test_votes_on_postgresql_are_checked_cascade_and_list_alike(postgres_url: str) -> None:
    with open_store(postgres_url) as pg:
        ids = fill(pg, keys=("a", "b"))
        left, right = ids["a", 0, "a squirrel"], ids["b", 0, "a squirrel"]
        vote = pg.record_vote(left, right, "left", voter="me")
        assert vote.created_at.tzinfo is not None and vote.left_label == "style=a"
        with pytest.raises(StoreError, match="run 999 is not in"):
            pg.record_vote(left, 999, "left")
        pg.record_vote(ids["b", 1, "a squirrel"], ids["a", 1, "a squirrel"], "tie", voter="me")
        assert sorted(pg.vote_scores("e")["scorer"].unique()) == ["aesthetic", "clip"]
        pg.record_run(record(pg.get_experiment("e").id, "a", 0), png(99), replace=[left])
        assert [v.choice for v in pg.list_votes("e")] == ["tie"]
