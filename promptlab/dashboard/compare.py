"""Compare: an X/Y grid of an experiment's images with the score under each, paged; each cell's
mean over seeds with its interval, its seeds' images and a button that opens a run; 2 to 4 runs
side by side at their real size with their differences, in the picture and in the table.

The grid is ``export.plan_grid``'s, so its levels, their order and labels, the run each cell shows
(the best-scoring seed) and its score (two decimals) are those of the exported grid image.
"""

from __future__ import annotations

import html
import math

import pandas as pd
import streamlit as st

from promptlab.analysis import VARIANT_LEVEL, format_level
from promptlab.dashboard import data
from promptlab.errors import PromptlabError
from promptlab.export import GridPlan, grid_axes
from promptlab.export.compare import DIFFERENCE_GAIN, SHOW_PX, score_colour
from promptlab.export.grid import CellScores
from promptlab.render.params import RENDER_PARAM_NAMES

ROWS_PER_PAGE = 8
MAX_COLUMNS = 8
SIDE_BY_SIDE = 4
# The grid's cells show thumbnails: planning them at this size reads no image file for its layout.
CELL_PX = data.THUMBNAIL_PX
# A cell's seed images, small enough for a row of them under its picture.
SEED_PX = 48


def page() -> None:
    st.title("Compare")
    name = data.pick_experiment("compare_experiment")
    if name is None:
        return
    kind, scorer = data.pick_score(name, "compare")
    try:
        frame = data.runs_frame(name, kind, scorer)
    except PromptlabError as error:
        data.show_error(error)
        return
    if frame.empty:
        st.info(f"Experiment {name!r} has no runs yet.")
        return
    _grid(name, frame, kind, scorer)
    _side_by_side(frame)


def _grid(name: str, frame: pd.DataFrame, kind: str, scorer: str | None) -> None:
    axes = grid_axes(frame)
    left, right = st.columns(2)
    y = left.selectbox("Y axis (rows)", axes, index=0, key="compare_y")
    others = [axis for axis in axes if axis != y]
    x = right.selectbox("X axis (columns)", others, index=others.index("seed") if "seed" in others else 0, key="compare_x")
    keep = _filters(name)
    if keep is None:
        return
    try:
        # A lost image file is a warning in its cell, not an error for the whole grid.
        plan, lost = data.grid_plan(name, x, y, CELL_PX, kind, keep, scorer)
        scores = data.grid_cell_scores(name, x, y, kind, keep, scorer)
    except PromptlabError as error:
        data.show_error(error)
        return
    columns = min(len(plan.x_labels), MAX_COLUMNS)
    if len(plan.x_labels) > MAX_COLUMNS:
        st.caption(f"Showing the first {MAX_COLUMNS} of {len(plan.x_labels)} columns.")
    pages = max(1, math.ceil(len(plan.y_labels) / ROWS_PER_PAGE))
    number = st.number_input(f"Page (of {pages})", 1, pages, 1, key="compare_page") if pages > 1 else 1
    colour = st.toggle("Colour by score", value=True, key="compare_colour")
    means = [cell.mean for cell in scores if not math.isnan(cell.mean)]
    low, high = (min(means), max(means)) if means else (math.nan, math.nan)
    st.caption(
        f"Each cell shows its best-scoring seed and that run's {kind} score"
        + (f" from {scorer}" if scorer else "")
        + ", as the exported grid does; "
        f"below it the cell's mean over its seeds with the {format_level(VARIANT_LEVEL)} interval"
        + (", from red (the grid's lowest mean) to green (its highest)" if colour else "")
        + ", and its seeds' images."
    )
    by_run = frame.set_index("run_id")
    header = st.columns([1] + [1] * columns)
    header[0].markdown(f"**{data.markdown_text(y)} \\\\ {data.markdown_text(x)}**")
    for col, label in zip(header[1:], plan.x_labels):
        col.markdown(f"**{data.markdown_text(label)}**")
    for row in range((number - 1) * ROWS_PER_PAGE, min(number * ROWS_PER_PAGE, len(plan.y_labels))):
        line = st.columns([1] + [1] * columns)
        line[0].markdown(f"**{data.markdown_text(plan.y_labels[row])}**")
        for column, col in enumerate(line[1:]):
            cell = scores[row * len(plan.x_labels) + column]
            _cell(col, plan, row, column, lost)
            _cell_scores(col, cell, score_colour(cell.mean, low, high) if colour else None)
            _seeds(col, by_run, cell)
            if cell.run_ids and col.button("Enlarge", key=f"compare_open_{row}_{column}", help="The runs of this cell, enlarged, with their prompts and parameters"):
                _open(frame, cell, plan.cell(row, column).run_id)


