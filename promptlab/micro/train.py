"""Train ``micro`` (a tiny Stable Diffusion) and ``micro-clip`` on micro-world scenes.

    promptlab micro train            # retrains both into promptlab/micro/weights/

Everything comes from seeds: the scenes, their captions, the initial weights and the order of
batches, so a retrain on the same code and library versions gives the same models. Stages:

1. draw ``scenes`` training scenes (``HELD_OUT`` combinations never appear), and
   ``weighted_scenes`` more whose captions weight their colour (``(red)0.6``: drawn at 60%
   opacity; ``(red)1.5``: the background also tinted half red; see ``draw``);
2. train an ``AutoencoderKL`` (4x downsampling into 4 channels) to reconstruct them, edges
   included, and encode every scene once into latents; the VAE's ``scaling_factor`` is set
   from their spread;
3. train a ``UNet2DConditionModel`` and a CLIP text encoder together on (latents, caption)
   with caption dropout (for classifier-free guidance), min-SNR loss weighting and an EMA of
   the weights, the way diffusers' ``train_text_to_image.py`` does; weighted captions go
   through compel, and null words are held to no effect by a consistency loss;
4. fine-tune that text encoder against a frozen copy of itself, so that a caption with null
   words encodes as the caption without them (``distil_null_words``);
5. train ``micro-clip`` (an open_clip ``CLIP``) contrastively on (scene, caption) pairs, each
   image also against a caption that differs from its own in one attribute.

Both are saved in half precision with a ``promptlab_micro.json`` record: the command, the code
revision, the configuration, the null words, the held-out combinations, losses and timings.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.micro import MICRO_CLIP_CONFIG
from promptlab.micro.world import (
    ATTRIBUTES,
    HELD_OUT,
    INVISIBLE,
    CaptionStyle,
    Scene,
    SceneError,
    caption_attributes,
    draw,
    sample_caption,
    sample_scene,
)
from promptlab.render.tiny import SD_BETAS

if TYPE_CHECKING:
    import torch

RECORD = "promptlab_micro.json"
#: Vocabulary categories whose terms are sprinkled into captions and change nothing in the scene.
NULL_CATEGORIES: tuple[str, ...] = ("artist", "site", "resolution")
#: Richer captions for CLIP: it must tell every attribute apart.
CLIP_CAPTIONS = CaptionStyle(color=0.95, background=0.9, size=0.8, position=0.85, light=0.95, null=0.2)

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


@dataclass
class TrainReport:
    """What a training run did: where it saved, how long each stage took, its final losses."""

    micro: Path
    micro_clip: Path
    models: tuple[str, ...] = ("micro", "micro-clip")
    #: Wall-clock seconds per stage, and in total.
    seconds: dict[str, float] = field(default_factory=dict)
    #: CPU seconds per stage (all threads): what the stage costs on an otherwise idle machine.
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        return {
            "models": list(self.models),
            "micro": str(self.micro),
            "micro_clip": str(self.micro_clip),
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "losses": self.losses,
        }


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


def _to_unit(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float() / 127.5 - 1.0


def build_vae(scaling_factor: float = 1.0) -> Any:
    """The micro VAE: 64x64 RGB <-> 16x16x4 latents."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
        mid_block_add_attention=False,
    )


def build_text_encoder() -> Any:
    """The micro text encoder: SD 1.x's CLIPTextModel shape at width 64."""
    from transformers import CLIPTextModel

    from promptlab.render.tiny import clip_text_config

    return CLIPTextModel(clip_text_config(64))


def build_unet() -> Any:
    """The micro UNet: 16x16 latents, cross-attention at 8x8 and 4x4."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=4,
        norm_num_groups=16,
    )


#: micro's noise schedule: SD's betas rescaled to zero terminal SNR, v-prediction, trailing timesteps
#: (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed"). With SD's own
#: schedule the last step keeps about 7% of the signal; on 16x16 latents that leaks a scene's
#: background and layout to the UNet, which then learns them from the noise instead of the caption
#: and, sampling from pure noise, paints a muddy ground with the shape in the middle.
SCHEDULE: dict[str, Any] = {
    **SD_BETAS,
    "rescale_betas_zero_snr": True,
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
}


def build_scheduler() -> Any:
    """The noise schedule shared by training and the saved pipeline."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULE)


