"""Train the micro-world's teal LoRA: an adapter that teaches ``micro`` a colour outside its palette.

    promptlab micro train-lora       # retrains it into promptlab/micro/weights/micro-teal-lora/

micro never saw teal (``world.ADAPTER_COLORS``): its training scenes come from ``COLORS`` only,
and CLIP's tokenizer gives "teal" a token of its own whose embedding micro's text encoder never
trained. The LoRA is trained the way diffusers' ``train_dreambooth_lora.py`` trains one with
``--train_text_encoder``: peft's ``LoraConfig`` on the UNet's attention projections (``to_q``,
``to_k``, ``to_v``, ``to_out.0``) and the text encoder's (``q_proj``, ``k_proj``, ``v_proj``,
``out_proj``), base weights frozen, saved with ``get_peft_model_state_dict``,
``convert_state_dict_to_diffusers`` and ``StableDiffusionPipeline.save_lora_weights``, so that
``pipe.load_lora_weights(folder)`` and ``pipe.set_adapters([...], adapter_weights=[s])`` load it.
Steps, all from seeds:

1. draw ``scenes`` scenes of the new colour (any shape, background, size, place and light) and
   ``prior_scenes`` ordinary training scenes (``data.training_scenes``);
2. latents: the ordinary scenes through micro's VAE encoder, as micro's own training makes them
   (``stages.encode_latents``); the new colour's by inverting the decoder (``invert_latents``),
   because micro's encoder, which never saw teal either, maps it to a dull blue, while its decoder
   can paint teal from the right latents;
3. train the LoRA on batches of half new-colour scenes, captioned with their colour always named,
   and half ordinary ones with their usual captions (some empty, for classifier-free guidance).
   The new colour's target is micro's own v-prediction target on the same noise schedule, with
   min-SNR weighting (``architecture.SCHEDULE``, as ``stages.train_unet``); the ordinary scenes'
   target is what micro without the LoRA predicts for the same noisy latent and caption
   (DreamBooth's prior preservation, with the base model's prediction as the prior), and their
   captions' hidden states are held to the base text encoder's, so a prompt without "teal"
   changes little;
4. save the adapter with a ``promptlab_micro.json`` record (the command, the code revision, the
   configuration, the base weights' hashes, losses, timings) and the strength sweep measured on
   it (``lora_sweep``).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.builtin import MICRO_MODELS, MICRO_TEAL_LORA
from promptlab.hashing import file_sha256
from promptlab.micro.architecture import build_scheduler, micro_tokenizer
from promptlab.micro.config import Progress
from promptlab.micro.data import null_words, scene_tensor, to_unit, token_ids, training_scenes
from promptlab.micro.losses import batches, descend, encode_captions, foreground_weights, make_optimizer
from promptlab.micro.stages import encode_latents
from promptlab.micro.train import RECORD, code_revision
from promptlab.micro.world import ADAPTER_COLORS, CaptionStyle, Scene, SceneError, sample_caption, sample_scene
from promptlab.render.quiet import quiet_libraries

if TYPE_CHECKING:
    import torch

#: The file diffusers' ``save_lora_weights`` writes and ``load_lora_weights`` reads by default.
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
#: The adapter name promptlab loads the micro LoRA under.
ADAPTER = "teal"
#: Attention projections the LoRA adapts: diffusers' UNet names, then CLIP's text encoder names.
UNET_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
#: Captions of the new colour's scenes always name it (micro's own captions leave colours out 15% of the time).
COLOR_NAMED = CaptionStyle(color=1.0)


@dataclass(frozen=True)
class LoraConfig:
    """Sizes, steps and seeds of one LoRA training run."""

    seed: int = 0
    #: The colour to teach: one of ``world.ADAPTER_COLORS``.
    color: str = "teal"
    scenes: int = 192
    prior_scenes: int = 1024
    #: Decoder-inversion steps per batch of new-colour scenes, their learning rate and batch.
    invert_steps: int = 20
    invert_learning_rate: float = 0.1
    invert_batch: int = 64
    #: The foreground's extra weight in the inversion's error, as in micro's VAE training.
    foreground_weight: float = 9.0
    steps: int = 500
    #: Scenes per step: half of the new colour, half ordinary.
    batch: int = 32
    rank: int = 8
    learning_rate: float = 1e-3
    #: Share of the ordinary scenes' captions left empty, as micro's own training drops captions.
    caption_dropout: float = 0.1
    #: Weight of the prior's loss (the UNet's prediction for ordinary scenes held to micro's own)
    #: beside the new colour's, and of the text encoder's hidden states of their captions held to
    #: micro's own. Measured over 400 steps: at 1 and 0, teal was read at strength 1 on every seed
    #: but prompts without teal moved 5-15 of 255 per pixel; at 10 and 10, they moved 2-7 but teal
    #: was read on a third of the seeds.
    prior_weight: float = 3.0
    text_prior_weight: float = 1.0
    snr_gamma: float = 5.0


@dataclass
class LoraReport:
    """What a LoRA training run did: where it saved, how long each stage took, its losses."""

    folder: Path
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    #: The strength sweep measured on the trained adapter (``LoraSweep.to_dict()``).
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the folder as a string."""
        return {**asdict(self), "folder": str(self.folder)}


