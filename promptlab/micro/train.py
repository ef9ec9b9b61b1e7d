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

The parts live beside this module, one job each: ``config`` (``TrainConfig``), ``data`` (scenes
and captions), ``architecture`` (the models' shapes), ``losses`` (batches, optimizer, losses) and
``stages`` (stages 2-5). This module runs them and saves the models.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptlab.builtin import MICRO_CLIP_CONFIG
from promptlab.micro.architecture import SCHEDULE, latent_scaling, micro_tokenizer
from promptlab.micro.config import Progress, TrainConfig
from promptlab.micro.data import null_words, scene_tensor, training_scenes, weighted_scenes
from promptlab.micro.stages import distil_null_words, encode_latents, train_clip, train_unet, train_vae
from promptlab.micro.world import HELD_OUT, SceneError
from promptlab.render.quiet import quiet_libraries

__all__ = ["MODELS", "RECORD", "TRAINING_SOURCES", "TrainConfig", "TrainReport", "code_revision", "save_micro", "save_micro_clip", "train_all"]

RECORD = "promptlab_micro.json"


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


#: The files training reads, relative to the repository: ``-dirty`` marks changes to these only.
TRAINING_SOURCES: tuple[str, ...] = (
    "promptlab/micro",
    ":(exclude)promptlab/micro/weights",
    "promptlab/builtin.py",
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
        tokenizer=micro_tokenizer(),
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(**SCHEDULE),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    with quiet_libraries():
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
        tokenizer = micro_tokenizer()
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
