"""Images for a person comparing them: small images enlarged without blur, the difference of two
images made visible, and a colour per score.

    shown = upscaled(Image.open("64px.png"))          # 256x256, each pixel a 4x4 block
    diff = difference(Image.open("a.png"), Image.open("b.png"))
    diff.image.save("diff.png"); diff.mean              # mean absolute difference, 0-255
    score_colour(0.31, 0.2, 0.4)                        # a light yellow: a middling score

The choices, and why: upscaling is by a whole factor with nearest-neighbour, so a 64x64 micro
image shows its real pixels as square blocks (a smooth filter would invent detail); images at
least ``SHOW_PX`` a side are left as they are. The difference is per channel ``|a - b|`` times
``gain``, clipped at 255, so a change of a few levels shows; two images of different sizes are
refused, not resized, since resizing itself makes differences. Colours run from light red (the
lowest score shown) through light yellow to light green (the highest), light enough for dark text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from promptlab.errors import ExportError

#: The side, in pixels, a small image is enlarged to at least.
SHOW_PX = 256
#: How much ``difference`` multiplies each pixel's absolute difference by.
DIFFERENCE_GAIN = 4
#: The colour of a cell without a score.
NO_SCORE_COLOUR = "#e0e0e0"
_LOW, _MIDDLE, _HIGH = (248, 180, 180), (250, 240, 170), (170, 225, 170)


@dataclass(frozen=True)
class ImageDifference:
    """``|a - b|`` per pixel and channel, amplified by ``gain``; ``mean`` and ``max`` are of the
    unamplified difference, 0-255 over all pixels and channels."""

    image: Image.Image
    gain: int
    mean: float
    max: int


def upscale_factor(size: tuple[int, int], show_px: int = SHOW_PX) -> int:
    """The whole factor that brings an image's longer side to at least ``show_px``; 1 when it is already that big."""
    if show_px < 1:
        raise ExportError(f"show_px must be at least 1 pixel, got {show_px}")
    longer = max(size)
    if longer < 1:
        raise ExportError(f"an image of {size[0]}x{size[1]} pixels has nothing to show")
    return max(1, math.ceil(show_px / longer))


def upscaled(image: Image.Image, show_px: int = SHOW_PX) -> Image.Image:
    """``image`` enlarged by ``upscale_factor`` with nearest-neighbour (each pixel a square block), or as it is."""
    factor = upscale_factor(image.size, show_px)
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def difference(a: Image.Image, b: Image.Image, gain: int = DIFFERENCE_GAIN) -> ImageDifference:
    """The absolute difference of two images of one size, per RGB channel, amplified by ``gain``."""
    if a.size != b.size:
        raise ExportError(
            f"images of {a.width}x{a.height} and {b.width}x{b.height} pixels: "
            "a difference needs two images of one size (pick runs rendered at the same width and height)"
        )
    if gain < 1:
        raise ExportError(f"gain must be a whole number of at least 1, got {gain}")
    delta = np.abs(np.asarray(a.convert("RGB"), dtype=np.int16) - np.asarray(b.convert("RGB"), dtype=np.int16))
    amplified = np.clip(delta * gain, 0, 255).astype(np.uint8)
    return ImageDifference(
        image=Image.fromarray(amplified, "RGB"), gain=gain, mean=float(delta.mean()), max=int(delta.max())
    )


def score_colour(value: float | None, low: float, high: float) -> str:
    """A hex colour for ``value`` on the scale from ``low`` (light red) to ``high`` (light green);
    the middle colour when all scores are equal, ``NO_SCORE_COLOUR`` without a score."""
    if value is None or math.isnan(value) or math.isnan(low) or math.isnan(high):
        return NO_SCORE_COLOUR
    if low > high:
        raise ExportError(f"score scale from {low} to {high}: low must not exceed high")
    share = 0.5 if high == low else min(1.0, max(0.0, (value - low) / (high - low)))
    start, end, t = (_LOW, _MIDDLE, share * 2) if share <= 0.5 else (_MIDDLE, _HIGH, share * 2 - 1)
    return "#" + "".join(f"{round(s + (e - s) * t):02x}" for s, e in zip(start, end))