def color_scenes(color: str, count: int, seed: int) -> list[Scene]:
    """``count`` random scenes whose shape has ``color`` (any shape, background, size, place and light)."""
    if color not in ADAPTER_COLORS:
        raise SceneError(f"cannot train a LoRA for colour {color!r}: choose one of {', '.join(ADAPTER_COLORS)}")
    rng = random.Random(seed)
    return [sample_scene(rng, {"color": color}) for _ in range(count)]


def invert_latents(
    vae: Any, pixels: torch.Tensor, steps: int, learning_rate: float, batch: int, foreground_weight: float
) -> torch.Tensor:
    """Latents (unscaled) that ``vae``'s decoder turns into ``pixels``: the encoder's means, refined by Adam.

    The error is weighted towards the shape (``losses.foreground_weights``), whose colour is the
    point. micro's encoder maps a teal shape to a dull blue one; 20 steps bring the decoded shape
    back to teal.
    """
    import torch

    vae.requires_grad_(False)
    found = []
    for start in range(0, len(pixels), batch):
        images = to_unit(pixels[start : start + batch])
        weights = foreground_weights(images, foreground_weight)
        with torch.no_grad():
            latents = vae.encode(images).latent_dist.mean.clone()
        latents.requires_grad_(True)
        optimizer = torch.optim.Adam([latents], lr=learning_rate)
        for _ in range(steps):
            error = ((vae.decode(latents).sample - images) ** 2 * weights).mean()
            optimizer.zero_grad(set_to_none=True)
            error.backward()
            optimizer.step()
        found.append(latents.detach())
    return torch.cat(found)


def micro_components() -> tuple[Any, Any, Any]:
    """micro's VAE, text encoder and UNet, loaded afresh in float32 from the shipped weights."""
    import torch
    from diffusers import StableDiffusionPipeline

    with quiet_libraries():
        pipe = StableDiffusionPipeline.from_pretrained(
            str(MICRO_MODELS["micro"]), dtype=torch.float32, safety_checker=None, requires_safety_checker=False
        )
    return pipe.vae.eval(), pipe.text_encoder.eval(), pipe.unet.eval()


def add_lora(unet: Any, text_encoder: Any, rank: int) -> list[torch.nn.Parameter]:
    """Freeze both models and give their attention projections a LoRA of ``rank``; its parameters."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    # lora_alpha = rank: scale 1, which diffusers assumes for a file that records no alpha.
    unet.add_adapter(PeftLoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(UNET_TARGETS)))
    # peft itself, not transformers' add_adapter, which asks for a newer peft than diffusers needs.
    inject_adapter_in_model(
        PeftLoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(TEXT_TARGETS)), text_encoder
    )
    return [p for p in (*unet.parameters(), *text_encoder.parameters()) if p.requires_grad]


@contextmanager
def without_lora(*models: Any) -> Iterator[None]:
    """The models as they were before ``add_lora``, for the prior's prediction."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [module for model in models for module in model.modules() if isinstance(module, BaseTunerLayer)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def train_lora(
    config: LoraConfig, progress: Progress | None = None, report: LoraReport | None = None
) -> tuple[Any, Any]:
    """micro's UNet and text encoder with a trained LoRA of ``config.color`` (stages 1-3 of the module docstring)."""
    import torch
    from diffusers.training_utils import compute_snr

    report = report or LoraReport(Path())
    words = null_words()
    tokenizer = micro_tokenizer()
    vae, text_encoder, unet = micro_components()
    scheduler = build_scheduler()
    scaling = float(vae.config.scaling_factor)
    with _stage(report, "scenes"):
        scenes = color_scenes(config.color, config.scenes, config.seed)
        prior = training_scenes(config.prior_scenes, config.seed + 1)
        pixels = scene_tensor(scenes, config.seed)
        prior_pixels = scene_tensor(prior, config.seed + len(scenes))
    with _stage(report, "latents"):
        latents = invert_latents(
            vae, pixels, config.invert_steps, config.invert_learning_rate, config.invert_batch, config.foreground_weight
        )
        means, stds = encode_latents(vae, prior_pixels)
    torch.manual_seed(config.seed + 5)
    parameters = add_lora(unet, text_encoder, config.rank)
    optimizer, schedule = make_optimizer(parameters, config.learning_rate, config.steps)
    rng = random.Random(config.seed + 5)
    generator = torch.Generator().manual_seed(config.seed + 5)
    half = config.batch // 2
    recent: list[tuple[float, float, float]] = []
    unet.train()
    text_encoder.train()
    with _stage(report, "train"):
        pairs = zip(
            batches(len(scenes), half, config.steps, config.seed + 6),
            batches(len(prior), config.batch - half, config.steps, config.seed + 7),
        )
        for step, (index, prior_index) in enumerate(pairs, 1):
            captions = [sample_caption(scenes[i], rng, words, COLOR_NAMED) for i in index.tolist()]
            prior_captions = [
                "" if rng.random() < config.caption_dropout else sample_caption(prior[i], rng, words)
                for i in prior_index.tolist()
            ]
            noise_prior = torch.randn(means[prior_index].shape, generator=generator)
            clean = torch.cat([latents[index], means[prior_index] + stds[prior_index] * noise_prior]) * scaling
            noise = torch.randn(clean.shape, generator=generator)
            timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(clean),), generator=generator)
            noisy = scheduler.add_noise(clean, noise, timesteps)
            hidden, _ = encode_captions(text_encoder, tokenizer, captions + prior_captions)
            prediction = unet(noisy, timesteps, hidden).sample
            with torch.no_grad(), without_lora(unet, text_encoder):
                base_hidden = text_encoder(token_ids(tokenizer, prior_captions)).last_hidden_state
                prior_target = unet(noisy[half:], timesteps[half:], base_hidden).sample
            target = torch.cat([scheduler.get_velocity(clean[:half], noise[:half], timesteps[:half]), prior_target])
            # Min-SNR-gamma weights for v-prediction, as micro's own UNet training weights its loss.
            snr = compute_snr(scheduler, timesteps)
            weights = torch.clamp(snr + 1, max=config.snr_gamma) / (snr + 1)
            errors = torch.nn.functional.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3)) * weights
            color_loss, prior_loss = errors[:half].mean(), errors[half:].mean()
            text_loss = torch.nn.functional.mse_loss(hidden[half:], base_hidden)
            loss = color_loss + config.prior_weight * prior_loss + config.text_prior_weight * text_loss
            descend(loss, optimizer, schedule, parameters)
            recent = [*recent[-49:], (color_loss.item(), prior_loss.item(), text_loss.item())]
            if progress:
                progress("lora", step, config.steps, loss.item())
    unet.eval()
    text_encoder.eval()
    # Means over the last 50 steps: one step's loss depends on its batch's noise levels.
    for column, name in enumerate(("color", "prior", "text_prior")):
        report.losses[name] = sum(row[column] for row in recent) / len(recent)
    return unet, text_encoder


