"""Compare: an X/Y grid of an experiment's images with the score under each, paged; 2 to 4 runs side
by side with their differences marked.

The grid is ``export.plan_grid``'s, so its levels, their order and labels, the run each cell shows
(the best-scoring one) and its score (two decimals) are those of the exported grid image.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from promptlab.dashboard import data
from promptlab.errors import PromptlabError
from promptlab.export import GridPlan, grid_axes
from promptlab.render.params import RENDER_PARAM_NAMES

ROWS_PER_PAGE = 8
MAX_COLUMNS = 8
SIDE_BY_SIDE = 4
# The grid's cells show thumbnails: planning them at this size reads no image file for its layout.
CELL_PX = data.THUMBNAIL_PX


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
    _grid(name, frame)
    _side_by_side(frame)


def _grid(name: str, frame: pd.DataFrame) -> None:
    axes = grid_axes(frame)
    left, right = st.columns(2)
    y = left.selectbox("Y axis (rows)", axes, index=0, key="compare_y")
    others = [axis for axis in axes if axis != y]
    x = right.selectbox("X axis (columns)", others, index=others.index("seed") if "seed" in others else 0, key="compare_x")
    try:
        # A lost image file is a warning in its cell, not an error for the whole grid.
        plan, lost = data.grid_plan(name, x, y, CELL_PX)
    except PromptlabError as error:
        data.show_error(error)
        return
    columns = min(len(plan.x_labels), MAX_COLUMNS)
    if len(plan.x_labels) > MAX_COLUMNS:
        st.caption(f"Showing the first {MAX_COLUMNS} of {len(plan.x_labels)} columns.")
    pages = max(1, math.ceil(len(plan.y_labels) / ROWS_PER_PAGE))
    number = st.number_input(f"Page (of {pages})", 1, pages, 1, key="compare_page") if pages > 1 else 1
    st.caption("Each cell shows its best-scoring run and that run's score, as the exported grid does.")
    header = st.columns([1] + [1] * columns)
    header[0].markdown(f"**{data.markdown_text(y)} \\\\ {data.markdown_text(x)}**")
    for col, label in zip(header[1:], plan.x_labels):
        col.markdown(f"**{data.markdown_text(label)}**")
    for row in range((number - 1) * ROWS_PER_PAGE, min(number * ROWS_PER_PAGE, len(plan.y_labels))):
        line = st.columns([1] + [1] * columns)
        line[0].markdown(f"**{data.markdown_text(plan.y_labels[row])}**")
        for column, col in enumerate(line[1:]):
            _cell(col, plan, row, column, lost)


def _cell(col, plan: GridPlan, row: int, column: int, lost: int) -> None:  # type: ignore[no-untyped-def]
    cell = plan.cell(row, column)
    if cell.status == "ok" and cell.image is not None:
        best = f" · best of {cell.n_runs}" if cell.n_runs > 1 else ""
        data.show_image(col, cell.image, f"score {data.score_text(cell.score)}{best} · #{cell.run_id}", thumb=True)
    elif cell.status == "missing":
        col.caption("no run")
    elif lost:
        col.warning(f"no image: failed, or {data.MISSING_IMAGE}")
    else:
        col.error("failed" if cell.n_runs == 1 else f"{cell.n_runs} runs, all failed")


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
    facts.update({name: run[name] for name in RENDER_PARAM_NAMES})
    for term in run["terms"]:
        facts[f"term: {term['text']}"] = f"weight {term['weight']:g}"
    return facts
