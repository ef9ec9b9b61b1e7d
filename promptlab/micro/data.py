"""Training data for the micro models: scenes, their captions, and the captions' null words.

Everything is drawn from seeds: the same seed gives the same scenes, captions and pixels.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from promptlab.micro.world import (
    ATTRIBUTES,
    INVISIBLE,
    CaptionStyle,
    Scene,
    caption_attributes,
    draw,
    sample_scene,
)

if TYPE_CHECKING:
    import torch

#: Vocabulary categories whose terms are sprinkled into captions and change nothing in the scene.
NULL_CATEGORIES: tuple[str, ...] = ("artist", "site", "resolution")


#: Richer captions for CLIP: it must tell every attribute apart.
CLIP_CAPTIONS = CaptionStyle(color=0.95, background=0.9, size=0.8, position=0.85, light=0.95, null=0.2)


def null_words() -> list[str]:
    """Known-null words: every term of ``NULL_CATEGORIES`` in the bundled vocabulary."""
    from promptlab.vocab import load_vocab

    vocab = load_vocab()
    return sorted(term.text for name in NULL_CATEGORIES for term in vocab.categories[name].terms)


def training_scenes(count: int, seed: int) -> list[Scene]:
    """``count`` random training scenes (no held-out combinations)."""
    rng = random.Random(seed)
    return [sample_scene(rng) for _ in range(count)]


#: Colour weights of the weighted training scenes: below 1 the colour is laid on at that opacity.
WEIGHT_RANGE: tuple[float, float] = (0.4, 1.8)


def weighted_scenes(count: int, seed: int) -> tuple[list[Scene], list[float]]:
    """``count`` training scenes, each with a colour weight from ``WEIGHT_RANGE`` (to one decimal, never 1)."""
    rng = random.Random(seed)
    scenes, weights = [], []
    while len(scenes) < count:
        weight = round(rng.uniform(*WEIGHT_RANGE), 1)
        if weight != 1.0:
            scenes.append(sample_scene(rng))
            weights.append(weight)
    return scenes, weights


def scene_tensor(scenes: Sequence[Scene], seed: int, color_weights: Sequence[float] | None = None) -> torch.Tensor:
    """The scenes drawn as a uint8 tensor (N, 3, 64, 64); scene i is drawn with seed ``seed + i``."""
    import numpy as np
    import torch

    weights = color_weights or [1.0] * len(scenes)
    pixels = np.stack([np.asarray(draw(scene, seed + i, weight)) for i, (scene, weight) in enumerate(zip(scenes, weights))])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float() / 127.5 - 1.0


def token_ids(tokenizer: Any, captions: Sequence[str]) -> torch.Tensor:
    return tokenizer(
        list(captions), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def caption_labels(captions: Sequence[str]) -> list[dict[str, str]]:
    """What each caption names: a caption is only asked about that."""
    return [caption_attributes(caption) for caption in captions]


def without_null_words(caption: str, words: Collection[str]) -> str:
    """``caption`` with its null-word terms taken out of the comma-separated tail."""
    return ", ".join(part for part in caption.split(", ") if part not in words)


def twin_order(tokenizer: Any, caption: str, words: Collection[str]) -> tuple[list[int], int]:
    """``caption``'s token positions ordered so the i-th holds the i-th token of its null-free twin.

    The twin is ``without_null_words(caption, words)``. First come the start token, every term
    that is not a null word, the end token and the padding after it; then the null words' own
    tokens, in the places of the twin's last padding. Read in this order, the caption's hidden
    states should be the twin's: the UNet's cross-attention does not see positions, so it then
    sees the same set of tokens, with or without null words. Each term after the first is a comma
    and its own tokens (CLIP's tokenizer reads words one by one), so a null term goes with its comma.

    Returns the order and how many of its first positions hold the twin's own tokens.
    """
    length = tokenizer.model_max_length
    comma = len(tokenizer(",", add_special_tokens=False).input_ids)
    kept, null, at = [0], [], 1
    for n, part in enumerate(caption.split(", ")):
        size = len(tokenizer(part, add_special_tokens=False).input_ids) + (comma if n else 0)
        (null if part in words else kept).extend(range(at, at + size))
        at += size
    twin = [i for i in [*kept, *range(at, length)] if i < length]
    return [*twin, *(i for i in null if i < length)], len(twin)


#: How often each attribute is the one a hard negative swaps: a place is the subtlest for a ViT to pool.
NEGATIVE_WEIGHTS: dict[str, float] = {"position": 3.0, "shape": 2.0}


def one_off_caption(scene: Scene, caption: str, rng: random.Random) -> str | None:
    """``caption`` with one attribute it names swapped for another value (None if none can be)."""
    named = caption_attributes(caption)
    options = list(named)
    if not options:
        return None
    name = rng.choices(options, weights=[NEGATIVE_WEIGHTS.get(option, 1.0) for option in options])[0]
    current = named[name]
    choices = [
        value
        for value in ATTRIBUTES[name]
        if value is not None
        and value != current
        and (name != "color" or (value, scene.background) not in INVISIBLE)
        and (name != "background" or (scene.color, value) not in INVISIBLE)
    ]
    replacement = rng.choice(choices)
    parts = caption.split(", ")
    if name == "background":
        return caption.replace(f"on a {current} background", f"on a {replacement} background", 1)
    if name == "shape":
        parts[0] = re.sub(rf"\b{current}\b", replacement, parts[0], count=1)
    elif name == "color" and current not in parts[1:]:
        parts[0] = parts[0].replace(f"{current} {scene.shape}", f"{replacement} {scene.shape}", 1)
    else:
        parts = [replacement if part == current else part for part in parts]
    return ", ".join(parts)