def _filters(name: str) -> data.Keep | None:
    """The levels picked per axis (only axes narrowed appear); None when an axis has none picked."""
    levels = {axis: labels for axis, labels in data.levels(name).items() if len(labels) > 1}
    keep = []
    with st.expander("Filter levels"):
        for axis, labels in levels.items():
            picked = st.multiselect(axis, labels, default=labels, key=f"compare_keep_{axis}")
            if not picked:
                st.info(f"Pick at least one level of {axis} to see the grid.")
                return None
            if len(picked) < len(labels):
                keep.append((axis, tuple(picked)))
    return tuple(keep)


def _cell(col, plan: GridPlan, row: int, column: int, lost: int) -> None:  # type: ignore[no-untyped-def]
    cell = plan.cell(row, column)
    if cell.status == "ok" and cell.image is not None:
        best = f" · best of {cell.n_runs}" if cell.n_runs > 1 else ""
        caption = f"score {data.score_text(cell.score)}{best} · #{cell.run_id}"
        picture = data.cell_picture(str(cell.image))
        if picture is None:
            col.warning(f"{caption}: {data.MISSING_IMAGE}")
        else:
            col.image(picture, width="stretch")
            col.caption(caption)
    elif cell.status == "missing":
        col.caption("no run")
    elif lost:
        col.warning(f"no image: failed, or {data.MISSING_IMAGE}")
    else:
        col.error("failed" if cell.n_runs == 1 else f"{cell.n_runs} runs, all failed")


def _cell_scores(col, cell: CellScores, colour: str | None) -> None:  # type: ignore[no-untyped-def]
    if not cell.run_ids:
        return
    text = html.escape(data.cell_text(cell))
    if colour is None:
        col.markdown(f"<div class='cell-mean'>{text}</div>", unsafe_allow_html=True)
        return
    style = f"background-color: {colour}; color: #000; border-radius: 4px; padding: 2px 6px; font-size: 0.85em"
    col.markdown(f"<div class='cell-mean' style='{style}'>{text}</div>", unsafe_allow_html=True)


def _seeds(col, by_run: pd.DataFrame, cell: CellScores) -> None:  # type: ignore[no-untyped-def]
    """A row of small images, one per run of the cell (``by_run``: the runs indexed by run_id), when it holds more than one."""
    if len(cell.run_ids) < 2:
        return
    runs = by_run.loc[list(cell.run_ids)]
    # one seed (seed is an axis): the runs differ by another axis, so their ids tell them apart
    name = (lambda r: f"#{r.Index}") if len(set(cell.seeds)) == 1 else (lambda r: f"seed {r.seed}")
    shown = [(data.thumbnail(str(r.image), SEED_PX), name(r)) for r in runs.itertuples() if isinstance(r.image, str)]
    shown = [(image, caption) for image, caption in shown if image is not None]
    if shown:
        col.image([image for image, _ in shown], caption=[caption for _, caption in shown], width=SEED_PX)


