"""What the teal LoRA does, measured: a sweep of its strength, and how little it moves other prompts.

    promptlab micro lora-sweep --grid examples/teal-lora-grid.png

``measure`` renders "a teal circle on a black background" at each strength in ``STRENGTHS`` for
each seed, on a fresh micro pipeline with the LoRA loaded by diffusers (``load_lora_weights``,
``set_adapters``), at the quality gates' settings (20 steps, guidance 7.5, 64x64), and reads each
picture with the micro-world judge:

- per strength, the share of seeds the judge reads as teal, the mean ``color_match`` for teal
  (how surely the shape reads teal, 0..1) and the mean micro-judge score against the prompt;
- the paired effect of strength 1.0 against 0 on the teal match, seed by seed: the mean
  difference with its 95% t-interval and Cohen's d_z (and the same on the micro-judge score);
- for prompts without "teal" (``UNCHANGED_PROMPTS``), strength 1.0 against 0: the mean absolute
  pixel difference (0..255), the micro-judge score at both, and on how many seeds the judge read
  an attribute the prompt names differently. For scale, the teal prompt's own pixel difference
  is measured the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.builtin import MICRO_MODELS, MICRO_TEAL_LORA
from promptlab.errors import ModelError
from promptlab.micro.gates import GATE_GUIDANCE, GATE_SIZE, GATE_STEPS
from promptlab.micro.world import caption_attributes, color_match, judge
from promptlab.render.quiet import quiet_libraries
from promptlab.scoring.micro_judge import judge_score

if TYPE_CHECKING:
    from PIL.Image import Image

#: The strengths of the sweep, the issue's.
STRENGTHS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
TEAL_PROMPT = "a teal circle on a black background"
#: Prompts without the LoRA's colour: the LoRA should leave their pictures nearly as they were.
UNCHANGED_PROMPTS: tuple[str, ...] = (
    "a red circle on a black background",
    "a blue square on a gray background",
    "a yellow star on a white background",
    "a green triangle on a sky blue background, small, left",
)
#: The name the adapter is loaded under.
ADAPTER = "teal"


@dataclass(frozen=True)
class StrengthLevel:
    """The teal prompt's pictures at one strength, as the judge reads them (means over seeds)."""

    strength: float
    #: Share of seeds whose shape the judge reads as teal.
    judged_teal: float
    #: Mean ``color_match(image, "teal")``: how surely the shape reads teal, 0..1.
    teal_match: float
    #: Mean micro-judge score against the prompt, 0..100.
    judge_score: float


@dataclass(frozen=True)
class PairedEffect:
    """Mean per-seed difference (strength 1.0 minus 0) with its 95% t-interval, and Cohen's d_z."""

    mean: float
    low: float
    high: float
    #: The mean difference over the differences' standard deviation (inf when every seed moved alike).
    dz: float
    seeds: int


@dataclass(frozen=True)
class UnchangedPrompt:
    """A prompt without teal at strength 1.0 against 0."""

    prompt: str
    #: Mean absolute difference per pixel and channel, 0..255.
    pixel_difference: float
    #: Mean micro-judge score against the prompt without the LoRA and with it, 0..100.
    score_without: float
    score_with: float
    #: Seeds where the judge read an attribute the prompt names differently with the LoRA.
    judgement_changed: int
    #: Seeds where it read any attribute differently (the prompt leaves the rest to chance, and a
    #: small change in the first denoising steps can move the shape or resize it).
    layout_changed: int


