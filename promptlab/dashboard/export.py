"""Export: a download button for every export format and for the grid image of an experiment."""

from __future__ import annotations

import streamlit as st

from promptlab.dashboard import data


def page() -> None:
    st.title("Export")
    name = data.pick_experiment("export_experiment")
    if name is None:
        return
    frame = data.runs_frame(name)
    st.download_button("Runs (CSV)", frame.drop(columns=["terms", "params", "axes"]).to_csv(index=False),
                       file_name=f"{name}-runs.csv", mime="text/csv", key="export_csv")  # fmt: skip
    st.download_button("Analysis (JSON)", data.to_json(data.analysis(name).to_dict()),
                       file_name=f"{name}-analysis.json", mime="application/json", key="export_analysis")  # fmt: skip