@st.dialog("Runs of this cell", width="large")
def _open(frame: pd.DataFrame, cell: CellScores, shown_run: object) -> None:
    choices = {f"#{run_id}, seed {seed}": run_id for run_id, seed in zip(cell.run_ids, cell.seeds)}
    first = next((label for label, run_id in choices.items() if run_id == shown_run), next(iter(choices)))
    picked = st.radio("Run", list(choices), index=list(choices).index(first), horizontal=True,
                      key=f"compare_open_run_{cell.row}_{cell.column}")  # fmt: skip
    _run_details(int(choices[picked]))


def _run_details(run_id: int) -> None:
    """One run enlarged (nearest-neighbour when small) with its prompt, negative, seed, parameters and scores."""
    try:
        run = data.store().get_run(run_id)
    except PromptlabError as error:
        data.show_error(error)
        return
    picture = data.enlarged(str(run.image_path)) if run.image_path is not None else None
    if picture is not None:
        st.image(picture, caption=f"#{run.id} {run.label}, seed {run.seed}, shown at {picture.width}x{picture.height}",
                 width=picture.width)
    elif run.image_path is not None:
        st.warning(f"#{run.id}: {data.MISSING_IMAGE}")
    else:
        st.error(f"#{run.id} failed: {run.error}")
    st.markdown("**Prompt**")
    st.code(run.prompt, language=None, wrap_lines=True)
    st.markdown("**Negative prompt**")
    st.code(run.negative_prompt or "(none)", language=None, wrap_lines=True)
    facts = {"seed": run.seed, "model": run.model, **run.params,
             **{f"score: {s.kind} ({s.scorer})": data.score_text(s.value) for s in run.scores}}  # fmt: skip
    st.dataframe(pd.DataFrame({"value": [str(v) for v in facts.values()]}, index=list(facts)), width="stretch")


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
    st.caption(f"At their real size; smaller than {SHOW_PX} pixels, enlarged by a whole factor, each pixel a square.")
    for col, run in zip(st.columns(len(runs)), runs):
        caption = f"#{run['run_id']} {run['label']}, seed {run['seed']}"
        picture = data.enlarged(run["image"])
        if picture is None:
            col.warning(f"{caption}: {data.MISSING_IMAGE}")
        else:
            col.image(picture, caption=caption, width=picture.width)  # its own size, not stretched to the column
    if st.toggle("Difference from the first", value=True, key="compare_difference"):
        _differences(runs)
    table = pd.DataFrame({f"#{run['run_id']}": _facts(run) for run in runs}).fillna("absent")
    differs = table.astype(str).nunique(axis=1) > 1
    st.dataframe(
        table.astype(str).style.apply(
            lambda row: ["background-color: #fff3b0; font-weight: bold" if differs[row.name] else ""] * len(row), axis=1
        ),
        width="stretch",
    )
    st.caption("Highlighted: the terms and parameters that differ.")


def _differences(runs: list[pd.Series]) -> None:
    first = runs[0]
    columns = st.columns(len(runs))
    columns[0].caption(f"Each other run against #{first['run_id']}: the absolute difference, {DIFFERENCE_GAIN}x brighter; black is the same.")
    for col, run in zip(columns[1:], runs[1:]):
        try:
            found = data.image_difference(first["image"], run["image"])
        except PromptlabError as error:
            col.warning(str(error))
            continue
        if found is None:
            col.warning(f"#{run['run_id']}: {data.MISSING_IMAGE}")
            continue
        caption = f"#{run['run_id']} vs #{first['run_id']}: mean {found.mean:.1f}, most {found.max} of 255 levels"
        col.image(found.image, caption=caption, width=found.image.width)


def _facts(run: pd.Series) -> dict[str, object]:
    facts: dict[str, object] = {"score": data.score_text(run["score"]), "seed": run["seed"], "model": run["model"],
                                "prompt": run["prompt"], "negative_prompt": run["negative_prompt"]}  # fmt: skip
    facts.update({name: run[name] for name in RENDER_PARAM_NAMES})
    for term in run["terms"]:
        facts[f"term: {term['text']}"] = f"weight {term['weight']:g}"
    return facts
