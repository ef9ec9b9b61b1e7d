"""Build: subject, vocabulary terms with weights and order, negative presets; the live prompt in
Compel and A1111 syntax with its token count; related-term suggestions; save as an experiment."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from promptlab.analysis import term_suggestions
from promptlab.compose import compose
from promptlab.dashboard import data
from promptlab.errors import PromptlabError
from promptlab.experiment import PROMPT_SYNTAXES, draft_experiment, experiment_name, order_terms, parse_experiment, to_toml
from promptlab.prompt import Term, compel_prompt, convert

SUGGESTIONS = 10


def page() -> None:
    st.title("Build a prompt")
    vocab = data.vocab()
    subject = st.text_input("Subject", value=vocab.subjects[0] if vocab.subjects else "", key="build_subject")
    terms = _pick_terms(vocab)
    presets = st.multiselect("Negative presets", list(vocab.negative_presets), key="build_presets")
    negative = st.text_input("Negative prompt (free text)", key="build_negative")
    syntax = st.radio(
        "Syntax of the subject and negative prompt", PROMPT_SYNTAXES, horizontal=True, key="build_syntax",
        help="compel: (word)1.3, word++; a1111: (word:1.3), [word], BREAK. Vocabulary terms take weights from their sliders.",
    )  # fmt: skip
    try:
        built = compose(subject, terms, negative=compel_prompt(negative, syntax), negative_presets=presets, vocab=vocab)
    except PromptlabError as error:
        data.show_error(error)
        return
    _show_prompt(built)
    _suggestions(built.prompt.to_plain(), [t.text for t in terms])
    _save(built.prompt, presets, negative, syntax)


def _pick_terms(vocab) -> list[Term]:  # type: ignore[no-untyped-def]
    """Terms per category with a weight each, ordered by their position numbers (``order_terms``)."""
    picked: list[tuple[float, Term]] = []
    for category in vocab.categories.values():
        chosen = st.multiselect(
            category.name.capitalize(), [t.text for t in category.terms], key=f"build_terms_{category.name}",
            help=category.description,
        )  # fmt: skip
        for text in chosen:
            default = category.find(text).weight
            left, right = st.columns([3, 1])
            weight = left.slider(f"{text} weight", 0.0, 2.0, float(default), 0.05, key=f"build_w_{category.name}_{text}")
            position = right.number_input(
                f"{text} position", min_value=1, value=len(picked) + 1, key=f"build_pos_{category.name}_{text}"
            )
            picked.append((position, Term(text, weight, category.name)))
    return order_terms(picked)


def _show_prompt(built) -> None:  # type: ignore[no-untyped-def]
    count = built.token_count
    st.metric("Tokens", f"{count.total}/{count.window}", delta="over the window" if count.over else None,
              delta_color="inverse")  # fmt: skip
    left, right = st.columns(2)
    left.caption("Compel")
    left.code(built.prompt.to_compel(), language=None)
    right.caption("A1111")
    right.code(built.prompt.to_a1111(), language=None)
    if built.negative_prompt:
        left, right = st.columns(2)
        left.caption("Negative prompt, compel")
        left.code(built.negative_prompt, language=None)
        right.caption("Negative prompt, A1111")
        right.code(convert(built.negative_prompt, "compel", "a1111"), language=None)
    if count.terms:
        rows = [
            {"term": span.text, "category": span.category, "weight": term.weight, "tokens": span.count,
             "past the window": span.past_window(count.window)}
            for term, span in zip(built.prompt.terms, count.terms)
        ]  # fmt: skip
        st.dataframe(
            pd.DataFrame(rows).style.apply(
                lambda row: ["background-color: #ffd6d6" if row["past the window"] != "none" else ""] * len(row),
                axis=1,
            ),
            hide_index=True,
        )
    for warning in built.warnings:
        st.warning(warning)


def _suggestions(prompt: str, chosen: list[str]) -> None:
    vocab = data.vocab()
    candidates = [t.text for c in vocab.categories.values() for t in c.terms if t.text not in chosen]
    with st.expander("Suggestions: related terms by CLIP text similarity"):
        model = st.text_input("CLIP model", value="clip", key="build_suggest_model",
                              help="An open_clip name, NAME:PRETRAINED, a file, or tiny-clip")  # fmt: skip
        if st.button("Suggest related terms", key="build_suggest"):
            from promptlab.scoring import suggest_terms

            try:
                scorer = _scorer(model)
                rows = suggest_terms(scorer, prompt, candidates, top=SUGGESTIONS)
            except PromptlabError as error:
                data.show_error(error)
            else:
                st.dataframe(
                    pd.DataFrame(
                        [{"term": t, "category": vocab.find(t).category, "similarity": s} for t, s in rows]
                    ),
                    hide_index=True,
                )
    with st.expander("Suggestions: terms that helped in earlier experiments"):
        found = term_suggestions(data.analyses(), vocab.categories, exclude=chosen)
        if found:
            st.dataframe(pd.DataFrame([asdict(s) for s in found]), hide_index=True)
        else:
            st.caption("No term with a positive measured effect yet.")


@st.cache_resource(show_spinner="Loading the CLIP model...")
def _scorer(spec: str):  # type: ignore[no-untyped-def]
    from promptlab.scoring import load_scorer

    return load_scorer(spec)


def _save(prompt, presets: list[str], negative: str, syntax: str) -> None:  # type: ignore[no-untyped-def]
    st.subheader("Save as an experiment")
    name = st.text_input("Experiment name", value=experiment_name(prompt.subject), key="build_name")
    try:
        raw = draft_experiment(prompt, name=name, vocab=data.vocab(), negative=negative, negative_presets=presets, syntax=syntax)
        text = to_toml(raw)
    except PromptlabError as error:
        data.show_error(error)
        return
    path = data.experiments_dir() / f"{name}.toml"
    st.code(text, language="toml")
    if st.button("Save experiment file", key="build_save"):
        try:
            parse_experiment(text, path, vocab=data.vocab())
        except PromptlabError as error:
            data.show_error(error)
            return
        if not data.save_text(path, text):
            return
        st.session_state["run_file"] = str(path)
        st.success(f"Saved {path}. Open **Run** to render it.")
