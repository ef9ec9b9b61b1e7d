"""Insights: term and parameter effects with CI whiskers, score distributions per variant, best prompts.

The numbers are ``promptlab analyze``'s: the same ``Analysis``, its tables from
``analysis.report_tables`` and its text from ``analysis.format_report``.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from promptlab.analysis import (
    Analysis,
    best_table,
    effects_chart_data,
    format_cells,
    format_level,
    format_report,
    how_to_read,
    report_tables,
)
from promptlab.dashboard import data, judge
from promptlab.errors import PromptlabError

ROW_PX = 40


def page() -> None:
    st.title("Insights")
    name = data.pick_experiment("insights_experiment")
    if name is None:
        return
    kind, scorer = data.pick_score(name, "insights")
    try:
        frame = data.runs_frame(name, kind, scorer)
        result = data.analysis(name, kind, with_plan=True, scorer=scorer)
    except PromptlabError as error:
        data.show_error(error)
        return
    if result.cells is not None and result.cells.incomplete:
        st.warning(f"{format_cells(result.cells)}: the numbers below are from the cells done so far.")
    elif result.cells is not None and result.cells.planned is not None:
        st.caption(format_cells(result.cells))
    if result.scorer_note:
        st.info(result.scorer_note)
    with st.expander("How to read this"):
        st.markdown(how_to_read(result))
    variants, effects = report_tables(result)
    _effects(result, effects)
    _distributions(frame, result, variants)
    _best(result)
    judge.votes_section(name)
    with st.expander("As `promptlab analyze` prints it"):
        st.code("\n".join(format_report(result)), language=None)


def effects_chart(result: Analysis) -> alt.LayerChart:
    """Each effect its own row, labelled with what it compares and its CI's level; bar = estimate, whisker = CI."""
    table = effects_chart_data(result)
    rows = table["row"].tolist()
    # the rows are the labels themselves, in the report's order: no sort for Vega to drop, no row to share
    y = alt.Y("row:N", sort=rows, scale=alt.Scale(domain=rows), title=None, axis=alt.Axis(labelLimit=600, labelOverlap=False))
    tooltip = [
        alt.Tooltip("effect:N"),
        alt.Tooltip("estimate:Q", format="+.2f", title="difference"),
        alt.Tooltip("interval:N"),
        alt.Tooltip("wins:N"),
        alt.Tooltip("note:N"),
    ]
    base = alt.Chart(table).encode(y=y, tooltip=tooltip)
    bars = base.mark_bar(size=ROW_PX // 2).encode(
        x=alt.X("estimate:Q", title="score difference against the axis's reference (paired by seed, adjusted for the other axes)"),
        color=alt.Color("starred:N", title=None, scale=alt.Scale(domain=["starred", "not starred"], range=["#2a9d8f", "#b0b0b0"])),
    )
    whiskers = base.mark_rule(color="black", strokeWidth=2).encode(x="ci_low:Q", x2="ci_high:Q")
    zero = alt.Chart(table).mark_rule(color="#666", strokeDash=[4, 4]).encode(x=alt.datum(0))
    title = alt.TitleParams(
        "Each level against its axis's reference",
        subtitle=f"bar: the difference; whisker: its CI at the level Holm tested it at, given in each row's label "
        f"(Holm over {result.family_size} comparisons, {format_level(result.alpha)} familywise)",
    )
    # fitted to the page's width only: the height is the rows' own, so the title and axes cannot squeeze them into one
    chart = (bars + whiskers + zero).properties(height=ROW_PX * len(rows), title=title)
    return chart.properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def _effects(result: Analysis, table: pd.DataFrame) -> None:
    st.subheader("Term and parameter effects")
    if not result.effects:
        st.caption("No effects: the experiment has no axis with two levels.")
        return
    st.caption(
        f"Each level against its axis's reference, paired by seed and adjusted for the other axes. "
        f"Starred: significant after Holm's correction over {result.family_size} comparisons "
        f"({format_level(result.alpha)} familywise); each whisker is the CI at the level Holm tested it at."
    )
    st.altair_chart(effects_chart(result), width="stretch")
    st.dataframe(table, hide_index=True, width="stretch", column_config={"difference": st.column_config.NumberColumn(format="%+.2f")})


def _distributions(frame: pd.DataFrame, result: Analysis, table: pd.DataFrame) -> None:
    st.subheader("Score distributions per variant")
    if result.n_failed:
        st.caption(f"{result.n_failed} of {result.n_runs} runs have no {result.score_kind} score; each variant's count is below.")
    # shown to 2 decimals, like every score on the page (the boxes' own tooltips print what they get)
    scored = frame[frame["score"].notna()][["label", "score", "seed"]].round({"score": 2})
    chart = alt.Chart(scored).mark_boxplot(extent="min-max").encode(
        x=alt.X("score:Q", scale=alt.Scale(zero=False)), y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=400))
    )
    points = alt.Chart(scored).mark_circle(size=30, opacity=0.6).encode(
        x="score:Q", y="label:N", tooltip=["label", "seed", alt.Tooltip("score:Q", format=".2f")]
    )
    st.altair_chart((chart + points).properties(height=max(150, 50 * scored["label"].nunique())), width="stretch")
    st.dataframe(table, hide_index=True, width="stretch", column_config={"mean": st.column_config.NumberColumn(format="%.2f")})


def _best(result: Analysis) -> None:
    st.subheader("Best prompts")
    two_decimals = st.column_config.NumberColumn(format="%.2f")
    st.dataframe(best_table(result), hide_index=True, width="stretch",
                 column_config={"mean": two_decimals, "best seed's score": two_decimals})  # fmt: skip