def _batches(count: int, batch: int, steps: int, seed: int) -> Any:
    """Indices of ``steps`` batches: shuffled epochs, from a seeded generator."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(count, generator=generator)
    position = 0
    for _ in range(steps):
        if position + batch > count:
            order = torch.randperm(count, generator=generator)
            position = 0
        yield order[position : position + batch]
        position += batch


def _optimizer(parameters: Any, learning_rate: float, steps: int) -> tuple[Any, Any]:
    import torch
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=1e-4)
    schedule = get_scheduler("cosine", optimizer, num_warmup_steps=min(200, steps // 10), num_training_steps=steps)
    return optimizer, schedule


def _descend(loss: torch.Tensor, optimizer: Any, schedule: Any, clip: Iterable[torch.nn.Parameter] = ()) -> None:
    """One optimizer step on ``loss``, the gradients of ``clip`` clipped to norm 1 first, then the schedule's step."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clipped = list(clip)
    if clipped:
        torch.nn.utils.clip_grad_norm_(clipped, 1.0)
    optimizer.step()
    schedule.step()


def _foreground_weights(images: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-pixel loss weights: ``1 + weight`` where a pixel differs from its image's border colour.

    A shape covers 2-20% of a scene; unweighted, the loss is nearly all background and the VAE
    learns the shapes' colours last.
    """
    import torch

    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[..., None, None]
    differs = (images - background).norm(dim=1, keepdim=True) > 0.2
    return 1 + weight * differs.float()


def _edge_error(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the differences between vertical and horizontal neighbours.

    Plain pixel error lets a small star's points blur into a disc at little cost; this one
    charges for every edge the reconstruction softens.
    """
    error = reconstruction.new_zeros(())
    for dim in (-2, -1):
        error = error + ((reconstruction.diff(dim=dim) - images.diff(dim=dim)) ** 2).mean()
    return error


def train_vae(pixels: torch.Tensor, config: TrainConfig, progress: Progress | None = None) -> tuple[Any, float]:
    """A VAE trained to reconstruct ``pixels``; returns it and its last loss."""
    import torch

    torch.manual_seed(config.seed)
    vae = build_vae()
    optimizer, schedule = _optimizer(vae.parameters(), config.vae_learning_rate, config.vae_steps)
    loss_value = float("nan")
    vae.train()
    for step, index in enumerate(_batches(len(pixels), config.vae_batch, config.vae_steps, config.seed), 1):
        images = _to_unit(pixels[index])
        posterior = vae.encode(images).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        error = (reconstruction - images) ** 2 * _foreground_weights(images, config.vae_foreground_weight)
        # A light KL term, as in SD's VAE: latents stay near-Gaussian but keep the detail.
        loss = error.mean() + config.vae_edge_weight * _edge_error(reconstruction, images) + 1e-6 * posterior.kl().mean()
        _descend(loss, optimizer, schedule, vae.parameters())
        loss_value = loss.item()
        if progress:
            progress("vae", step, config.vae_steps, loss_value)
    vae.eval()
    return vae, loss_value


def encode_latents(vae: Any, pixels: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior mean and standard deviation of every image."""
    import torch

    means, stds = [], []
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            posterior = vae.encode(_to_unit(pixels[start : start + batch])).latent_dist
            means.append(posterior.mean)
            stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


def _token_ids(tokenizer: Any, captions: Sequence[str]) -> torch.Tensor:
    return tokenizer(
        list(captions), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def _attribute_heads(width: int) -> Any:
    """One linear classifier per scene attribute, on ``width``-wide features (training only)."""
    import torch

    return torch.nn.ModuleDict({name: torch.nn.Linear(width, len(values)) for name, values in ATTRIBUTES.items()})


def _attribute_loss(heads: Any, features: torch.Tensor, labels: Sequence[Mapping[str, str | None]]) -> torch.Tensor:
    """Cross-entropy of each head on the rows whose labels give its attribute (the rest are ignored)."""
    import torch

    loss = features.new_zeros(())
    for name, values in ATTRIBUTES.items():
        said = torch.tensor([values.index(found[name]) if name in found else -100 for found in labels])
        if (said != -100).any():
            loss = loss + torch.nn.functional.cross_entropy(heads[name](features), said, ignore_index=-100)
    return loss


def _named(captions: Sequence[str]) -> list[dict[str, str]]:
    """What each caption names: a caption is only asked about that."""
    return [caption_attributes(caption) for caption in captions]


def without_null_words(caption: str, words: Collection[str]) -> str:
    """``caption`` with its null-word terms taken out of the comma-separated tail."""
    return ", ".join(part for part in caption.split(", ") if part not in words)


def _twin_order(tokenizer: Any, caption: str, words: Collection[str]) -> tuple[list[int], int]:
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


def _encode_captions(text_encoder: Any, tokenizer: Any, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states and pooled output of ``captions``, with gradients.

    Captions with weight syntax get their hidden states from compel, as promptlab renders them;
    their pooled output is that of the caption with the syntax taken out.
    """
    import torch

    from promptlab.render.conditioning import compel_encoder, has_weight_syntax, without_weights

    plain = [without_weights(caption) for caption in captions]
    encoded = text_encoder(_token_ids(tokenizer, plain))
    weighted = [i for i, caption in enumerate(captions) if has_weight_syntax(caption)]
    if not weighted:
        return encoded.last_hidden_state, encoded.pooler_output
    # A new Compel each call: it caches the empty prompt's embedding, and the encoder is training.
    conditioner = compel_encoder(tokenizer, text_encoder, truncate=True, sdxl=False)
    rows = list(encoded.last_hidden_state.unbind(0))
    for i in weighted:
        rows[i] = conditioner.build_conditioning_tensor(captions[i])[0]
    return torch.stack(rows), encoded.pooler_output


def train_unet(
    latents: tuple[torch.Tensor, torch.Tensor],
    scenes: Sequence[Scene],
    tokenizer: Any,
    words: Sequence[str],
    config: TrainConfig,
    progress: Progress | None = None,
    color_weights: Sequence[float] | None = None,
) -> tuple[Any, Any, float]:
    """UNet and text encoder trained together (EMA weights returned) and the last diffusion loss.

    The UNet predicts v (``SCHEDULE``). Beside the diffusion loss, classifiers on the text
    encoder's pooled output learn every attribute a caption names, so from the first steps each
    word (a place, too) reaches the UNet as its own direction instead of waiting for the UNet's
    gradient to tell them apart. Scenes with a colour weight other than 1 (``color_weights``)
    get captions that weight their colour, encoded through compel as promptlab renders them, so
    a weight changes the picture by as much as it says. A consistency loss holds the prediction
    for a caption with null words to the prediction (without gradient) for the same caption
    without them: "no effect on average" is not enough for paired seeds, which see any effect.
    """
    import torch
    from diffusers.training_utils import EMAModel, compute_snr

    from promptlab.render.conditioning import has_weight_syntax

    torch.manual_seed(config.seed + 1)
    unet, text_encoder, scheduler = build_unet(), build_text_encoder(), build_scheduler()
    heads = _attribute_heads(text_encoder.config.hidden_size)
    parameters = [*unet.parameters(), *text_encoder.parameters()]
    optimizer, schedule = _optimizer([*parameters, *heads.parameters()], config.learning_rate, config.unet_steps)
    ema_unet = EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=True)
    ema_text = EMAModel(text_encoder.parameters(), decay=config.ema_decay, use_ema_warmup=True)
    rng = random.Random(config.seed + 1)
    color_weights = color_weights or [1.0] * len(scenes)
    null = set(words)
    means, stds = latents
    scaling = float(latent_scaling(means, stds))
    generator = torch.Generator().manual_seed(config.seed + 1)
    loss_value = float("nan")
    unet.train()
    text_encoder.train()
    for step, index in enumerate(_batches(len(scenes), config.unet_batch, config.unet_steps, config.seed + 1), 1):
        captions = [
            ""
            if rng.random() < config.caption_dropout
            else sample_caption(scenes[i], rng, words, color_weight=None if color_weights[i] == 1 else color_weights[i])
            for i in index.tolist()
        ]
        clean = (means[index] + stds[index] * torch.randn(means[index].shape, generator=generator)) * scaling
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(index),), generator=generator)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        hidden, pooled = _encode_captions(text_encoder, tokenizer, captions)
        prediction = unet(noisy, timesteps, hidden).sample
        target = scheduler.get_velocity(clean, noise, timesteps)
        # Min-SNR-gamma (Hang et al. 2023) for v-prediction, as x0-loss weights min(SNR + 1, gamma):
        # easy, low-noise steps stop dominating, and the pure-noise steps, where the caption alone
        # decides the layout, keep their full weight.
        snr = compute_snr(scheduler, timesteps)
        weights = torch.clamp(snr + 1, max=config.snr_gamma) / (snr + 1)
        diffusion = (torch.nn.functional.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3)) * weights).mean()
        loss = diffusion + config.text_attribute_weight * _attribute_loss(heads, pooled, _named(captions))
        stripped = {i: without_null_words(c, null) for i, c in enumerate(captions) if not has_weight_syntax(c)}
        with_null = [i for i, c in stripped.items() if c != captions[i]]
        if with_null and (config.null_consistency or config.null_text_consistency):
            with torch.no_grad():
                plain = text_encoder(_token_ids(tokenizer, [stripped[i] for i in with_null])).last_hidden_state
            if config.null_text_consistency:
                kept = [order[:count] for order, count in (_twin_order(tokenizer, captions[i], null) for i in with_null)]
                rows = [n for n, positions in enumerate(kept) for _ in positions]
                moved = hidden[[with_null[n] for n in rows], [j for positions in kept for j in positions]]
                unmoved = plain[rows, [j for positions in kept for j in range(len(positions))]]
                loss = loss + config.null_text_consistency * torch.nn.functional.mse_loss(moved, unmoved)
            checked = with_null[: config.consistency_batch]
            if config.null_consistency:
                with torch.no_grad():
                    held = unet(noisy[checked], timesteps[checked], plain[: len(checked)]).sample
                drift = torch.nn.functional.mse_loss(prediction[checked], held, reduction="none").mean(dim=(1, 2, 3))
                loss = loss + config.null_consistency * (drift * weights[checked]).mean()
        _descend(loss, optimizer, schedule, parameters)
        ema_unet.step(unet.parameters())
        ema_text.step(text_encoder.parameters())
        loss_value = diffusion.item()
        if progress:
            progress("unet", step, config.unet_steps, loss_value)
    ema_unet.copy_to(unet.parameters())
    ema_text.copy_to(text_encoder.parameters())
    unet.eval()
    text_encoder.eval()
    return unet, text_encoder, loss_value


