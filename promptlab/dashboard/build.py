"""Build: subject, vocabulary terms with weights and order, negative presets; the live prompt in
Compel and A1111 syntax with its token count; related-term suggestions; save as an experiment.
Set up a comparison: that prompt's subject and terms fixed, axes of vocabulary terms (with weights and
"no term") and of parameters, seeds; its cell count and estimated time; save it and run it here."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from promptlab.analysis import term_suggestions
from promptlab.analysis.timing import estimate_time, format_estimate
from promptlab.compose import compose
from promptlab.dashboard import compare, data, insights, run
from promptlab.errors import PromptlabError
from promptlab.experiment import (
    DRAFT_MODEL,
    DRAFT_SEEDS,
    PROMPT_SYNTAXES,
    cells,
    draft_comparison,
    draft_experiment,
    draft_scorer,
    experiment_name,
    parse_experiment,
    read_seeds,
    term_positions,
    to_toml,
)
from promptlab.prompt import Term, compel_prompt, convert
from promptlab.render.schedulers import SCHEDULERS

SUGGESTIONS = 10
#: The level of a vocabulary axis meaning "no term of this category".
NO_TERM = "(no term)"
MAX_AXES = 6
#: Where Build keeps its live experiment file (TOML, saved or not), for the Search page to start from.
BUILD_DRAFT = "build_draft"
#: The parameter axes, each typed as values separated by commas: the key, and what the field says.
PARAM_AXES: dict[str, tuple[str, str]] = {
    "guidance_scale": ("Guidance scales", "e.g. 5, 7.5"),
    "num_inference_steps": ("Steps", "e.g. 4, 20"),
    "width": ("Widths", "e.g. 64"),
    "height": ("Heights", "e.g. 64"),
}


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
    comparison, single = st.tabs(["Set up a comparison", "Save as one experiment"])
    with comparison:
        _comparison(built.prompt, presets, negative, syntax)
    with single:
        _save(built.prompt, presets, negative, syntax)


def _pick_terms(vocab) -> list[Term]:  # type: ignore[no-untyped-def]
    """Terms per category with a weight each, at positions 1..n once each (``term_positions``).

    The positions are settled before their inputs are drawn, from what the user chose and asked for.
    """
    chosen = [(name, text) for name in vocab.categories for text in st.session_state.get(f"build_terms_{name}", [])]
    wanted = {key: st.session_state[_position_key(*key)] for key in chosen if _position_key(*key) in st.session_state}
    positions = term_positions(chosen, wanted, st.session_state.get("build_positions", {}))
    st.session_state["build_positions"] = positions
    for key, number in positions.items():
        st.session_state[_position_key(*key)] = number
    picked: dict[tuple[str, str], Term] = {}
    for category in vocab.categories.values():
        chosen_here = st.multiselect(
            category.name.capitalize(), [t.text for t in category.terms], key=f"build_terms_{category.name}",
            help=category.description,
        )  # fmt: skip
        for text in chosen_here:
            default = category.find(text).weight
            left, right = st.columns([3, 1])
            weight = left.slider(f"{text} weight", 0.0, 2.0, float(default), 0.05, key=f"build_w_{category.name}_{text}")
            right.number_input(
                f"{text} position", min_value=1, key=_position_key(category.name, text),
                help="Where the term goes in the prompt; a category's terms stay together.",
            )  # fmt: skip
            picked[(category.name, text)] = Term(text, weight, category.name)
    return [picked[key] for key in sorted(picked, key=lambda key: positions.get(key, len(positions) + 1))]


def _position_key(category: str, text: str) -> str:
    return f"build_pos_{category}_{text}"


def _show_prompt(built) -> None:  # type: ignore[no-untyped-def]
    count = built.token_count
    st.metric("Tokens", f"{count.total}/{count.window}", delta="over the window" if count.over else None,
              delta_color="inverse")  # fmt: skip
    left, right = st.columns(2)
    left.caption("Compel")
    left.code(built.prompt.to_compel(), language=None, wrap_lines=True)
    right.caption("A1111")
    right.code(built.prompt.to_a1111(), language=None, wrap_lines=True)
    if built.negative_prompt:
        left, right = st.columns(2)
        left.caption("Negative prompt, compel")
        left.code(built.negative_prompt, language=None, wrap_lines=True)
        right.caption("Negative prompt, A1111")
        right.code(convert(built.negative_prompt, "compel", "a1111"), language=None, wrap_lines=True)
    if count.terms:
        rows = [
            {"term": span.text, "category": span.category, "weight": term.weight, "tokens": span.count,
             "past the window": span.past_window(count.window)}
            for term, span in zip(built.prompt.terms, count.terms)
        ]  # fmt: skip
        st.dataframe(
            pd.DataFrame(rows)
            .style.apply(
                lambda row: ["background-color: #ffd6d6" if row["past the window"] != "none" else ""] * len(row),
                axis=1,
            )
            .format({"weight": "{:.2f}"}),
            hide_index=True,
        )
    for warning in built.warnings:
        st.warning(warning)


def _suggestions(prompt: str, chosen: list[str]) -> None:
    vocab = data.vocab()
    candidates = [t.text for c in vocab.categories.values() for t in c.terms if t.text not in chosen]
    with st.expander("Suggestions: related terms by CLIP text similarity"):
        model = st.text_input("CLIP model", value=draft_scorer(DRAFT_MODEL), key="build_suggest_model",
                              help="micro-clip (built in, offline), clip (ViT-L, downloaded once), an open_clip "
                                   "NAME:PRETRAINED, or a weights file")  # fmt: skip
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
                    column_config={"similarity": st.column_config.NumberColumn(format="%.2f")},
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
    left, right = st.columns(2)
    model = left.text_input(
        "Model", value=DRAFT_MODEL, key="build_model",
        help="micro: built in, offline, 64x64 in about a second a seed on a CPU. For real images a hub id "
             "(runwayml/stable-diffusion-v1-5), a local diffusers folder or a .safetensors file, best on a GPU.",
    ).strip() or DRAFT_MODEL  # fmt: skip
    scorer = right.text_input(
        "Scorer", key="build_scorer", placeholder=draft_scorer(model),
        help="Empty: the model's own (micro-clip for micro, clip for others). Several, comma-separated: every image gets each score; the first ranks.",
    ).strip() or draft_scorer(model)  # fmt: skip
    default_name = experiment_name(prompt.subject)
    # Empty means "from the subject", so the name follows the subject until the user types one.
    name = st.text_input("Experiment name", key="build_name", placeholder=default_name).strip() or default_name
    try:
        raw = draft_experiment(
            prompt, name=name, vocab=data.vocab(), negative=negative, negative_presets=presets, syntax=syntax,
            model=model, scorer=scorer,
        )  # fmt: skip
        text = to_toml(raw)
    except PromptlabError as error:
        data.show_error(error)
        return
    st.session_state[BUILD_DRAFT] = text
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


def _weight_axes(prompt) -> dict[str, list[float]] | None:  # type: ignore[no-untyped-def]
    """Weights to sweep per fixed term, typed as numbers separated by commas; None after an error shown."""
    if not prompt.terms:
        return {}
    swept: dict[str, list[float]] = {}
    with st.expander("Sweep the weight of a fixed term"):
        columns = st.columns(min(len(prompt.terms), 4))
        for index, term in enumerate(prompt.terms):
            text = columns[index % len(columns)].text_input(
                f"{term.text}: weights", key=f"cmp_weights_{term.text}", placeholder="e.g. 0.8, 1.0, 1.3",
                help="Empty: the weight above in every cell. Several weights make an axis.",
            )  # fmt: skip
            values = [value.strip() for value in text.split(",") if value.strip()]
            try:
                weights = [float(value) for value in values]
            except ValueError:
                st.error(f"{term.text}: weights {text!r} are not numbers; write them like 0.8, 1.0, 1.3")
                return None
            if len(weights) > 1:
                swept[term.text] = weights
    return swept


def _lora() -> tuple[str, list[float] | None]:
    """A LoRA for every cell and its strengths, typed as numbers separated by commas; None strengths after an error shown."""
    left, right = st.columns([2, 1])
    lora = left.text_input("LoRA", key="cmp_lora", placeholder="e.g. detail, ./detail.safetensors, owner/name",
                           help="A .safetensors file, a name in the LoRA folder (PROMPTLAB_LORA_DIR) or a hub id. Empty: no LoRA.")  # fmt: skip
    text = right.text_input("LoRA strengths", key="cmp_lora_strengths", placeholder="e.g. 0, 0.5, 1",
                            help="One: the LoRA at that strength in every cell. Several make an axis. Empty: 1.")  # fmt: skip
    try:
        return lora, [float(value) for value in text.split(",") if value.strip()]
    except ValueError:
        st.error(f"LoRA strengths {text!r} are not numbers; write them like 0, 0.5, 1")
        return lora, None


def _comparison(prompt, presets: list[str], negative: str, syntax: str) -> None:  # type: ignore[no-untyped-def]
    st.caption("The subject and terms above are in every cell. Each axis adds one of its levels; every "
               "combination of levels is a cell, rendered once per seed.")  # fmt: skip
    vocab = data.vocab()
    intent = st.text_input("Intent: what every image should show (scores are measured against it)",
                           key="cmp_intent", placeholder=prompt.subject or "the subject")  # fmt: skip
    axes: dict[str, list[Term | None]] = {}
    count = int(st.number_input("Vocabulary axes", 0, MAX_AXES, 0, key="cmp_axes"))
    for index in range(count):
        left, right = st.columns([1, 3])
        category = left.selectbox(f"Axis {index + 1}: category", list(vocab.categories), index=index % len(vocab.categories),
                                  key=f"cmp_category_{index}")  # fmt: skip
        options = [NO_TERM, *(t.text for t in vocab.categories[category].terms)]
        picked = right.multiselect(f"Axis {index + 1}: levels", options, key=f"cmp_levels_{index}_{category}")
        levels: list[Term | None] = []
        columns = st.columns(max(len(picked), 1))
        for column, text in zip(columns, picked):
            if text == NO_TERM:
                levels.append(None)
                continue
            default = float(vocab.categories[category].find(text).weight)
            weight = column.number_input(f"{text} weight", 0.0, 2.0, default, 0.05, format="%.2f",
                                         key=f"cmp_w_{index}_{category}_{text}")  # fmt: skip
            levels.append(Term(text, weight, category))
        if category in axes:
            st.error(f"Axis {index + 1}: {category} is already axis {list(axes).index(category) + 1}; pick another category.")
            return
        axes[category] = levels
    weight_axes = _weight_axes(prompt)
    if weight_axes is None:
        return
    st.subheader("Parameters")
    cols = st.columns(len(PARAM_AXES) + 1)
    param_axes: dict[str, list[str]] = {}
    for column, (param, (label, example)) in zip(cols, PARAM_AXES.items()):
        text = column.text_input(label, key=f"cmp_param_{param}", placeholder=example,
                                 help="Empty: the model's default. Several values separated by commas make an axis.")  # fmt: skip
        values = [value.strip() for value in text.split(",") if value.strip()]
        if values:
            param_axes[param] = values
    schedulers = cols[-1].multiselect("Schedulers", list(SCHEDULERS), key="cmp_param_scheduler")
    if schedulers:
        param_axes["scheduler"] = schedulers
    lora, lora_strengths = _lora()
    if lora_strengths is None:
        return
    left, middle, right = st.columns(3)
    seeds_text = left.text_input("Seeds: a count N (seeds 1..N) or a list", value=str(DRAFT_SEEDS), key="cmp_seeds")
    models = middle.text_input("Models", value=DRAFT_MODEL, key="cmp_model",
                               help="micro: built in, offline. Several separated by commas make an axis.")  # fmt: skip
    param_axes["model"] = [value.strip() for value in models.split(",") if value.strip()] or [DRAFT_MODEL]
    model = param_axes["model"][0]
    scorer = right.text_input("Scorers", key="cmp_scorer", placeholder=draft_scorer(model),
                              help="Several, comma-separated: every image gets each score; the first ranks.").strip() or draft_scorer(model)  # fmt: skip
    default_name = experiment_name(prompt.subject) + "-comparison"
    name = st.text_input("Comparison name (its experiment file and store name)", key="cmp_name", placeholder=default_name).strip() or default_name
    path = data.experiments_dir() / f"{name}.toml"
    try:
        seeds = read_seeds(seeds_text, "seeds")
        raw = draft_comparison(
            prompt, name=name, vocab=vocab, axes=axes, param_axes=param_axes, intent=intent, negative=negative,
            negative_presets=presets, syntax=syntax, model=model, scorer=scorer, seeds=seeds, weight_axes=weight_axes,
            lora=lora, lora_strengths=lora_strengths,
        )  # fmt: skip
        text = to_toml(raw)
        spec = parse_experiment(text, path, vocab=vocab)
        todo = cells(spec)
    except PromptlabError as error:
        data.show_error(error)
        return
    st.session_state[BUILD_DRAFT] = text
    left, right = st.columns([1, 3])
    left.metric("Cells", len(todo))
    right.text("Estimated time: " + format_estimate(estimate_time(todo, data.store())))
    with st.expander("Experiment file"):
        st.code(text, language="toml")
    if not st.button("Save and run", type="primary", key="cmp_run"):
        return
    if not data.save_text(path, text):
        return
    st.session_state["experiment"] = spec.name
    st.session_state["run_file"] = str(path)
    if run.run_with_progress(spec) is None:
        return
    left, right = st.columns(2)
    left.page_link(st.Page(compare.page, title="Compare", url_path="compare"), label=f"Compare {spec.name}")
    right.page_link(st.Page(insights.page, title="Insights", url_path="insights"), label=f"Insights on {spec.name}")
