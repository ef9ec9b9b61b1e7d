"""The scoring loop the published text-and-image scorers share (PickScore, HPS, ImageReward).

A scorer that reads an image and a text gives two things: ``embed_images`` (what it computes from
one batch of images) and ``values`` (that batch against one text per image). ``TextImageScorer``
does the rest alike for each: checks the inputs, cuts them into batches, and scores each image
against its intent and its own prompt from one image encoding (and one pass where the two texts
are the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from promptlab.scoring.checks import check_inputs, check_pairs
from promptlab.scoring.clip import ImageScores, Score, ScorerInfo

if TYPE_CHECKING:
    from PIL.Image import Image

    from promptlab.scoring.spec import ScorerSpec


class TextImageScorer:
    """Scores images against texts, a batch at a time; subclasses give ``embed_images`` and ``values``."""

    spec: ScorerSpec
    info: ScorerInfo
    batch_size: int

    def embed_images(self, images: Sequence[Image]) -> Any:
        """What the scorer computes from one batch of images, once for both texts."""
        raise NotImplementedError

    def values(self, embedded: Any, texts: Sequence[str]) -> list[float]:
        """The scores of one embedded batch, each image against its text."""
        raise NotImplementedError

    def score(self, images: Sequence[Image], texts: Sequence[str], batch_size: int | None = None) -> list[Score]:
        """Each image's score against its text (one text per image)."""
        return [pair.intent for pair in self.score_pairs(images, texts, texts, batch_size)]

    def score_pairs(
        self, images: Sequence[Image], intents: Sequence[str], prompts: Sequence[str], batch_size: int | None = None
    ) -> list[ImageScores]:
        """Each image against its intent and its own prompt; each image encoded once."""
        import torch

        check_pairs(images, intents, prompts)
        size = self.batch_size if batch_size is None else batch_size
        check_inputs(images, intents, size)
        check_inputs(images, prompts, size)
        i, out = self.info, []
        with torch.inference_mode():
            for start in range(0, len(images), size):
                embedded = self.embed_images(images[start : start + size])
                chunk_a, chunk_b = intents[start : start + size], prompts[start : start + size]
                a = self.values(embedded, chunk_a)
                b = a if list(chunk_a) == list(chunk_b) else self.values(embedded, chunk_b)
                for value_a, value_b, text_a, text_b in zip(a, b, chunk_a, chunk_b):
                    out.append(
                        ImageScores(
                            Score(value_a, text_a, i.scorer, i.model, i.pretrained, i.weights_sha256),
                            Score(value_b, text_b, i.scorer, i.model, i.pretrained, i.weights_sha256),
                        )
                    )
        return out