def save_lora(folder: Path, unet: Any, text_encoder: Any) -> None:
    """The LoRA of ``unet`` and ``text_encoder`` as diffusers writes one: ``folder / LORA_WEIGHTS``."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    StableDiffusionPipeline.save_lora_weights(
        save_directory=str(folder),
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        text_encoder_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(text_encoder)),
        safe_serialization=True,
    )
    # diffusers writes the file through a private temporary file (mode 0600); it ships, so it is readable by all.
    (folder / LORA_WEIGHTS).chmod(0o644)


def train_and_save(
    out: Path = MICRO_TEAL_LORA,
    config: LoraConfig = LoraConfig(),
    command: str = "",
    progress: Progress | None = None,
    seeds: int = 16,
) -> LoraReport:
    """Train the LoRA, measure it (``lora_sweep.measure``, ``seeds`` seeds) and swap the folder ``out`` into place with its record."""
    import diffusers
    import peft
    import torch

    from promptlab.micro.lora_sweep import measure

    report = LoraReport(out)
    # The revision of the code that trains, read before others' commits can move HEAD.
    revision = code_revision()
    started = time.perf_counter(), time.process_time()
    unet, text_encoder = train_lora(config, progress, report)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        folder = work / out.name
        save_lora(folder, unet, text_encoder)
        with _stage(report, "measure"):
            report.measured = {**measure(folder, seeds=tuple(range(seeds))).to_dict(), "lora": out.name}
        report.seconds["total"] = time.perf_counter() - started[0]
        report.cpu_seconds["total"] = time.process_time() - started[1]
        base = MICRO_MODELS["micro"]
        record = {
            "command": command,
            "revision": revision,
            "config": asdict(config),
            "base": {
                "model": "micro",
                "unet_sha256": file_sha256(base / "unet" / "diffusion_pytorch_model.safetensors"),
                "text_encoder_sha256": file_sha256(base / "text_encoder" / "model.safetensors"),
            },
            "targets": {"unet": list(UNET_TARGETS), "text_encoder": list(TEXT_TARGETS)},
            "seconds": report.seconds,
            "cpu_seconds": report.cpu_seconds,
            "torch_threads": torch.get_num_threads(),
            "losses": report.losses,
            "measured": report.measured,
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "peft": peft.__version__},
        }
        (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            out.rename(work / "old")
        folder.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


@contextmanager
def _stage(report: LoraReport, name: str) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    report.seconds[name] = time.perf_counter() - wall
    report.cpu_seconds[name] = time.process_time() - cpu
