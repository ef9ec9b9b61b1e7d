"""Compare: an X/Y grid of an experiment's images (variants by seeds by default) with the score
under each, sortable by score and paged; 2 to 4 runs side by side with their differences marked."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from promptlab.dashboard import data
from promptlab.errors import PromptlabError
from promptlab.store import PARAM_COLUMNS

ROWS_PER_PAGE = 8
MAX_COLUMNS = 8
SIDE_BY_SIDE = 4
AXIS_NAMES = {"variant": "label", "seed": "seed"}


def page() -> None:
    st.title("Compare")
    name = data.pick_experiment("compare_experiment")
    if name is None:
        return
    try:
        frame = data.runs_frame(name)
    except PromptlabError as error:
        data.show_error(error)
        return
    if frame.empty:
        st.info(f"Experiment {name!r} has no runs yet.")
        return
    _grid(frame)
    _side_by_side(frame)


def _axis_choices(frame: pd.DataFrame) -> dict[str, str]:
    choices = dict(AXIS_NAMES)
    choices.update({c.removeprefix("axis:"): c for c in frame.columns if c.startswith("axis:")})
    if frame["subject"].nunique() > 1:
        choices["subject"] = "subject"
    return choices


def _grid(frame: pd.DataFrame) -> None:
    choices = _axis_choices(frame)
    left, middle, right = st.columns(3)
    y_name = left.selectbox("Y axis (rows)", list(choices), index=0, key="compare_y")
    x_name = middle.selectbox("X axis (columns)", list(choices), index=1, key="compare_x")
    order = right.selectbox("Sort rows by", ["score, best first", "score, worst first", "name"], key="compare_sort")
    y, x = choices[y_name], choices[x_name]
    cells = frame.assign(_y=frame[y].astype(str), _x=frame[x].astype(str))
    rows = cells.groupby("_y")["score"].mean()
    if order == "name":
        rows = rows.sort_index()
    else:
        rows = rows.sort_values(ascending=order.endswith("worst first"), na_position="last")
    columns = sorted(cells["_x"].unique(), key=_natural)
    if len(columns) > MAX_COLUMNS:
        st.caption(f"Showing the first {MAX_COLUMNS} of {len(columns)} columns.")
        columns = columns[:MAX_COLUMNS]
    pages = max(1, math.ceil(len(rows) / ROWS_PER_PAGE))
    number = st.number_input(f"Page (of {pages})", 1, pages, 1, key="compare_page") if pages > 1 else 1
    shown = rows.index[(number - 1) * ROWS_PER_PAGE : number * ROWS_PER_PAGE]
    header = st.columns([2] + [1] * len(columns))
    header[0].markdown(f"**{y_name} \\ {x_name}**")
    for col, value in zip(header[1:], columns):
        col.markdown(f"**{value}**")
    # Only the cells on screen: grouping all 5,000 runs of a big experiment costs half a second a rerun.
    visible = cells[cells["_y"].isin(shown) & cells["_x"].isin(columns)]
    by_cell = {key: group for key, group in visible.groupby(["_y", "_x"])}
    for row in shown:
        line = st.columns([2] + [1] * len(columns))
        line[0].markdown(f"**{row}**  \nmean {data.score_text(rows[row])}")
        for col, value in zip(line[1:], columns):
            group = by_cell.get((row, value))
            if group is None:
                continue
            run = group.iloc[0]
            more = f" (+{len(group) - 1} more)" if len(group) > 1 else ""
            if run["image"]:
                data.show_image(col, run["image"], f"score {data.score_text(run['score'])}{more} · #{run['run_id']}", thumb=True)
            else:
                col.error(f"failed: {run['error']}")


def _natural(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _side_by_side(frame: pd.DataFrame) -> None:
    st.subheader("Side by side")
    ok = frame[frame["image"].notna()]
    labels = {
        f"#{r.run_id} {r.label}, seed {r.seed} ({data.score_text(r.score)})": r.run_id for r in ok.itertuples()
    }
    picked = st.multiselect("Pick 2 to 4 runs", list(labels), max_selections=SIDE_BY_SIDE, key="compare_pick")
    if len(picked) < 2:
        st.caption("Pick at least 2 runs to see them at full size with their differences.")
        return
    runs = [ok[ok["run_id"] == labels[p]].iloc[0] for p in picked]
    for col, run in zip(st.columns(len(runs)), runs):
        data.show_image(col, run["image"], f"#{run['run_id']} {run['label']}, seed {run['seed']}")
    table = pd.DataFrame({f"#{run['run_id']}": _facts(run) for run in runs}).fillna("absent")
    differs = table.astype(str).nunique(axis=1) > 1
    st.dataframe(
        table.astype(str).style.apply(
            lambda row: ["background-color: #fff3b0; font-weight: bold" if differs[row.name] else ""] * len(row), axis=1
        ),
        width="stretch",
    )
    st.caption("Highlighted: the terms and parameters that differ.")


def _facts(run: pd.Series) -> dict[str, object]:
    facts: dict[str, object] = {"score": data.score_text(run["score"]), "seed": run["seed"], "model": run["model"],
                                "prompt": run["prompt"], "negative_prompt": run["negative_prompt"]}  # fmt: skip
    facts.update({name: run[name] for name in PARAM_COLUMNS})
    for term in run["terms"]:
        facts[f"term: {term['text']}"] = f"weight {term['weight']:g}"
    return facts
