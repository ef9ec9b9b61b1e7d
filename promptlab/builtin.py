"""The models that come with promptlab: their names, and where their weights live.

Rendering (``promptlab.render``), scoring (``promptlab.scoring``) and the micro-world trainer
(``promptlab.micro``) all read these facts here, so none of them imports another for them.
Importing this module costs nothing: it names files, it loads no library.

- ``micro`` (a Stable Diffusion 1.x-shaped pipeline) and ``micro-clip`` (an open_clip CLIP) are
  trained on micro-world scenes and ship with the package under ``promptlab/micro/weights/``;
  ``promptlab micro train`` remakes them from seeds.
- The tiny models (``tiny-sd``, ``tiny-sdxl``, ..., ``tiny-clip``) have random weights built
  from fixed seeds on first use and written under ``cache_dir()``; their images are noise.

    >>> BUILTIN_MODELS[:2]
    ('micro', 'tiny-sd')
    >>> tiny_model_dir("tiny-sd").name
    'tiny-sd'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptlab.paths import cache_dir

WEIGHTS_DIR = Path(__file__).resolve().parent / "micro" / "weights"
#: Built-in trained diffusers folders by model name.
MICRO_MODELS: dict[str, Path] = {"micro": WEIGHTS_DIR / "micro"}
MICRO_CLIP_DIR = WEIGHTS_DIR / "micro-clip"
MICRO_CLIP_WEIGHTS = MICRO_CLIP_DIR / "micro-clip.safetensors"
#: micro's teal LoRA (diffusers format: ``pipe.load_lora_weights(MICRO_TEAL_LORA)``): teal is not in
#: micro's palette, the LoRA teaches it; ``promptlab micro train-lora`` remakes it from seeds.
MICRO_TEAL_LORA = WEIGHTS_DIR / "micro-teal-lora"
#: How the shipped weights are remade (README's "The micro-world" says more).
RETRAIN_COMMAND = "promptlab micro train"
#: micro-clip's open_clip architecture: ViT on 8x8 patches of 64x64 scenes, open_clip's text tower.
MICRO_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}

#: Built-in random-weight diffusers models (``render.tiny`` builds each of them).
TINY_MODELS: tuple[str, ...] = ("tiny-sd", "tiny-sd-inpaint", "tiny-sdxl", "tiny-sdxl-inpaint", "tiny-sd2-depth")
#: Names of the diffusers models that come with promptlab: the trained ones, then the tiny random ones.
BUILTIN_MODELS: tuple[str, ...] = (*MICRO_MODELS, *TINY_MODELS)
#: Built-in CLIP models for scoring (``scoring.BUILTIN_CLIP_MODELS`` says how each is made).
BUILTIN_CLIP_NAMES: tuple[str, ...] = ("micro-clip", "tiny-clip")


def tiny_model_dir(name: str) -> Path:
    """Where built-in tiny diffusers model ``name`` is written on first use."""
    return cache_dir() / "models" / name


def builtin_clip_dir(name: str) -> Path:
    """The folder holding built-in CLIP model ``name``'s open_clip config (and its weights, when built)."""
    return cache_dir() / name
