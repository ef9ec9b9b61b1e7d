"""The micro-world: scenes promptlab draws itself, and the tiny models it trains on them.

``micro`` (a Stable Diffusion 1.x-shaped pipeline) and ``micro-clip`` (an open_clip CLIP) come
with the package under ``promptlab/micro/weights/``; ``promptlab micro train`` remakes them
from seeds (``promptlab.micro.train``). ``promptlab.micro.world`` draws and judges the scenes.
This module only names where things are, so that importing it costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Built-in diffusers folders by model name.
MICRO_MODELS: dict[str, Path] = {"micro": WEIGHTS_DIR / "micro"}
MICRO_CLIP_DIR = WEIGHTS_DIR / "micro-clip"
MICRO_CLIP_WEIGHTS = MICRO_CLIP_DIR / "micro-clip.safetensors"
#: How the shipped weights are remade (README's "The micro-world" says more).
RETRAIN_COMMAND = "promptlab micro train"
#: micro-clip's open_clip architecture: ViT on 8x8 patches of 64x64 scenes, open_clip's text tower.
MICRO_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}
