"""The Search page under streamlit's AppTest: set up from a saved experiment file, run a small search, link its runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptlab.store import open_store

TIMEOUT = 180

EXPERIMENT = """
name = "stars"
model = "micro"
batch_size = 16
seeds = 4

[params]
num_inference_steps = 2

[prompt]
subject = "a star"
intent = "a red star on a black background"

[axes]
color = ["red", "", "blue"]
"""

SEARCH = EXPERIMENT.replace('name = "stars"', 'name = "stars-search"').replace("seeds = 4\n", "").split("[axes]")[0] + """
[search]
budget = 8
scorer = "micro-judge"
population = 2
round_seeds = 1
confirm_seeds = 2

[search.terms]
color = ["red", "blue"]
"""


def search_page(saved: Path, text: str, name: str) -> AppTest:
    saved.mkdir(parents=True, exist_ok=True)
    (saved / f"{name}.toml").write_text(text)
    at = AppTest.from_string("from promptlab.dashboard import search\nsearch.page()", default_timeout=TIMEOUT)
    at.session_state["run_file"] = str(saved / f"{name}.toml")
    return at.run()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_a_saved_experiment_sets_up_a_search(promptlab_home: Path) -> None:
    at = search_page(promptlab_home / "experiments", EXPERIMENT, "stars")
    no_errors(at)
    # The Build page's choices carry over: the colour axis's terms are in the pool, axes and seeds go.
    code = at.code[0].value
    assert 'name = "stars-search"' in code and "[search.terms]" in code and '"red"' in code and "[axes]" not in code
    assert "color" in at.multiselect(key="search_categories").value
    at.number_input(key="search_budget").set_value(10).run()
    assert "budget = 10: smaller than one round" in at.error[0].value


@pytest.mark.slow
def test_a_search_runs_and_links_its_runs(promptlab_home: Path) -> None:
    at = search_page(promptlab_home / "experiments", SEARCH, "stars-search")
    no_errors(at)
    at.button(key="search_run").click().run()
    no_errors(at)
    assert any("Budget:" in code.value for code in at.code) and at.session_state["experiment"] == "stars-search"
    assert [m.label for m in at.metric] == ["Best so far", "Budget left"] and at.metric[1].value == "0 images"
    with open_store() as store:
        assert len(store.runs_frame("stars-search", "intent")) <= 8


def test_the_build_pages_prompt_starts_a_search_unsaved(promptlab_home: Path) -> None:
    from promptlab.dashboard.build import BUILD_DRAFT
    from promptlab.dashboard.search import BUILD_LIVE

    build = AppTest.from_string("from promptlab.dashboard import build\nbuild.page()", default_timeout=TIMEOUT).run()
    build.text_input(key="build_subject").set_value("a blue star").run()
    build.multiselect(key="build_terms_medium").select("oil painting").run()
    no_errors(build)
    live = build.session_state[BUILD_DRAFT]
    assert 'subject = "a blue star"' in live
    at = AppTest.from_string("from promptlab.dashboard import search\nsearch.page()", default_timeout=TIMEOUT)
    at.session_state[BUILD_DRAFT] = live
    at.run()
    no_errors(at)
    # Nothing saved yet, and the live prompt is what the search starts from.
    assert not list((promptlab_home / "experiments").glob("*.toml"))
    assert at.selectbox(key="search_source").options[0] == BUILD_LIVE
    code = at.code[0].value
    assert 'subject = "a blue star"' in code and "-search" in code and "[search]" in code
    assert at.multiselect(key="search_categories").value == ["medium"]
    # Without an intent of its own, the search reads the prompt written so far; one typed here is the file's.
    assert at.text_input(key="search_intent").value == "a blue star, oil painting"
    assert 'intent = "a blue star, oil painting"' in code
    at.text_input(key="search_intent").set_value("a blue star in oils").run()
    assert 'intent = "a blue star in oils"' in at.code[0].value
