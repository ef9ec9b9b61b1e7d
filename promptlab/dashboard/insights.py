"""Insights: term and parameter effects with CI whiskers, score distributions per variant, best prompts.

The numbers are ``promptlab analyze``'s: the same ``Analysis``, its tables from
``analysis.report_tables`` and its text from ``analysis.format_report``.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from promptlab.analysis import VARIANT_LEVEL, Analysis, format_level, format_report, how_to_read, report_tables
from promptlab.dashboard import data
from promptlab.errors import PromptlabError
from promptlab.store import SCORE_KINDS


def page() -> None:
    st.title("Insights")
    name = data.pick_experiment("insights_experiment")
    if name is None:
        return
    kind = st.radio("Score", SCORE_KINDS, horizontal=True, key="insights_kind",
                    help="intent: against what the image should show; prompt: against its own prompt")  # fmt: skip
    try:
        frame = data.runs_frame(name, kind)
        result = data.analysis(name, kind)
    except PromptlabError as error:
        data.show_error(error)
        return
    with st.expander("How to read this"):
        st.markdown(how_to_read(result))
    variants, effects = report_tables(result)
    _effects(result, effects)
    _distributions(frame, result, variants)
    _best(result)
    with st.expander("As `promptlab analyze` prints it"):
        st.code("\n".join(format_report(result)), language=None)


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
    shown = [e for e in result.effects if not math.isnan(e.mean_diff)]
    if shown:
        chart = pd.DataFrame([asdict(e) for e in shown]).astype({"level": str, "reference": str})
        chart["effect"] = [f"{e.axis} = {e.level if e.level != '' else '(none)'} vs {e.reference if e.reference != '' else '(none)'}" for e in shown]
        chart["significant"] = chart["significant"].map({True: "significant", False: "not significant"})
        chart["CI level"] = [format_level(e.ci_level) if not math.isnan(e.ci_level) else "no CI" for e in shown]
        base = alt.Chart(chart).encode(y=alt.Y("effect:N", sort="-x", title=None, axis=alt.Axis(labelLimit=400)))
        bars = base.mark_bar(size=22).encode(
            x=alt.X("mean_diff:Q", title="score difference (paired by seed, adjusted for the other axes)"),
            color=alt.Color("significant:N", scale=alt.Scale(domain=["significant", "not significant"], range=["#2a9d8f", "#b0b0b0"])),
            tooltip=["effect", "mean_diff", "ci_low", "ci_high", "CI level", "win_rate", "n_seeds", "p_holm", "seeds_needed", "note"],
        )
        whiskers = base.mark_rule(color="black").encode(x="ci_low:Q", x2="ci_high:Q")
        st.altair_chart((bars + whiskers).properties(height=max(120, 40 * len(chart))), width="stretch")
    st.dataframe(table, hide_index=True, width="stretch")


def _distributions(frame: pd.DataFrame, result: Analysis, table: pd.DataFrame) -> None:
    st.subheader("Score distributions per variant")
    if result.n_failed:
        st.caption(f"{result.n_failed} of {result.n_runs} runs have no {result.score_kind} score; each variant's count is below.")
    scored = frame[frame["score"].notna()][["label", "score", "seed"]]
    chart = alt.Chart(scored).mark_boxplot(extent="min-max").encode(
        x=alt.X("score:Q", scale=alt.Scale(zero=False)), y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=400))
    )
    points = alt.Chart(scored).mark_circle(size=30, opacity=0.6).encode(x="score:Q", y="label:N", tooltip=["label", "seed", "score"])
    st.altair_chart((chart + points).properties(height=max(150, 50 * scored["label"].nunique())), width="stretch")
    st.dataframe(table, hide_index=True, width="stretch")


def _best(result: Analysis) -> None:
    st.subheader("Best prompts")
    st.dataframe(
        pd.DataFrame([{k: v for k, v in asdict(b).items() if k not in ("image", "variant_key")} for b in result.best])
        .rename(columns={"ci_low": f"{format_level(VARIANT_LEVEL)} CI low", "ci_high": f"{format_level(VARIANT_LEVEL)} CI high"}),
        hide_index=True,
        width="stretch",
    )
