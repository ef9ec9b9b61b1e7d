"""Insights: term and parameter effects with CI whiskers, score distributions per variant, best prompts."""

from __future__ import annotations

from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from promptlab.analysis import format_effect
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
    _effects(result.effects)
    _distributions(frame)
    _best(result.best)


def _effects(effects) -> None:  # type: ignore[no-untyped-def]
    st.subheader("Term and parameter effects")
    if not effects:
        st.caption("No effects: the experiment has no axis with two levels rendered on the same seeds.")
        return
    table = pd.DataFrame([asdict(e) for e in effects])
    table["effect"] = [f"{e.axis} = {e.level if e.level != '' else '(none)'} vs {e.reference if e.reference != '' else '(none)'}" for e in effects]
    table["significant"] = table["significant"].map({True: "significant", False: "not significant"})
    base = alt.Chart(table).encode(y=alt.Y("effect:N", sort="-x", title=None, axis=alt.Axis(labelLimit=400)))
    bars = base.mark_bar(size=22).encode(
        x=alt.X("mean_diff:Q", title="mean score difference (paired by seed)"),
        color=alt.Color("significant:N", scale=alt.Scale(domain=["significant", "not significant"], range=["#2a9d8f", "#b0b0b0"])),
        tooltip=["effect", "mean_diff", "ci_low", "ci_high", "win_rate", "n_seeds", "p_holm", "seeds_needed"],
    )
    whiskers = base.mark_rule(color="black").encode(x="ci_low:Q", x2="ci_high:Q")
    st.altair_chart((bars + whiskers).properties(height=max(120, 40 * len(table))), width="stretch")
    with st.expander("Effects as text"):
        for effect in effects:
            st.text(format_effect(effect))


def _distributions(frame: pd.DataFrame) -> None:
    st.subheader("Score distributions per variant")
    scored = frame[frame["score"].notna()][["label", "score", "seed"]]
    if scored.empty:
        st.caption("No scored runs.")
        return
    chart = alt.Chart(scored).mark_boxplot(extent="min-max").encode(
        x=alt.X("score:Q", scale=alt.Scale(zero=False)), y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=400))
    )
    points = alt.Chart(scored).mark_circle(size=30, opacity=0.6).encode(x="score:Q", y="label:N", tooltip=["label", "seed", "score"])
    st.altair_chart((chart + points).properties(height=max(150, 50 * scored["label"].nunique())), width="stretch")


def _best(best) -> None:  # type: ignore[no-untyped-def]
    st.subheader("Best prompts")
    if not best:
        st.caption("No scored variant yet.")
        return
    st.dataframe(
        pd.DataFrame([{k: v for k, v in asdict(b).items() if k not in ("image", "variant_key")} for b in best]),
        hide_index=True,
        width="stretch",
    )
