"""What the micro models must do, measured: the quality gates' numbers.

The tests assert these on the shipped weights, and ``promptlab micro check`` prints them for
freshly trained ones. Every measurement is seeded, so it gives the same numbers twice.

- ``held_out_agreement``: micro renders captions of ``HELD_OUT`` combinations and ``judge``
  reads the pixels back (colour, background, position, shape, size).
- ``caption_choice_accuracy``: micro-clip picks a drawn scene's caption among 8 that differ
  from it in one attribute each.
- ``redness``: how red a picture is, for checking that weights and negative prompts act.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from promptlab.micro.world import (
    ATTRIBUTES,
    Scene,
    SceneError,
    agreement,
    draw,
    held_out_scenes,
    judge,
    sample_scene,
)

if TYPE_CHECKING:
    from PIL.Image import Image

#: Render settings of the gates: what a user of micro would pick.
GATE_STEPS = 20
GATE_GUIDANCE = 7.5
GATE_SIZE = 64


@dataclass(frozen=True)
class Agreement:
    """Share of renders whose judged attribute matches the caption."""

    count: int
    color: float
    background: float
    position: float
    shape: float
    size: float


def render_images(
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    model: str = "micro",
    negative_prompt: str = "",
    guidance_scale: float = GATE_GUIDANCE,
    num_inference_steps: int = GATE_STEPS,
    batch_size: int = 16,
) -> list[Image]:
    """Render (prompt, seed) pairs at the gates' settings, in order."""
    from promptlab.render.engine import render_batches
    from promptlab.render.params import RenderItem, RenderParams

    params = RenderParams(
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        width=GATE_SIZE,
        height=GATE_SIZE,
        negative_prompt=negative_prompt,
    )
    items = [RenderItem(prompt, seed) for prompt, seed in zip(prompts, seeds, strict=True)]
    images: list[Image] = []
    for batch in render_batches(items, params, model, batch_size=batch_size):
        images += [rendered.image for rendered in batch.images]
    return images


def held_out_agreement(count: int = 64, *, model: str = "micro", seed: int = 0) -> Agreement:
    """Judge ``count`` renders of held-out combinations (random size and place, no light)."""
    scenes = held_out_scenes(count, seed)
    images = render_images([scene.caption() for scene in scenes], [seed + i for i in range(count)], model=model)
    verdicts = [agreement(scene, judge(image)) for scene, image in zip(scenes, images)]

    def share(name: str) -> float:
        return sum(verdict[name] for verdict in verdicts) / count

    return Agreement(count, share("color"), share("background"), share("position"), share("shape"), share("size"))


def _swaps(scene: Scene) -> list[Scene]:
    """Every scene that differs from ``scene`` in exactly one attribute."""
    swaps = []
    for name, values in ATTRIBUTES.items():
        for value in values:
            if value == getattr(scene, name):
                continue
            try:
                swaps.append(replace(scene, **{name: value}))
            except SceneError:
                continue
    return swaps


def one_off_captions(scene: Scene, rng: random.Random, count: int = 8) -> list[str]:
    """The scene's caption first, then ``count - 1`` captions each one attribute away from it."""
    others = rng.sample(_swaps(scene), count - 1)
    return [scene.caption(), *(other.caption() for other in others)]


def caption_choice_accuracy(count: int = 200, *, scorer: str = "micro-clip", seed: int = 0, choices: int = 8) -> float:
    """Share of drawn scenes whose own caption the scorer ranks first among ``choices``."""
    from promptlab.scoring import load_scorer

    clip = load_scorer(scorer)
    rng = random.Random(seed)
    scenes = [sample_scene(rng, allow_held_out=True) for _ in range(count)]
    images = [draw(scene, seed + i) for i, scene in enumerate(scenes)]
    image_embeddings = clip.embed_images(images)
    right = 0
    for index, scene in enumerate(scenes):
        captions = one_off_captions(scene, rng, choices)
        similarity = clip.embed_texts(captions) @ image_embeddings[index]
        right += int(similarity.argmax()) == 0
    return right / count


def redness(image: Image) -> float:
    """Mean over pixels of how much red exceeds the stronger of green and blue (0..255)."""
    import numpy as np

    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return float(np.clip(pixels[..., 0] - pixels[..., 1:].max(axis=2), 0, None).mean())
