"""Judge: two images of one seed from two variants side by side, labels hidden and sides shuffled; a key press votes.

The pair comes from ``analysis.next_pair``; the vote goes to ``Store.record_vote``; the next pair's
pictures are read and enlarged while this one is shown, so the next vote shows at once. Insights
shows what the votes say (``votes_section``), from ``analysis.analyze_votes``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from promptlab.analysis import (
    VotePair,
    analyze_votes,
    counted,
    format_agreement,
    format_level,
    next_pair,
    strengths_table,
    votes_table,
)
from promptlab.dashboard import data
from promptlab.errors import PromptlabError
from promptlab.paths import database_url
from promptlab.store import VoteRun, default_voter

#: How large each image is shown: a small image enlarged with square pixels, a large one shrunk.
JUDGE_PX = 448

#: Each button's choice, its label and its key (Streamlit's ``shortcut`` names).
BUTTONS = (
    ("left", "Left is better", "Left"),
    ("tie", "Tie", "Down"),
    ("skip", "Skip", "Up"),
    ("right", "Right is better", "Right"),
)


@dataclass
class Queue:
    """One voter's pairs on one experiment in this browser session: shown now, preloaded next, skipped, last voted."""

    current: VotePair | None = None
    upcoming: VotePair | None = None
    skipped: set[frozenset[int]] = field(default_factory=set)
    last: tuple[VotePair, str] | None = None
    error: str | None = None


def page() -> None:
    st.title("Judge")
    name = data.pick_experiment("judge_experiment")
    if name is None:
        return
    voter = st.text_input("Voter", value=default_voter(), key="judge_voter", help="Your name on the votes you cast here (by default the user the dashboard runs as).")
    voter = voter.strip() or default_voter()
    try:
        store = data.writable_store()
        runs = vote_runs(name)
        votes = store.list_votes(name)
    except PromptlabError as error:
        data.show_error(error)
        return
    queue = _queue(name, voter)
    if queue.error:
        st.error(queue.error)
        queue.error = None
    # 1. The pair to show now, and the one after it (its pictures read now, so the next vote shows at once)
    seed = f"{name}:{voter}:{len(votes)}:{len(queue.skipped)}"
    if queue.current is None:
        queue.current = next_pair(runs, votes, voter=voter, rng=random.Random(seed), exclude=queue.skipped)
    if queue.current is None:
        st.info("No pair to judge: a vote needs two variants rendered on the same seed (run the experiment first).")
        return
    if queue.upcoming is None or queue.upcoming.key == queue.current.key:
        queue.upcoming = next_pair(
            runs, votes, voter=voter, rng=random.Random(seed + ":next"), exclude=queue.skipped | {queue.current.key}
        )
    # 2. The two images, labels hidden
    mine = sum(v.voter == voter for v in votes)
    st.caption(f"{counted(mine, 'vote')} by {voter} on this experiment, {len(votes)} by everybody. Keys: ← left, → right, ↓ tie, ↑ skip.")
    left, right = st.columns(2)
    _show(left, queue.current.left)
    _show(right, queue.current.right)
    # 3. The buttons (and their keys)
    for column, (choice, label, key) in zip(st.columns(len(BUTTONS)), BUTTONS):
        column.button(label, key=f"judge_{choice}", shortcut=key, on_click=_vote, args=(name, voter, choice), width="stretch")
    if queue.last is not None:
        pair, choice = queue.last
        with st.expander("Which was which (your last vote)"):
            st.markdown(
                f"Left: **{data.markdown_text(pair.left.label)}**; right: **{data.markdown_text(pair.right.label)}**; "
                f"seed {pair.left.seed}. You chose **{choice}**."
            )
    if queue.upcoming is not None:
        for run in (queue.upcoming.left, queue.upcoming.right):
            data.cell_picture(str(run.image), JUDGE_PX)


def votes_section(name: str) -> None:
    """What the experiment's votes say, for Insights: each variant's strength and each scorer's agreement."""
    st.subheader("Your votes")
    try:
        store = data.store()
        votes = store.list_votes(name)
        if not votes:
            st.caption("No votes yet: judge this experiment's images on the **Judge** page.")
            return
        result = analyze_votes(votes, store.vote_scores(name), experiment=name)
    except PromptlabError as error:
        data.show_error(error)
        return
    st.caption(
        f"{counted(result.n_votes, 'vote')} ({counted(result.n_ties, 'tie')}) by {', '.join(result.voters)}. Strength: Bradley-Terry, a tie half a "
        f"win each, centred so 0 is an average variant, with its {format_level(result.level)} CI."
    )
    st.dataframe(strengths_table(result), hide_index=True, width="stretch",
                 column_config={"strength": st.column_config.NumberColumn(format="%+.2f")})  # fmt: skip
    if result.groups > 1:
        st.caption("No vote links some variants to others (several subjects?): strengths compare only within a group.")
    for agreement in result.agreements:
        st.markdown(f"- {data.markdown_text(format_agreement(agreement))}")
    st.download_button("Download the votes (CSV)", votes_table(votes).to_csv(index=False), file_name=f"{name}-votes.csv",
                       mime="text/csv", key="insights_votes_csv")  # fmt: skip


def vote_runs(name: str) -> list[VoteRun]:
    """``Store.vote_runs``, cached until the experiment gets new runs."""
    return _vote_runs(database_url(), name, data.version(name))


@st.cache_data(max_entries=16, show_spinner=False)
def _vote_runs(url: str, name: str, version: str) -> list[VoteRun]:
    return data.store().vote_runs(name)


def _queue(name: str, voter: str) -> Queue:
    queues = st.session_state.setdefault("judge_queues", {})
    return queues.setdefault((name, voter), Queue())


def _show(column: DeltaGenerator, run: VoteRun) -> None:
    picture = data.cell_picture(str(run.image), JUDGE_PX)
    if picture is None:
        column.warning(f"{data.MISSING_IMAGE}; skip this pair (↑)")
    else:
        column.image(picture, width="content")


def _vote(name: str, voter: str, choice: str) -> None:
    """A button's callback: record the vote (a skip only sets the pair aside), then move on to the preloaded pair."""
    queue = _queue(name, voter)
    pair = queue.current
    if pair is None:
        return
    if choice == "skip":
        queue.skipped.add(pair.key)
    else:
        try:
            data.writable_store().record_vote(pair.left.run_id, pair.right.run_id, choice, voter=voter)
        except PromptlabError as error:
            # a run gone meanwhile (rendered again): read the runs afresh and show another pair
            queue.error = str(error)
            queue.current = queue.upcoming = None
            _vote_runs.clear()
            return
        queue.last = (pair, choice)
    # the preloaded pair is the one just judged only where it was the last one left: then pick afresh
    upcoming = queue.upcoming if queue.upcoming is not None and queue.upcoming.key != pair.key else None
    queue.current, queue.upcoming = upcoming, None