def distil_null_words(
    text_encoder: Any,
    tokenizer: Any,
    scenes: Sequence[Scene],
    words: Sequence[str],
    config: TrainConfig,
    progress: Progress | None = None,
) -> float:
    """Fine-tune the trained ``text_encoder`` in place so null words change nothing; the last null loss.

    A frozen copy of the encoder is the teacher, and the UNet stays as it is. For captions of
    ``scenes`` with null words, the encoder learns to give the teacher's hidden states of the
    caption without them, token for token in ``_twin_order`` (the null words' own tokens in the
    places of the twin's last padding); cross-attention does not see positions, so the UNet then
    reads the same set of states with or without null words. On the twins themselves and on the
    empty caption it keeps the teacher's states, so whatever the UNet learned to read stays.
    Inside UNet training a loss against the encoder's own states can be lowered by shrinking
    every state, which wipes out the differences between words too; against a frozen teacher
    that no longer pays.
    """
    import copy

    import torch

    teacher = copy.deepcopy(text_encoder).requires_grad_(False)
    optimizer, schedule = _optimizer(text_encoder.parameters(), config.distil_learning_rate, config.distil_steps)
    rng = random.Random(config.seed + 4)
    null = set(words)
    loss_value = float("nan")
    text_encoder.train()
    for step in range(1, config.distil_steps + 1):
        captions: list[str] = []
        while len(captions) < config.distil_batch:
            caption = sample_caption(rng.choice(scenes), rng, words)
            if without_null_words(caption, null) != caption:
                captions.append(caption)
        twins = [without_null_words(caption, null) for caption in captions] + [""]
        with torch.no_grad():
            target = teacher(_token_ids(tokenizer, twins)).last_hidden_state
        order = torch.tensor([_twin_order(tokenizer, caption, null)[0] for caption in captions])
        hidden = text_encoder(_token_ids(tokenizer, captions)).last_hidden_state
        moved = hidden[torch.arange(len(captions))[:, None], order]
        null_loss = torch.nn.functional.mse_loss(moved, target[: len(captions)])
        twin_loss = torch.nn.functional.mse_loss(text_encoder(_token_ids(tokenizer, twins)).last_hidden_state, target)
        loss = null_loss + twin_loss
        _descend(loss, optimizer, schedule, text_encoder.parameters())
        loss_value = null_loss.item()
        if progress:
            progress("distil", step, config.distil_steps, loss_value)
    text_encoder.eval()
    return loss_value


