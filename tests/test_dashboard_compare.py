"""Compare's library parts with known inputs (enlarging, differences, colours), and the page under AppTest."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from promptlab.errors import ExportError
from promptlab.export.compare import (
    NO_SCORE_COLOUR,
    SHOW_PX,
    difference,
    score_colour,
    upscale_factor,
    upscaled,
)


def test_a_64_pixel_image_is_enlarged_to_256_with_each_pixel_a_4x4_block() -> None:
    pixels = np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3) % 256
    small = Image.fromarray(pixels.astype(np.uint8), "RGB")
    big = upscaled(small)
    assert big.size == (SHOW_PX, SHOW_PX)
    shown = np.asarray(big)
    assert np.array_equal(shown, np.repeat(np.repeat(pixels.astype(np.uint8), 4, axis=0), 4, axis=1))


@pytest.mark.parametrize(
    ("size", "factor"), [((64, 64), 4), ((100, 50), 3), ((256, 256), 1), ((512, 512), 1), ((1, 1), 256)]
)
def test_the_factor_is_whole_and_reaches_the_shown_size(size: tuple[int, int], factor: int) -> None:
    assert upscale_factor(size) == factor


def test_a_large_image_is_left_as_it_is() -> None:
    image = Image.new("RGB", (300, 200), (1, 2, 3))
    assert upscaled(image) is image


def test_upscaling_refuses_a_size_of_nothing() -> None:
    with pytest.raises(ExportError, match="show_px"):
        upscale_factor((64, 64), 0)
    with pytest.raises(ExportError, match="0x0"):
        upscale_factor((0, 0))


def test_the_difference_is_absolute_and_amplified() -> None:
    a = Image.new("RGB", (2, 1), (10, 200, 0))
    b = Image.new("RGB", (2, 1), (10, 200, 0))
    b.putpixel((0, 0), (13, 190, 100))
    diff = difference(a, b, gain=4)
    assert np.asarray(diff.image).tolist() == [[[12, 40, 255], [0, 0, 0]]]
    assert diff.max == 100
    assert diff.mean == pytest.approx((3 + 10 + 100) / 6)
    assert difference(b, a).image.tobytes() == diff.image.tobytes()  # symmetric
    assert difference(a, a).max == 0


def test_the_difference_refuses_two_sizes_and_a_gain_below_one() -> None:
    with pytest.raises(ExportError, match="64x64 and 32x32"):
        difference(Image.new("RGB", (64, 64)), Image.new("RGB", (32, 32)))
    with pytest.raises(ExportError, match="gain"):
        difference(Image.new("RGB", (4, 4)), Image.new("RGB", (4, 4)), gain=0)


def test_score_colours_run_from_red_to_green() -> None:
    assert score_colour(0.2, 0.2, 0.4) == "#f8b4b4"
    assert score_colour(0.3, 0.2, 0.4) == "#faf0aa"
    assert score_colour(0.4, 0.2, 0.4) == "#aae1aa"
    assert score_colour(0.5, 0.5, 0.5) == "#faf0aa"
    assert score_colour(math.nan, 0.2, 0.4) == NO_SCORE_COLOUR
    assert score_colour(None, 0.2, 0.4) == NO_SCORE_COLOUR
    with pytest.raises(ExportError, match="low must not exceed high"):
        score_colour(0.3, 0.4, 0.2)


EXPERIMENT = """
name = "cmp"
model = "micro"
scorer = "micro-clip"
seeds = 3
batch_size = 12

[params]
num_inference_steps = 4
width = 64
height = 64

[prompt]
subject = "a square on a black background"
intent = "a green square on a black background"

[axes]
color = ["green", "blue"]
artist = ["", "Alphonse Mucha"]
"""
TIMEOUT = 120


@pytest.fixture(scope="module")
def compare_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PROMPTLAB_HOME holding one real micro run: 2 colours x artist or none x 3 seeds, 64x64."""
    from promptlab.experiment import parse_experiment
    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    home = tmp_path_factory.mktemp("compare-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMPTLAB_HOME", str(home))
        patch.delenv("PROMPTLAB_DB", raising=False)
        with open_store() as store:
            summary = run_experiment(parse_experiment(EXPERIMENT, home / "cmp.toml"), store)
    assert summary.rendered == 12, summary.to_dict()
    return home


