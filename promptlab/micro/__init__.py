"""The micro-world: scenes promptlab draws itself, and the tiny models it trains on them.

``micro`` (a Stable Diffusion 1.x-shaped pipeline) and ``micro-clip`` (an open_clip CLIP) come
with the package under ``promptlab/micro/weights/``; ``promptlab micro train`` remakes them
from seeds (``promptlab.micro.train``). ``promptlab.micro.world`` draws and judges the scenes.
Where the weights live is a fact of ``promptlab.builtin``, which rendering and scoring read too;
the names below are the same objects, kept importable from here.
"""

from promptlab.builtin import (
    MICRO_CLIP_CONFIG,
    MICRO_CLIP_DIR,
    MICRO_CLIP_WEIGHTS,
    MICRO_MODELS,
    RETRAIN_COMMAND,
    WEIGHTS_DIR,
)

__all__ = ["MICRO_CLIP_CONFIG", "MICRO_CLIP_DIR", "MICRO_CLIP_WEIGHTS", "MICRO_MODELS", "RETRAIN_COMMAND", "WEIGHTS_DIR"]
