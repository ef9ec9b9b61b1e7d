"""The settings of a micro training run: sizes, steps, seeds and loss weights, and its progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: Called with (stage, step, total steps, latest loss).
Progress = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class TrainConfig:
    """Sizes, steps and seeds of one training run."""

    seed: int = 0
    scenes: int = 24000
    vae_steps: int = 1500
    vae_batch: int = 16
    vae_learning_rate: float = 2e-3
    vae_foreground_weight: float = 9.0
    #: Weight of the error in neighbouring pixels' differences: blurred edges and star points cost.
    vae_edge_weight: float = 5.0
    unet_steps: int = 4400
    unet_batch: int = 64
    #: Extra UNet training scenes whose caption weights the colour (``(red)0.6``); see ``WEIGHT_RANGE``.
    weighted_scenes: int = 3000
    #: Weight of the loss that holds the UNet's prediction for a caption with null words to its
    #: prediction for the caption without them, and how many captions a batch checks so.
    null_consistency: float = 5.0
    consistency_batch: int = 16
    #: Weight of the loss that holds the text encoder's hidden state of every token that is not a
    #: null word (the start, the other terms, the end and the padding after it) to its state in the
    #: caption without null words: a null word then changes no other word's meaning on its way to
    #: the UNet. It costs only text-encoder passes.
    null_text_consistency: float = 1.0
    #: The last stage of micro (``distil_null_words``): steps, captions per step and learning rate
    #: of the text encoder's fine-tuning against a frozen copy of itself.
    distil_steps: int = 400
    distil_batch: int = 64
    distil_learning_rate: float = 2e-3
    clip_steps: int = 1500
    clip_batch: int = 64
    #: Hard negatives per image: its caption with one attribute swapped.
    clip_negatives: int = 2
    #: Weight of the attribute classifiers' losses beside the contrastive loss.
    clip_attribute_weight: float = 0.25
    learning_rate: float = 1e-3
    caption_dropout: float = 0.1
    #: Weight of the text encoder's attribute classifiers beside the diffusion loss.
    text_attribute_weight: float = 0.1
    ema_decay: float = 0.999
    snr_gamma: float = 5.0
