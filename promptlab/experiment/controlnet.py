"""An experiment's ControlNet: the ``[controlnet]`` block, its conditioning image per experiment or per
axis level (``[axes] control_image``), and ``controlnet_conditioning_scale`` as a parameter or an axis.

    [controlnet]
    model = "lllyasviel/sd-controlnet-canny"   # hub id, ControlNet folder or .safetensors file (relative to this file)
    image = "edges.png"                        # the conditioning image, relative to this file

    [params]
    controlnet_conditioning_scale = 0.8        # diffusers' 1.0 when not given

    [axes]
    controlnet_conditioning_scale = [0, 0.5, 1.0]
    # or one conditioning image per level, instead of [controlnet] image:
    # control_image = ["edges-a.png", "edges-b.png"]

The images are checked (RGB or grayscale) and hashed here, so a missing one or one of another mode
fails before anything renders; the model is
found when the run loads it, and its fit to the base (SD 1.x, SDXL) is checked then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlab.errors import ExperimentError, RenderError
from promptlab.experiment.check import Checker
from promptlab.experiment.spec import Axis, show_value
from promptlab.render.controlnet import check_control_image_mode

#: The ``[axes]`` keys a ControlNet adds (its scale is a parameter: ``spec.PARAMS``).
CONTROL_AXES = ("control_image",)
CONTROLNET_KEYS = ("model", "image")
#: The scale parameter, by diffusers' name.
SCALE = "controlnet_conditioning_scale"


@dataclass(frozen=True)
class ControlNetBlock:
    """The ``[controlnet]`` block: the model as given (a local path resolved), its image if one, and each
    conditioning image of the experiment (the block's or the axis levels', as written) -> (path, sha256)."""

    model: str
    image: str | None = None
    images: Mapping[str, tuple[Path, str]] = field(default_factory=dict)


def read_controlnet(check: Checker, raw: Mapping[str, Any], base_dir: Path) -> ControlNetBlock | None:
    """The ``[controlnet]`` block, its image read and hashed; None when the file has none."""
    if "controlnet" not in raw:
        return None
    table = check.table(raw, "controlnet")
    check.keys(table, CONTROLNET_KEYS, "[controlnet]")
    model = check.string(table, "model", "[controlnet]", required=True, nonempty=True,
                         expected="a ControlNet: hub id, ControlNet folder or .safetensors file")  # fmt: skip
    local = (base_dir / Path(model).expanduser())
    if local.exists():
        model = str(local.resolve())
    image = check.string(table, "image", "[controlnet]", nonempty=True)
    images = {image: _image(check, "[controlnet] image", image, base_dir)} if image is not None else {}
    return ControlNetBlock(model, image, images)


def _image(check: Checker, where: str, text: Any, base_dir: Path) -> tuple[Path, str]:
    if not isinstance(text, str) or not text.strip():
        check.fail(where, text, "an image file path, relative to the experiment file")
    path = (base_dir / Path(text).expanduser()).resolve()
    if not path.is_file():
        check.fail(where, text, f"an existing image file, relative to the experiment file (looked for {path})")
    try:
        check_control_image_mode(str(path))
    except RenderError as exc:
        raise ExperimentError(f"{check.source}: {where} = {show_value(text)}: {exc}") from None
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def control_image_axis(check: Checker, value: list[Any], block: ControlNetBlock | None, base_dir: Path) -> tuple[Axis, ControlNetBlock]:
    """``[axes] control_image``: a conditioning image per level; the block, with their paths and hashes added."""
    where = "[axes] control_image"
    if block is None:
        check.fail(where, value, 'conditioning images for a ControlNet: add [controlnet] model = "..." first')
    if block.image is not None:
        check.fail(where, value, "conditioning images per level, or [controlnet] image for all, not both: remove one")
    images = dict(block.images)
    for level in value:
        images[level] = _image(check, where, level, base_dir)
    return Axis("control_image", "control_image", tuple(value)), ControlNetBlock(block.model, None, images)


def check_controlnet(check: Checker, block: ControlNetBlock | None, params: Mapping[str, Any], axes: tuple[Axis, ...]) -> None:
    """ExperimentError if a scale is set without a ControlNet, or a ControlNet has no conditioning image."""
    swept = [axis.name for axis in axes]
    if block is None:
        for where in ("[params]" if SCALE in params else None, "[axes]" if SCALE in swept else None):
            if where is not None:
                check.fail(f"{where} {SCALE}", params.get(SCALE, "..."), 'a scale for a ControlNet: add [controlnet] model = "..." and image = "..."')
        return
    if block.image is None and "control_image" not in swept:
        check.missing("[controlnet] image", 'the conditioning image, e.g. image = "edges.png", or [axes] control_image = [...]')


def controlnet_variant(block: ControlNetBlock | None, choice: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Path], dict[str, str]]:
    """A variant's ControlNet: its ``params`` entry, its ``control_image`` input and that input's hash."""
    if block is None:
        return {}, {}, {}
    image = choice.get("control_image", block.image)
    if image is None:  # ablation's base variant of a swept image: the first level
        image = next(iter(block.images))
    path, sha256 = block.images[image]
    return {"controlnet": block.model}, {"control_image": path}, {"control_image": sha256}
