"""Home: every experiment with its planned, done and failed cells, its best image and score; or,
when the store is empty, what to do first (with the demo button)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from promptlab.dashboard import data, state
from promptlab.errors import PromptlabError
from promptlab.store import ExperimentSummary


def page() -> None:
    st.title("promptlab")
    summaries = data.experiments()
    if not summaries:
        _first_steps()
        return
    st.write(f"Runs are kept in `{data.store().url}`.")
    rows = [_row(e) for e in summaries]
    unfinished = [row["experiment"] for row in rows if row["state"] == "incomplete"]
    if unfinished:
        st.warning(f"Incomplete: {', '.join(unfinished)}. `promptlab run` on the experiment file (or **Run**) "
                   "renders the cells not done yet and retries the failed ones.")  # fmt: skip
    frame = pd.DataFrame(rows)
    if not frame["note"].any():
        frame = frame.drop(columns="note")
    st.dataframe(
        frame,
        column_config={
            "best image": st.column_config.ImageColumn("best image", width="small", help="the highest-scoring image"),
            "best score": st.column_config.TextColumn("best score", width="small", help="against the intent"),
            "experiment": st.column_config.TextColumn("experiment", width="medium"),
            "state": st.column_config.TextColumn("state", width=100),
            "planned": st.column_config.TextColumn("planned", width="small", help="cells (variant x seed) its file plans"),
            "done": st.column_config.NumberColumn("done", width="small", format="%d"),
            "failed": st.column_config.NumberColumn("failed", width="small", format="%d"),
            "not run": st.column_config.TextColumn("not run", width="small", help="planned cells with no run yet"),
            "note": st.column_config.TextColumn("note", width="large", help="why the planned cells are not known"),
            "last run": st.column_config.DatetimeColumn("last run", width="medium", format="YYYY-MM-DD HH:mm"),
        },
        hide_index=True,
        width="stretch",
        row_height=64,
    )
    st.caption("Build a prompt, Run an experiment, then Compare its images and read its Insights.")


def _row(summary: ExperimentSummary) -> dict[str, Any]:
    """One experiment's line: its state from ``analysis.progress`` (cached), best image and score."""
    found = state.state(summary.name)
    if isinstance(found, str):
        return {"best image": state.placeholder_url("not known"), "best score": "", "experiment": summary.name,
                "state": "not known", "planned": "", "done": summary.ok, "failed": summary.failed, "not run": "",
                "last run": summary.last_run_at, "subject": summary.subject, "models": ", ".join(summary.models),
                "note": found}  # fmt: skip
    cells, best = found.cells, found.best
    return {
        "best image": state.thumbnail_url(best.image if best else None),
        "best score": data.score_text(best.score if best else None),
        "experiment": summary.name,
        "state": "incomplete" if found.incomplete else "complete" if cells.planned is not None else "plan not known",
        "planned": "not known" if cells.planned is None else str(cells.planned),
        "done": cells.done,
        "failed": cells.failed,
        "not run": "" if cells.not_run is None else str(cells.not_run),
        "last run": summary.last_run_at,
        "subject": summary.subject,
        "models": ", ".join(summary.models),
        "note": cells.note if cells.planned is None else "",
    }


def _first_steps() -> None:
    st.subheader("No runs yet")
    st.markdown(
        "1. **Build** a prompt from the vocabulary and save it as an experiment file.\n"
        "2. **Run** it: every image and its CLIP score is kept.\n"
        "3. **Compare** the images, read the term effects in **Insights**, **Export** the results.\n\n"
        "Or run the demo first: seconds on a CPU with the built-in micro models, which draw simple "
        "shapes that follow their prompts. It asks which colour gives the red circle the intent "
        "wants, and whether naming an artist helps (micro ignores artists, so it should not)."
    )
    if st.button("Run the demo", type="primary", key="run_demo"):
        _run_demo()


def _run_demo() -> None:
    from promptlab.demo import run_demo

    bar = st.progress(0.0, text="Starting the demo...")

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        bar.progress(p.done / p.total if p.total else 1.0, text=f"{p.done} of {p.total} images")

    try:
        summary = run_demo(data.writable_store(), progress=progress)
    except PromptlabError as error:
        data.show_error(error)
        return
    data.refresh()
    st.success(f"Demo done: {summary.rendered} images in {summary.seconds:.1f} s. Open **Compare** or **Insights**.")