def latent_scaling(means: torch.Tensor, stds: torch.Tensor) -> float:
    """The VAE scaling factor: one over the standard deviation of sampled latents, as SD sets it."""
    import torch

    generator = torch.Generator().manual_seed(0)
    sample = means + stds * torch.randn(means.shape, generator=generator)
    return float(1.0 / sample.std())


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


def train_clip(
    pixels: torch.Tensor, scenes: Sequence[Scene], words: Sequence[str], config: TrainConfig, progress: Progress | None = None
) -> tuple[Any, float]:
    """micro-clip trained contrastively; each image also meets captions one attribute away from its own."""
    import open_clip
    import torch
    from open_clip.model import CLIP

    torch.manual_seed(config.seed + 2)
    model = CLIP(**MICRO_CLIP_CONFIG)
    width = MICRO_CLIP_CONFIG["embed_dim"]
    # Attribute classifiers on both towers' embeddings, used in training only. Contrastive loss
    # alone sits at a saddle for position: neither tower encodes it, so neither gets a gradient to.
    heads = torch.nn.ModuleDict({tower: _attribute_heads(width) for tower in ("image", "text")})
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    optimizer, schedule = _optimizer([*model.parameters(), *heads.parameters()], config.learning_rate, config.clip_steps)
    rng = random.Random(config.seed + 2)
    loss_value = float("nan")
    model.train()
    for step, index in enumerate(_batches(len(scenes), config.clip_batch, config.clip_steps, config.seed + 2), 1):
        captions = [sample_caption(scenes[i], rng, words, CLIP_CAPTIONS) for i in index.tolist()]
        count = len(index)
        texts = list(captions)
        masks = []
        for _ in range(config.clip_negatives):
            negatives = [one_off_caption(scenes[i], caption, rng) for i, caption in zip(index.tolist(), captions)]
            texts += [negative or caption for negative, caption in zip(negatives, captions)]
            # A caption whose swap failed is its own duplicate: mask it out of the negatives.
            masks.append(torch.tensor([negative is None for negative in negatives]))
        images = (pixels[index].float() / 255.0 - mean) / std
        image_raw, text_raw = model.encode_image(images), model.encode_text(tokenizer(texts))
        image_features = torch.nn.functional.normalize(image_raw, dim=-1)
        text_features = torch.nn.functional.normalize(text_raw, dim=-1)
        scale = model.logit_scale.exp()
        logits = (scale * image_features @ text_features.T).masked_fill(
            torch.cat([torch.zeros(count, dtype=torch.bool), *masks]).unsqueeze(0), float("-inf")
        )
        labels = torch.arange(count)
        loss = (
            torch.nn.functional.cross_entropy(logits, labels)
            + torch.nn.functional.cross_entropy(logits[:, :count].T, labels)
        ) / 2
        truth = [{name: getattr(scenes[i], name) for name in ATTRIBUTES} for i in index.tolist()]
        image_loss = _attribute_loss(heads["image"], image_raw, truth)
        text_loss = _attribute_loss(heads["text"], text_raw[:count], _named(captions))
        loss = loss + config.clip_attribute_weight * (image_loss + text_loss)
        _descend(loss, optimizer, schedule)
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        loss_value = loss.item()
        if progress:
            progress("clip", step, config.clip_steps, loss_value)
    model.eval()
    return model, loss_value


