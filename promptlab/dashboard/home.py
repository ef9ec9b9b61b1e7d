"""Home: what is in the store, or, when it is empty, what to do first (with the demo button)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promptlab.dashboard import data
from promptlab.errors import PromptlabError


def page() -> None:
    st.title("promptlab")
    summaries = data.experiments()
    if not summaries:
        _first_steps()
        return
    st.write(f"Runs are kept in `{data.store().url}`.")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "experiment": e.name,
                    "subject": e.subject,
                    "runs": e.runs,
                    "ok": e.ok,
                    "failed": e.failed,
                    "models": ", ".join(e.models),
                    "last run": e.last_run_at,
                }
                for e in summaries
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption("Build a prompt, Run an experiment, then Compare its images and read its Insights.")


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
