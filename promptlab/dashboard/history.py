"""History: every run with its thumbnail, searchable by prompt text, filtered by experiment (an
incomplete one marked), model and date, paged; click a row to open its run, and render it again
from what was recorded (``runner.rerender``: the new run is logged)."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from promptlab.dashboard import data, state
from promptlab.errors import PromptlabError

PAGE_SIZE = 50
ANY = "(any)"


def page() -> None:
    st.title("History")
    summaries = data.experiments()
    top = st.columns([3, 2, 2, 2])
    search = top[0].text_input("Search prompts", key="history_search")
    experiment = top[1].selectbox("Experiment", [ANY] + [e.name for e in summaries], key="history_experiment",
                                  format_func=lambda name: name if name == ANY else state.marked(name))  # fmt: skip
    models = sorted({m for e in summaries for m in e.models})
    model = top[2].selectbox("Model", [ANY] + models, key="history_model")
    dates = top[3].date_input("Dates", value=(), key="history_dates")
    filters = {
        "experiment": None if experiment == ANY else experiment,
        "search": search or None,
        "model": None if model == ANY else model,
        **_date_bounds(dates),
    }
    store = data.store()
    try:
        total = store.count_runs(**filters)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        number = st.number_input(f"Page (of {pages}; {total} runs)", 1, pages, 1, key="history_page")
        runs = store.list_runs(**filters, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    except PromptlabError as error:
        data.show_error(error)
        return
    if not runs:
        st.info("No run matches." if total == 0 and any(filters.values()) else "No runs yet.")
        return
    if experiment != ANY and state.incomplete(experiment):
        st.warning(f"{experiment}: {state.state_text(experiment)}.")
    # Short columns first and the long texts last and bounded, so the score stays on screen.
    table = st.dataframe(
        pd.DataFrame(
            [
                {"id": r.id, "score": data.score_text(r.score("intent")), "image": state.thumbnail_url(r.image_path, r.status),
                 "status": r.status, "seed": r.seed, "variant": r.label, "experiment": r.experiment,
                 "model": r.model, "created": r.created_at, "prompt": r.prompt}
                for r in runs
            ]  # fmt: skip
        ),
        column_config={
            "id": st.column_config.NumberColumn("id", width="small", format="%d"),
            "score": st.column_config.TextColumn("score", width="small", help="against the intent"),
            "image": st.column_config.ImageColumn("image", width="small", help="double-click to enlarge"),
            "status": st.column_config.TextColumn("status", width="small"),
            "seed": st.column_config.NumberColumn("seed", width="small", format="%d"),
            "variant": st.column_config.TextColumn("variant", width="medium"),
            "experiment": st.column_config.TextColumn("experiment", width="small"),
            "model": st.column_config.TextColumn("model", width="small"),
            "created": st.column_config.DatetimeColumn("created", width="medium", format="YYYY-MM-DD HH:mm"),
            "prompt": st.column_config.TextColumn("prompt", width="large"),
        },
        hide_index=True,
        width="stretch",
        row_height=64,
        key="history_table",
        on_select="rerun",
        selection_mode="single-row",
    )
    st.caption("Click a row to open its run.")
    # A selection kept from another page of runs may point past this one.
    selected = [row for row in table.selection.rows if row < len(runs)]
    labels = {f"#{r.id} {r.experiment}: {r.label}, seed {r.seed}": r.id for r in runs}
    picked = st.selectbox("Open run", list(labels), index=None, key="history_open")
    if selected:
        _show_run(runs[selected[0]].id)
    elif picked is not None:
        _show_run(labels[picked])


def _date_bounds(dates: tuple) -> dict[str, datetime]:
    """The picked days as UTC bounds: ``until`` is the start of the day after the last one."""
    if not dates:
        return {}
    first, last = dates[0], dates[-1]
    return {
        "since": datetime.combine(first, time.min, timezone.utc),
        "until": datetime.combine(last + timedelta(days=1), time.min, timezone.utc),
    }


def _show_run(run_id: int) -> None:
    run = data.store().get_run(run_id)
    st.subheader(f"Run #{run.id}")
    left, right = st.columns([1, 2])
    if run.image_path is not None:
        data.show_image(left, run.image_path, f"seed {run.seed}")
    else:
        left.error(f"failed: {run.error}")
    right.code(run.prompt, language=None)
    if run.negative_prompt:
        right.caption(f"Negative: {run.negative_prompt}")
    right.json({"experiment": run.experiment, "model": run.model, "task": run.task, "seed": run.seed,
                "params": run.params, "axes": run.axes,
                "scores": {f"{s.kind}/{s.scorer}": data.score_text(s.value) for s in run.scores}}, expanded=False)  # fmt: skip
    if st.button("Render again", key="history_rerender"):
        _render_again(run)


def _render_again(run) -> None:  # type: ignore[no-untyped-def]
    from promptlab.runner import rerender

    with st.spinner("Rendering..."):
        try:
            (again,) = rerender(run.id, data.writable_store())
        except PromptlabError as error:
            data.show_error(error)
            return
        finally:
            data.refresh()
    if again.max_diff is None:
        same = "nothing to compare with"
    elif again.max_diff == 0:
        same = "the same pixels as the original"
    else:
        same = f"differs from the original by up to {again.max_diff} of 255 levels"
    data.show_image(st, again.image, f"rendered again: seed {again.seed}, run #{again.run_id} in renders; {same}")
