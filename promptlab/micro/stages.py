"""The micro training stages: the VAE, the UNet with its text encoder, null-word distillation, micro-clip.

Each stage takes the training data and a ``TrainConfig`` and returns trained models and its last
loss; ``train.train_all`` runs them in order and saves what they made.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from promptlab.builtin import MICRO_CLIP_CONFIG
from promptlab.micro.architecture import build_scheduler, build_text_encoder, build_unet, build_vae, latent_scaling
from promptlab.micro.config import Progress, TrainConfig
from promptlab.micro.data import (
    CLIP_CAPTIONS,
    caption_labels,
    one_off_caption,
    to_unit,
    token_ids,
    twin_order,
    without_null_words,
)
from promptlab.micro.losses import (
    attribute_heads,
    attribute_loss,
    batches,
    descend,
    edge_error,
    encode_captions,
    foreground_weights,
    make_optimizer,
)
from promptlab.micro.world import ATTRIBUTES, Scene, sample_caption

if TYPE_CHECKING:
    import torch

def train_vae(pixels: torch.Tensor, config: TrainConfig, progress: Progress | None = None) -> tuple[Any, float]:
    """A VAE trained to reconstruct ``pixels``; returns it and its last loss."""
    import torch

    torch.manual_seed(config.seed)
    vae = build_vae()
    optimizer, schedule = make_optimizer(vae.parameters(), config.vae_learning_rate, config.vae_steps)
    loss_value = float("nan")
    vae.train()
    for step, index in enumerate(batches(len(pixels), config.vae_batch, config.vae_steps, config.seed), 1):
        images = to_unit(pixels[index])
        posterior = vae.encode(images).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        error = (reconstruction - images) ** 2 * foreground_weights(images, config.vae_foreground_weight)
        # A light KL term, as in SD's VAE: latents stay near-Gaussian but keep the detail.
        loss = error.mean() + config.vae_edge_weight * edge_error(reconstruction, images) + 1e-6 * posterior.kl().mean()
        descend(loss, optimizer, schedule, vae.parameters())
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
            posterior = vae.encode(to_unit(pixels[start : start + batch])).latent_dist
            means.append(posterior.mean)
            stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


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
    heads = attribute_heads(text_encoder.config.hidden_size)
    parameters = [*unet.parameters(), *text_encoder.parameters()]
    optimizer, schedule = make_optimizer([*parameters, *heads.parameters()], config.learning_rate, config.unet_steps)
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
    for step, index in enumerate(batches(len(scenes), config.unet_batch, config.unet_steps, config.seed + 1), 1):
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
        hidden, pooled = encode_captions(text_encoder, tokenizer, captions)
        prediction = unet(noisy, timesteps, hidden).sample
        target = scheduler.get_velocity(clean, noise, timesteps)
        # Min-SNR-gamma (Hang et al. 2023) for v-prediction, as x0-loss weights min(SNR + 1, gamma):
        # easy, low-noise steps stop dominating, and the pure-noise steps, where the caption alone
        # decides the layout, keep their full weight.
        snr = compute_snr(scheduler, timesteps)
        weights = torch.clamp(snr + 1, max=config.snr_gamma) / (snr + 1)
        diffusion = (torch.nn.functional.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3)) * weights).mean()
        loss = diffusion + config.text_attribute_weight * attribute_loss(heads, pooled, caption_labels(captions))
        stripped = {i: without_null_words(c, null) for i, c in enumerate(captions) if not has_weight_syntax(c)}
        with_null = [i for i, c in stripped.items() if c != captions[i]]
        if with_null and (config.null_consistency or config.null_text_consistency):
            with torch.no_grad():
                plain = text_encoder(token_ids(tokenizer, [stripped[i] for i in with_null])).last_hidden_state
            if config.null_text_consistency:
                kept = [order[:count] for order, count in (twin_order(tokenizer, captions[i], null) for i in with_null)]
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
        descend(loss, optimizer, schedule, parameters)
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
    caption without them, token for token in ``twin_order`` (the null words' own tokens in the
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
    optimizer, schedule = make_optimizer(text_encoder.parameters(), config.distil_learning_rate, config.distil_steps)
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
            target = teacher(token_ids(tokenizer, twins)).last_hidden_state
        order = torch.tensor([twin_order(tokenizer, caption, null)[0] for caption in captions])
        hidden = text_encoder(token_ids(tokenizer, captions)).last_hidden_state
        moved = hidden[torch.arange(len(captions))[:, None], order]
        null_loss = torch.nn.functional.mse_loss(moved, target[: len(captions)])
        twin_loss = torch.nn.functional.mse_loss(text_encoder(token_ids(tokenizer, twins)).last_hidden_state, target)
        loss = null_loss + twin_loss
        descend(loss, optimizer, schedule, text_encoder.parameters())
        loss_value = null_loss.item()
        if progress:
            progress("distil", step, config.distil_steps, loss_value)
    text_encoder.eval()
    return loss_value


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
    heads = torch.nn.ModuleDict({tower: attribute_heads(width) for tower in ("image", "text")})
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    optimizer, schedule = make_optimizer([*model.parameters(), *heads.parameters()], config.learning_rate, config.clip_steps)
    rng = random.Random(config.seed + 2)
    loss_value = float("nan")
    model.train()
    for step, index in enumerate(batches(len(scenes), config.clip_batch, config.clip_steps, config.seed + 2), 1):
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
        image_loss = attribute_loss(heads["image"], image_raw, truth)
        text_loss = attribute_loss(heads["text"], text_raw[:count], caption_labels(captions))
        loss = loss + config.clip_attribute_weight * (image_loss + text_loss)
        descend(loss, optimizer, schedule)
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        loss_value = loss.item()
        if progress:
            progress("clip", step, config.clip_steps, loss_value)
    model.eval()
    return model, loss_value
