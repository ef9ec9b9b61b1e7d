"""Search: from the Build page's prompt and choices (as they are, saved or not) or a saved experiment
file, set up a search, watch it spend its budget (best so far, images left), and open its runs in
Compare and Insights.

The search is ``promptlab.search``'s: ``draft_search`` writes the file, ``run_search`` runs it,
``format_search`` says what it found, as ``promptlab search`` prints it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from promptlab.dashboard import compare, data, insights
from promptlab.dashboard.build import BUILD_DRAFT
from promptlab.dashboard.run import experiment_files
from promptlab.errors import ExperimentError, PromptlabError
from promptlab.experiment import to_toml
from promptlab.search import (
    SearchProgress,
    SearchResult,
    draft_search,
    format_search,
    parse_search,
    run_search,
    written_prompt,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

DEFAULT_BUDGET = 400
#: The first choice of "Start from" while the Build page holds a prompt.
BUILD_LIVE = "The Build page's prompt and choices, as they are now"


def page() -> None:
    st.title("Search for a better prompt")
    files = experiment_files()
    live = st.session_state.get(BUILD_DRAFT)
    if not files and not live:
        st.info("Nothing to start from yet: set a prompt on the **Build** page; its prompt and choices start the search.")
        return
    chosen = st.session_state.get("run_file")
    names = [BUILD_LIVE] * bool(live) + [str(f) for f in files]
    source = st.selectbox("Start from", names, index=names.index(chosen) if chosen in names else 0, key="search_source",
                          help="The Build page's prompt and choices as they are now (saved or not), or a saved experiment file.")  # fmt: skip
    try:
        raw = tomllib.loads(live if source == BUILD_LIVE else Path(source).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        data.show_error(ExperimentError(f"{source}: cannot read it as TOML: {error}"))
        return
    draft = raw if "search" in raw else _setup(raw)
    try:
        text = to_toml(draft)
        spec = parse_search(text, data.experiments_dir() / f"{draft['name']}.toml", vocab=data.vocab())
    except PromptlabError as error:
        data.show_error(error)
        return
    with st.expander("Search file"):
        st.code(text, language="toml")
    st.caption(
        f"{spec.pool_size} terms in {len(spec.groups)} group{'s' * (len(spec.groups) != 1)}; {spec.budget} images: rounds of {spec.population} "
        f"candidates x {spec.round_seeds} seeds, then {spec.confirmation_images} to confirm on fresh seeds."
    )
    if not st.button("Save and search", type="primary", key="search_run"):
        return
    target = data.experiments_dir() / f"{spec.name}.toml"
    if "search" not in raw and not data.save_text(target, text):
        return
    result = _run(spec)
    if result is not None:
        _show(result)


def _setup(raw: dict) -> dict:  # type: ignore[type-arg]
    """The search's choices: which categories and terms, the weight range, the most terms, the scorer, the budget."""
    vocab = data.vocab()
    used = [c for c in vocab.categories if c in raw.get("axes", {}) or c in raw.get("prompt", {}).get("terms", {})]
    categories = st.multiselect("Whole vocabulary categories in the pool", list(vocab.categories), default=used,
                                key="search_categories")  # fmt: skip
    extra = st.text_area("More terms, one group a line: `group: term, term`", key="search_terms",
                         placeholder="background: on a sky blue background, on a black background")  # fmt: skip
    left, middle, right = st.columns(3)
    budget = int(left.number_input("Budget (images)", min_value=1, value=DEFAULT_BUDGET, step=50, key="search_budget"))
    max_terms = int(middle.number_input("Terms at most", min_value=1, value=6, key="search_max_terms"))
    seed = int(right.number_input("Search seed", min_value=0, value=0, key="search_seed"))
    low, high = st.slider("Weight range", 0.0, 2.0, (1.0, 1.0), 0.1, key="search_weights")
    scorer = st.text_input("Scorer", key="search_scorer", placeholder=str(raw.get("scorer", "the file's"))).strip()
    # Unless the file says what the image should show, the prompt written so far (weights aside) does.
    written = raw.get("prompt", {}).get("intent") or written_prompt(raw, data.vocab())
    intent = st.text_input("Intent: what the image should show, as the scorer reads it", key="search_intent",
                           value=str(written)).strip()  # fmt: skip
    terms: dict[str, list[str]] = {}
    for line in extra.splitlines():
        group, _, listed = line.partition(":")
        if group.strip() and listed.strip():
            terms.setdefault(group.strip(), []).extend(t.strip() for t in listed.split(",") if t.strip())
    return draft_search(raw, budget=budget, categories=categories, terms=terms, scorer=scorer or None,
                        max_terms=max_terms, weights=(low, high), seed=seed, intent=intent or None)  # fmt: skip


def _run(spec) -> SearchResult | None:  # type: ignore[no-untyped-def]
    """Run the search with a progress bar, the best so far and the images left; None after showing why it stopped."""
    bar = st.progress(0.0, text="Loading the model...")
    best, left = st.columns(2)
    best_box, label_box, left_box = best.empty(), best.empty(), left.empty()

    def progress(p: SearchProgress) -> None:
        bar.progress(min(p.spent / p.budget, 1.0), text=f"{p.phase} round {p.round}: {p.spent} of {p.budget} images")
        best_box.metric("Best so far", data.score_text(p.best_score), help=p.best_label)
        label_box.caption(p.best_label)
        left_box.metric("Budget left", f"{p.left} images")

    try:
        return run_search(spec, data.writable_store(), progress=progress)
    except PromptlabError as error:
        data.show_error(error)
        return None
    finally:
        data.refresh()


def _show(result: SearchResult) -> None:
    st.subheader("Winner")
    st.code(result.winner_prompt, language=None)
    st.code(result.winner_prompt_a1111, language=None)
    st.code("\n".join(format_search(result)[3:]), language=None)
    st.session_state["experiment"] = result.experiment
    left, right = st.columns(2)
    left.page_link(st.Page(compare.page, title="Compare", url_path="compare"), label=f"Compare {result.experiment}")
    right.page_link(st.Page(insights.page, title="Insights", url_path="insights"), label=f"Insights on {result.experiment}")
