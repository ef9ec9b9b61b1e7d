"""Build's "Set up a comparison" under streamlit's AppTest: axes from the vocabulary and parameters,
the cell count and time estimate, then a real run on micro whose analysis has the axes' effects."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptlab.analysis import analyze
from promptlab.store import open_store

TIMEOUT = 300


def page() -> AppTest:
    at = AppTest.from_string("from promptlab.dashboard import build\nbuild.page()", default_timeout=TIMEOUT)
    return at.run()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def set_up(at: AppTest) -> AppTest:
    """2 colours x (no artist, Greg Rutkowski) x 2 seeds on micro, 64x64, 4 steps."""
    at.text_input(key="build_subject").set_value("a circle on a black background").run()
    at.text_input(key="cmp_intent").set_value("a red circle on a black background").run()
    at.number_input(key="cmp_axes").set_value(2).run()
    at.selectbox(key="cmp_category_0").set_value("color").run()
    at.multiselect(key="cmp_levels_0_color").select("red").select("blue").run()
    at.selectbox(key="cmp_category_1").set_value("artist").run()
    at.multiselect(key="cmp_levels_1_artist").select("(no term)").select("Greg Rutkowski").run()
    at.number_input(key="cmp_w_1_artist_Greg Rutkowski").set_value(1.2).run()
    at.text_input(key="cmp_param_num_inference_steps").set_value("4").run()
    at.text_input(key="cmp_seeds").set_value("2").run()
    at.text_input(key="cmp_name").set_value("setup").run()
    return at


def test_setup_counts_cells_and_says_when_there_is_no_estimate(promptlab_home: Path) -> None:
    at = set_up(page())
    no_errors(at)
    assert at.metric[-1].value == "8"
    assert "Estimated time: no past runs of this model: no estimate (micro 64x64)" in [t.value for t in at.text]
    at.text_input(key="cmp_param_guidance_scale").set_value("5, 7.5").run()
    no_errors(at)
    assert at.metric[-1].value == "16"
    code = next(c.value for c in at.code if c.value.startswith('name = "setup"'))
    assert 'guidance_scale = [\n    5.0,\n    7.5,\n]' in code and '"Greg Rutkowski:1.2"' in code and '""' in code


def test_setup_refuses_a_bad_parameter_and_a_repeated_category(promptlab_home: Path) -> None:
    at = set_up(page())
    at.text_input(key="cmp_param_guidance_scale").set_value("5, lots").run()
    assert at.error and "guidance_scale" in at.error[0].value
    at.text_input(key="cmp_param_guidance_scale").set_value("").run()
    at.selectbox(key="cmp_category_1").set_value("color").run()
    assert at.error and "already axis 1" in at.error[0].value


def test_setup_sweeps_the_weight_of_a_fixed_term(promptlab_home: Path) -> None:
    at = page()
    at.multiselect(key="build_terms_medium").select("oil painting").run()
    at.text_input(key="cmp_weights_oil painting").set_value("0.5, 1, 1.5").run()
    at.text_input(key="cmp_name").set_value("weights").run()
    no_errors(at)
    assert at.metric[-1].value == str(3 * 4)  # 3 weights x 4 draft seeds
    code = next(c.value for c in at.code if c.value.startswith('name = "weights"'))
    assert '[axes.weights]\n"oil painting" = [\n    0.5,\n    1.0,\n    1.5,\n]' in code, code
    at.text_input(key="cmp_weights_oil painting").set_value("0.5, heavy").run()
    assert at.error and "'0.5, heavy' are not numbers" in at.error[0].value


def test_setup_runs_and_the_analysis_has_the_effects(promptlab_home: Path) -> None:
    at = set_up(page())
    at.button(key="cmp_run").click().run()
    no_errors(at)
    assert "8 rendered, 0 failed" in at.success[-1].value
    assert at.session_state["experiment"] == "setup"
    assert (promptlab_home / "experiments" / "setup.toml").is_file()
    with open_store() as store:
        result = analyze(store.runs_frame("setup", "intent"), score_kind="intent", experiment="setup")
    assert {(e.axis, e.level, e.reference) for e in result.effects} == {
        ("color", "blue", "red"), ("artist", "Greg Rutkowski:1.2", "")
    }  # fmt: skip
    # The next setup has past runs of micro at 64x64 to estimate from.
    at.run()
    assert any(t.value.startswith("Estimated time: about") for t in at.text), [t.value for t in at.text]
