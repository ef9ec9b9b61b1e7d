"""The input checks every scorer makes, each failing with a ScoringError that names the input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptlab.errors import ScoringError

if TYPE_CHECKING:
    from PIL.Image import Image


def check_images(images: Sequence[Image], batch_size: int | None) -> None:
    """A batch size of at least 1 (None: the scorer's own), and PIL images only."""
    from PIL.Image import Image as PILImage

    if batch_size is not None and batch_size < 1:
        raise ScoringError(f"batch_size {batch_size}: expected at least 1")
    for index, image in enumerate(images):
        if not isinstance(image, PILImage):
            raise ScoringError(f"image {index}: expected a PIL image, got {type(image).__name__}")


def check_texts(images: Sequence[Image], texts: Sequence[str]) -> None:
    """One text per image."""
    if len(images) != len(texts):
        raise ScoringError(f"score: {len(images)} images but {len(texts)} texts; give one text per image")


def check_inputs(images: Sequence[Image], texts: Sequence[str], batch_size: int | None) -> None:
    """One string per image, PIL images, a batch size of at least 1 (None: the scorer's own)."""
    from PIL.Image import Image as PILImage

    check_texts(images, texts)
    check_images([], batch_size)
    for index, (image, text) in enumerate(zip(images, texts)):
        if not isinstance(image, PILImage):
            raise ScoringError(f"image {index}: expected a PIL image, got {type(image).__name__}")
        if not isinstance(text, str):
            raise ScoringError(f"text {index}: expected a string, got {type(text).__name__}")


def check_pairs(images: Sequence[Image], intents: Sequence[str], prompts: Sequence[str]) -> None:
    """One intent and one prompt per image, for ``score_pairs``."""
    if not len(images) == len(intents) == len(prompts):
        raise ScoringError(
            f"score_pairs: {len(images)} images, {len(intents)} intents and {len(prompts)} prompts; "
            "give one intent and one prompt per image"
        )