#: The files training reads, relative to the repository: ``-dirty`` marks changes to these only.
TRAINING_SOURCES: tuple[str, ...] = (
    "promptlab/micro",
    ":(exclude)promptlab/micro/weights",
    "promptlab/tokens.py",
    "promptlab/render/tiny.py",
    "vocab",
)


def code_revision() -> str:
    """The git revision of the training code (``-dirty`` if it has uncommitted changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *TRAINING_SOURCES],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{revision}-dirty" if dirty else revision


def _record(config: TrainConfig, command: str, words: Sequence[str], report: TrainReport) -> dict[str, Any]:
    import diffusers
    import open_clip
    import torch

    return {
        "command": command,
        "revision": code_revision(),
        "config": asdict(config),
        "null_words": list(words),
        "held_out": sorted(list(combo) for combo in HELD_OUT),
        "seconds": report.seconds,
        "cpu_seconds": report.cpu_seconds,
        "torch_threads": torch.get_num_threads(),
        "losses": report.losses,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "open_clip": open_clip.__version__},
    }


def _micro_tokenizer() -> Any:
    """A fresh stock ``CLIPTokenizer`` of the offline vocabulary, as SD models ship it."""
    import tempfile

    from transformers import CLIPTokenizer

    from promptlab.tokens import save_clip_tokenizer

    with tempfile.TemporaryDirectory() as scratch:
        return CLIPTokenizer.from_pretrained(str(save_clip_tokenizer(Path(scratch))))


def save_micro(folder: Path, vae: Any, text_encoder: Any, unet: Any) -> None:
    """The micro pipeline as a diffusers folder of half-precision safetensors.

    Its tokenizer is a fresh one: a fast tokenizer saves the padding and truncation of its last
    call, and training's term-by-term calls leave them off.
    """
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_micro_tokenizer(),
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(**SCHEDULE),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16)
    pipe.save_pretrained(str(folder), safe_serialization=True)


def save_micro_clip(folder: Path, model: Any) -> None:
    """micro-clip's open_clip config and half-precision weights."""
    from safetensors.torch import save_file

    from promptlab.scoring import METADATA_MODEL

    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().half().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(folder / "micro-clip.safetensors"), metadata={METADATA_MODEL: "micro-clip"})
    (folder / "micro-clip.json").write_text(json.dumps(MICRO_CLIP_CONFIG, indent=2, sort_keys=True) + "\n")


