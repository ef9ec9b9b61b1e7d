"""Compare's library parts with known inputs (enlarging, differences, colours), and the page under AppTest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

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