@dataclass(frozen=True)
class LoraSweep:
    """The strength sweep of one LoRA folder."""

    lora: str
    prompt: str
    seeds: tuple[int, ...]
    levels: tuple[StrengthLevel, ...]
    #: On the teal match (0..1), and on the micro-judge score (0..100).
    teal_effect: PairedEffect
    score_effect: PairedEffect
    #: The teal prompt's own mean absolute pixel difference, strength 1.0 against 0 (0..255).
    teal_pixel_difference: float
    unchanged: tuple[UnchangedPrompt, ...]
    #: The teal prompt's pictures by strength, one per seed (not in ``to_dict``).
    images: dict[float, list[Image]] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the pictures."""
        found = asdict(self)
        found.pop("images")
        return found


def lora_pipeline(lora: Path) -> Any:
    """A fresh float32 micro pipeline (not the renderer's cached one) with ``lora`` loaded as ``ADAPTER``."""
    import torch
    from diffusers import StableDiffusionPipeline

    if not (lora / "pytorch_lora_weights.safetensors").is_file():
        raise ModelError(
            f"LoRA folder {lora} holds no pytorch_lora_weights.safetensors; give a folder that "
            "`promptlab micro train-lora --out FOLDER` wrote"
        )
    with quiet_libraries():
        pipe = StableDiffusionPipeline.from_pretrained(
            str(MICRO_MODELS["micro"]), dtype=torch.float32, safety_checker=None, requires_safety_checker=False
        )
        pipe.load_lora_weights(str(lora), adapter_name=ADAPTER)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render_at(pipe: Any, prompt: str, seeds: Sequence[int], strength: float) -> list[Image]:
    """``prompt`` at each seed with the adapter at ``strength``, at the quality gates' settings."""
    import torch

    pipe.set_adapters([ADAPTER], adapter_weights=[strength])
    with torch.inference_mode():
        return list(
            pipe(
                prompt=[prompt] * len(seeds),
                generator=[torch.Generator().manual_seed(seed) for seed in seeds],
                num_inference_steps=GATE_STEPS,
                guidance_scale=GATE_GUIDANCE,
                height=GATE_SIZE,
                width=GATE_SIZE,
            ).images
        )


def paired_effect(after: Sequence[float], before: Sequence[float]) -> PairedEffect:
    """The mean of ``after - before`` seed by seed, its 95% t-interval and d_z."""
    from scipy import stats

    differences = [a - b for a, b in zip(after, before, strict=True)]
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else math.inf
    dz = mean / sd if sd > 0 else math.copysign(math.inf, mean) if mean else 0.0
    return PairedEffect(mean, mean - half, mean + half, dz, n)


def pixel_difference(first: Sequence[Image], second: Sequence[Image]) -> float:
    """Mean absolute difference per pixel and channel (0..255) of paired pictures."""
    import numpy as np

    return float(
        np.mean([np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean() for a, b in zip(first, second, strict=True)])
    )


def measure(lora: Path = MICRO_TEAL_LORA, seeds: Sequence[int] = tuple(range(16))) -> LoraSweep:
    """The strength sweep of ``lora`` over ``seeds`` (module docstring)."""
    import numpy as np

    pipe = lora_pipeline(lora)
    images = {strength: render_at(pipe, TEAL_PROMPT, seeds, strength) for strength in STRENGTHS}
    matches = {s: [color_match(image, "teal") for image in found] for s, found in images.items()}
    scores = {s: [judge_score(image, TEAL_PROMPT).value for image in found] for s, found in images.items()}
    levels = tuple(
        StrengthLevel(
            s,
            float(np.mean([judge(image).color == "teal" for image in images[s]])),
            float(np.mean(matches[s])),
            float(np.mean(scores[s])),
        )
        for s in STRENGTHS
    )
    low, high = STRENGTHS[0], STRENGTHS[-1]
    unchanged = []
    for prompt in UNCHANGED_PROMPTS:
        without, with_lora = render_at(pipe, prompt, seeds, low), render_at(pipe, prompt, seeds, high)
        named = tuple(caption_attributes(prompt))
        readings = [(_reading(judge(a), named), _reading(judge(b), named)) for a, b in zip(without, with_lora)]
        everything = [(_reading(judge(a)), _reading(judge(b))) for a, b in zip(without, with_lora)]
        unchanged.append(
            UnchangedPrompt(
                prompt,
                pixel_difference(without, with_lora),
                float(np.mean([judge_score(image, prompt).value for image in without])),
                float(np.mean([judge_score(image, prompt).value for image in with_lora])),
                sum(a != b for a, b in readings),
                sum(a != b for a, b in everything),
            )
        )
    return LoraSweep(
        str(lora),
        TEAL_PROMPT,
        tuple(seeds),
        levels,
        paired_effect(matches[high], matches[low]),
        paired_effect(scores[high], scores[low]),
        pixel_difference(images[low], images[high]),
        tuple(unchanged),
        images,
    )


def _reading(judgement: Any, names: Sequence[str] = ("color", "shape", "background", "size", "position")) -> tuple[Any, ...]:
    return tuple(getattr(judgement, name) for name in names)


def sweep_grid(sweep: LoraSweep, rows: int = 4, scale: int = 2) -> Image:
    """The sweep's pictures as a grid: strength across, the first ``rows`` seeds down, each cell enlarged ``scale`` times."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    cell = GATE_SIZE * scale
    left, top, gap = 64, 22, 4
    strengths = sorted(sweep.images)
    seeds = sweep.seeds[:rows]
    width = left + len(strengths) * (cell + gap)
    height = top + len(seeds) * (cell + gap)
    grid = PILImage.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(grid)
    for column, strength in enumerate(strengths):
        x = left + column * (cell + gap)
        pen.text((x + 4, 5), f"strength {strength:g}", fill="black")
        for row, picture in enumerate(sweep.images[strength][:rows]):
            y = top + row * (cell + gap)
            grid.paste(picture.resize((cell, cell), PILImage.Resampling.NEAREST), (x, y))
    for row, seed in enumerate(seeds):
        pen.text((6, top + row * (cell + gap) + cell // 2 - 6), f"seed {seed}", fill="black")
    return grid