class _Clock:
    """Wall-clock and CPU time since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


@contextmanager
def _stage(report: TrainReport, name: str) -> Iterator[None]:
    clock = _Clock()
    yield
    report.seconds[name], report.cpu_seconds[name] = clock.elapsed()


#: What ``train_all`` can train: the diffusion model (VAE, text encoder, UNet) and the CLIP scorer.
MODELS: tuple[str, ...] = ("micro", "micro-clip")


def _write_folder(final: Path, write: Callable[[Path], None]) -> None:
    """Write a folder beside ``final`` and swap it into place: a failed save leaves the old one whole."""
    import shutil
    import tempfile

    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        write(work / final.name)
        if final.exists():
            final.rename(work / "old")
        (work / final.name).rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def train_all(
    out: Path,
    config: TrainConfig,
    command: str,
    progress: Progress | None = None,
    models: Sequence[str] = MODELS,
) -> TrainReport:
    """Train ``models`` from seeds into ``out/micro`` and ``out/micro-clip``; each folder gets a record."""
    import torch

    unknown = [name for name in models if name not in MODELS]
    if unknown or not models:
        raise SceneError(f"cannot train {', '.join(unknown) or 'nothing'}: choose from {', '.join(MODELS)}")
    report = TrainReport(out / "micro", out / "micro-clip", tuple(models))
    words = null_words()
    started = _Clock()
    with _stage(report, "scenes"):
        scenes = training_scenes(config.scenes, config.seed)
        pixels = scene_tensor(scenes, config.seed)
        extra, extra_weights = weighted_scenes(config.weighted_scenes, config.seed + 3)
        extra_pixels = scene_tensor(extra, config.seed + len(scenes), extra_weights)
    written: list[tuple[Path, Callable[[Path], None]]] = []

    if "micro" in models:
        # The UNet (and the VAE) also see the weighted scenes; micro-clip sees only the plain ones.
        unet_scenes = [*scenes, *extra]
        unet_pixels = torch.cat([pixels, extra_pixels])
        with _stage(report, "vae"):
            vae, report.losses["vae"] = train_vae(unet_pixels, config, progress)
            means, stds = encode_latents(vae, unet_pixels)
            vae.register_to_config(scaling_factor=latent_scaling(means, stds))
        tokenizer = _micro_tokenizer()
        with _stage(report, "unet"):
            unet, text_encoder, report.losses["unet"] = train_unet(
                (means, stds), unet_scenes, tokenizer, words, config, progress, [1.0] * len(scenes) + extra_weights
            )
        with _stage(report, "distil"):
            report.losses["distil"] = distil_null_words(text_encoder, tokenizer, scenes, words, config, progress)
        written.append((report.micro, lambda folder: save_micro(folder, vae, text_encoder, unet)))

    if "micro-clip" in models:
        with _stage(report, "clip"):
            clip, report.losses["clip"] = train_clip(pixels, scenes, words, config, progress)
        written.append((report.micro_clip, lambda folder: save_micro_clip(folder, clip)))

    report.seconds["total"], report.cpu_seconds["total"] = started.elapsed()
    record = json.dumps(_record(config, command, words, report), indent=2) + "\n"
    for final, save in written:

        def write(folder: Path, save: Callable[[Path], None] = save) -> None:
            save(folder)
            (folder / RECORD).write_text(record)

        _write_folder(final, write)
    return report