@pytest.fixture
def compare(compare_home: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("PROMPTLAB_HOME", str(compare_home))
    at = AppTest.from_string("from promptlab.dashboard import compare\ncompare.page()", default_timeout=TIMEOUT).run()
    at.selectbox(key="compare_experiment").select("cmp").run()
    _no_errors(at)
    return at


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _frame(kind: str = "intent") -> pd.DataFrame:
    from promptlab.store import open_store

    with open_store() as store:
        return store.runs_frame("cmp", kind)


def _means(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "class='cell-mean'" in m.value]


def _image_captions(at: AppTest) -> list[str]:
    return [image.caption for element in at.get("image") for image in element.proto.imgs]


def _bold(at: AppTest) -> list[str]:
    return [m.value.removeprefix("**").removesuffix("**") for m in at.markdown if m.value.startswith("**")]


def test_a_cell_of_one_variant_shows_its_mean_and_interval_coloured_over_the_grid(compare: AppTest) -> None:
    from promptlab.analysis import variant_table
    from promptlab.export.compare import score_colour

    at = compare
    at.selectbox(key="compare_y").select("color").run()
    at.selectbox(key="compare_x").select("artist").run()
    _no_errors(at)
    assert _bold(at)[1:] == ["no artist", "Alphonse Mucha", "green", "blue"]
    variants = variant_table(_frame())  # grid order: green, green + Mucha, blue, blue + Mucha
    expected = [f"mean {v.mean:.2f}, 95% CI {v.ci_low:.2f}..{v.ci_high:.2f} over 3 seeds" for v in variants]
    assert [m.split(">", 1)[1].removesuffix("</div>") for m in _means(at)] == expected
    low, high = min(v.mean for v in variants), max(v.mean for v in variants)
    assert [m.split("background-color: ", 1)[1][:7] for m in _means(at)] == [
        score_colour(v.mean, low, high) for v in variants
    ]
    # each cell's 3 seeds as small images under its picture: 4 pictures, 4 strips
    assert len(at.get("image")) == 8
    at.toggle(key="compare_colour").set_value(False).run()
    assert not any("background-color" in m for m in _means(at))


def test_with_seed_as_an_axis_a_cell_is_one_seed(compare: AppTest) -> None:
    at = compare
    at.selectbox(key="compare_y").select("color").run()
    at.selectbox(key="compare_x").select("seed").run()
    _no_errors(at)
    assert all(" of 2 runs of 1 seed: no CI" in m for m in _means(at))  # artist or none, one seed
    strips = [caption for caption in _image_captions(at) if caption]
    assert len(strips) == 12 and all(caption.startswith("#") for caption in strips)  # one seed: the runs by id


def test_level_filters_narrow_the_grid_and_it_stays_the_exported_grid(compare: AppTest) -> None:
    from promptlab.export import plan_grid
    from promptlab.export.grid import keep_levels

    at = compare
    at.selectbox(key="compare_y").select("color").run()
    at.selectbox(key="compare_x").select("seed").run()
    at.multiselect(key="compare_keep_color").unselect("blue").run()
    at.multiselect(key="compare_keep_seed").unselect("seed 2").run()
    _no_errors(at)
    assert _bold(at) == ["color \\\\ seed", "seed 1", "seed 3", "green"]
    plan = plan_grid(keep_levels(_frame(), {"color": ["green"], "seed": ["seed 1", "seed 3"]}), "seed", "color")
    shown = [c.value for c in at.caption if c.value.startswith("score ")]
    assert [text.rsplit("#", 1)[1] for text in shown] == [str(cell.run_id) for cell in plan.cells]
    at.multiselect(key="compare_keep_color").unselect("green").run()
    assert any("Pick at least one level of color" in i.value for i in at.info)


def test_the_score_toggle_shows_the_prompt_scores(compare: AppTest) -> None:
    from promptlab.export import plan_grid

    at = compare
    at.radio(key="compare_kind").set_value("prompt").run()
    _no_errors(at)
    plan = plan_grid(_frame("prompt"), "seed", "color")
    shown = [c.value for c in at.caption if c.value.startswith("score ")]
    assert [text.split(" ")[1] for text in shown] == [f"{cell.score:.2f}" for cell in plan.cells]
    assert [text.rsplit("#", 1)[1] for text in shown] == [str(cell.run_id) for cell in plan.cells]


def test_open_shows_the_run_enlarged_with_its_prompt_seed_parameters_and_scores(compare: AppTest) -> None:
    from promptlab.store import open_store

    at = compare
    shown = next(c.value for c in at.caption if c.value.startswith("score "))
    run_id = int(shown.rsplit("#", 1)[1])
    at.button(key="compare_open_0_0").click().run()
    _no_errors(at)
    with open_store() as store:
        run = store.get_run(run_id)
    assert at.radio(key="compare_open_run_0_0").value == f"#{run_id}, seed {run.seed}"
    assert [c.value for c in at.code] == [run.prompt, run.negative_prompt or "(none)"]
    assert any(text.startswith(f"#{run_id} ") and "shown at 256x256" in text for text in _image_captions(at))
    facts = at.dataframe[0].value["value"]
    assert facts["seed"] == str(run.seed) and facts["num_inference_steps"] == "4"
    assert {"score: intent (micro-clip)", "score: prompt (micro-clip)"} <= set(facts.index)
    # another cell opens on its own shown run, whatever was picked in the first
    at.radio(key="compare_open_run_0_0").set_value(at.radio(key="compare_open_run_0_0").options[-1]).run()
    at.button(key="compare_open_1_1").click().run()
    _no_errors(at)
    other = [c.value for c in at.caption if c.value.startswith("score ")][4].rsplit("#", 1)[1]  # blue, seed 2
    assert at.radio(key="compare_open_run_1_1").value.startswith(f"#{other}, ")


def test_side_by_side_enlarges_small_images_and_shows_their_difference(compare: AppTest) -> None:
    at = compare
    options = at.multiselect(key="compare_pick").options
    at.multiselect(key="compare_pick").select(options[0]).select(options[1]).select(options[2]).run()
    _no_errors(at)
    differences = [text for text in _image_captions(at) if " vs #" in text and "of 255 levels" in text]
    assert len(differences) == 2
    assert set(at.dataframe[-1].value.loc["seed"]) == {"1", "2", "3"}  # the table marks what differs
    at.toggle(key="compare_difference").set_value(False).run()
    assert not [text for text in _image_captions(at) if " vs #" in text]


def test_the_page_enlarges_and_differences_real_files(compare_home: Path) -> None:
    from promptlab.dashboard import data

    images = sorted((compare_home / "images").glob("*.png"))
    picture = data.enlarged(str(images[0]))
    assert picture is not None and picture.size == (256, 256)
    found = data.image_difference(str(images[0]), str(images[1]))
    assert found is not None and found.image.size == (256, 256) and found.max > 0
    assert data.image_difference(str(images[0]), str(images[0])).max == 0  # type: ignore[union-attr]
    assert data.enlarged(str(compare_home / "gone.png")) is None


def test_a_small_cell_picture_is_enlarged_with_square_pixels(compare_home: Path) -> None:
    import io

    from promptlab.dashboard import data

    path = min((compare_home / "images").glob("*.png"))
    shown = Image.open(io.BytesIO(data.cell_picture(str(path)) or b""))
    with Image.open(path) as original:
        assert shown.size == (256, 256)
        assert shown.resize((64, 64), Image.Resampling.NEAREST).tobytes() == original.convert("RGB").tobytes()
    assert data.cell_picture(str(compare_home / "gone.png")) is None
