"""promptlab's own CLIP models: ``micro-clip``, trained and shipped, and ``tiny-clip``, random and built.

Each loads like any local open_clip weights file: its architecture is registered with open_clip
under its name, and its file names that model in its safetensors metadata (``METADATA_MODEL``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.builtin import MICRO_CLIP_CONFIG, MICRO_CLIP_WEIGHTS, RETRAIN_COMMAND, builtin_clip_dir
from promptlab.errors import ScoringError

if TYPE_CHECKING:
    import torch

#: The safetensors metadata key naming a weights file's model. One key only: safetensors writes
#: several in hash-map order, which would change the file's sha256 from process to process.
METADATA_MODEL = "open_clip_model"


#: A tiny CLIP with open_clip's text tower and tokenizer (49,408 tokens, 77 positions).
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def _tiny_clip_state() -> dict[str, torch.Tensor]:
    import torch
    from open_clip.model import CLIP

    # A private RNG state: building the model must not move the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIP(**TINY_CLIP_CONFIG)
        offset = torch.randn(model.ln_final.bias.shape) * 0.6
    # Independent random towers give cosines around 0, most clamped to 0; a shared projection
    # and final-norm offset spread scores over a readable range (some cosines stay negative).
    with torch.no_grad():
        model.visual.proj.copy_(model.text_projection)
        model.ln_final.bias.copy_(offset)
        model.visual.ln_post.bias.copy_(offset)
    return {key: value.contiguous() for key, value in model.state_dict().items()}


@dataclass(frozen=True)
class BuiltinClip:
    """A CLIP model that comes with promptlab: its open_clip config and its weights."""

    config: dict[str, Any]
    #: Bumped whenever ``state`` changes; part of the file name, so a stale cached file is not used.
    version: int = 1
    #: The model's state dict, the same tensors on every machine (for a model built on first use).
    state: Callable[[], dict[str, torch.Tensor]] | None = None
    #: The weights file that ships with the package (for a trained model).
    shipped: Path | None = None


#: Built-in models by name (``builtin.BUILTIN_CLIP_NAMES``). Shipped weights load from the package;
#: built ones are saved once to ``builtin_clip_dir(NAME) / NAME-vVERSION.safetensors``.
BUILTIN_CLIP_MODELS: dict[str, BuiltinClip] = {
    "micro-clip": BuiltinClip(MICRO_CLIP_CONFIG, shipped=MICRO_CLIP_WEIGHTS),
    "tiny-clip": BuiltinClip(TINY_CLIP_CONFIG, 1, _tiny_clip_state),
}


def write_builtin_clip(name: str, path: Path) -> None:
    """Build built-in model ``name`` and save it to ``path`` (the same bytes on every machine)."""
    from safetensors.torch import save_file

    state = BUILTIN_CLIP_MODELS[name].state
    if state is None:
        raise ScoringError(f"built-in CLIP model {name!r} is trained, not built; its weights ship with promptlab")
    save_file(state(), str(path), metadata={METADATA_MODEL: name})


def builtin_clip_weights(name: str) -> Path:
    """The weights file of built-in model ``name`` (shipped, or written on first use), registered with open_clip."""
    if name not in BUILTIN_CLIP_MODELS:
        raise ScoringError(f"unknown built-in CLIP model {name!r}; built-in: {', '.join(BUILTIN_CLIP_MODELS)}")
    builtin = BUILTIN_CLIP_MODELS[name]
    folder = builtin_clip_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    if builtin.shipped is not None:
        if not builtin.shipped.is_file():
            raise ScoringError(
                f"built-in CLIP model {name!r} has no weights at {builtin.shipped}; install promptlab from a full "
                f"checkout or remake them with `{RETRAIN_COMMAND}`"
            )
        register_builtin_clip(name, folder)
        return builtin.shipped
    path = folder / f"{name}-v{builtin.version}.safetensors"
    if not path.is_file():
        # Written beside the target and renamed into place: a parallel process sees no file or a whole one.
        handle, temp = tempfile.mkstemp(prefix=f".{name}-", suffix=".safetensors", dir=folder)
        os.close(handle)
        try:
            write_builtin_clip(name, Path(temp))
            os.replace(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)
    register_builtin_clip(name, folder)
    return path


def register_builtin_clip(name: str, folder: Path) -> None:
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    config = BUILTIN_CLIP_MODELS[name].config
    if open_clip.get_model_config(name) == config:
        return
    # open_clip registers architectures from JSON files named after the model.
    path = folder / f"{name}.json"
    text = json.dumps(config, indent=2, sort_keys=True)
    if not path.is_file() or path.read_text() != text:
        handle, temp = tempfile.mkstemp(prefix=f".{name}-", suffix=".json", dir=folder)
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temp, path)
    open_clip.add_model_config(path)
