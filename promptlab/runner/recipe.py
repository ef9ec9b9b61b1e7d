"""What every render the runner makes shares: a variant's render parameters, what it records of the render setup, and the all-black check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promptlab.experiment import Variant
from promptlab.render.params import RENDER_PARAM_NAMES

_INPUT_PARAM_NAMES = {
    "image": "image", "mask": "mask_image", "mask_image": "mask_image", "depth": "depth_map", "depth_map": "depth_map",
    "control_image": "control_image",
}  # fmt: skip


#: Why a black image is not recorded as a result.
BLACK_IMAGE_ERROR = (
    "the image is all black: the render overflowed or gave NaN (a very high term weight, or float16 on a "
    "model that needs float32); lower the weights or render with dtype float32"
)


def render_params(variant: Variant) -> Any:
    """The ``RenderParams`` of a variant (diffusers' names; image inputs as file paths)."""
    from promptlab.render.params import RenderParams

    values = {name: variant.params[name] for name in RENDER_PARAM_NAMES if variant.params.get(name) is not None}
    for name, path in variant.inputs.items():
        values[_INPUT_PARAM_NAMES.get(name, name)] = str(path)
    values.update(adapter_render_params(variant.params))
    if variant.loras:
        values["loras"] = variant.loras
    return RenderParams(task=variant.task, long_prompt=variant.long_prompt, **values)


def adapter_render_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``RenderParams`` fields of a variant's (or a recorded run's) embeddings and ControlNet.

    Embeddings are ``{"path", "token"}`` mappings (a variant's, or a run's with more keys); the
    ControlNet a model string (a variant's) or a mapping with ``model`` (a run's).
    """
    from promptlab.render.params import EmbeddingFile

    values: dict[str, Any] = {}
    embeddings = params.get("embeddings") or ()
    if embeddings:
        values["embeddings"] = tuple(EmbeddingFile(str(e["path"]), e.get("token")) for e in embeddings)
    controlnet = params.get("controlnet")
    if isinstance(controlnet, Mapping):
        # A run's: the weights where they were found (a folder or file as resolved), else as named.
        controlnet = controlnet.get("location") if controlnet.get("kind") in ("folder", "file") else controlnet.get("model")
    if controlnet:
        values["controlnet"] = str(controlnet)
    return values


def all_black(image: Any) -> bool:
    """Whether every pixel is 0: what a NaN or overflowing render decodes to."""
    return all(high == 0 for _, high in _band_extrema(image))


def _band_extrema(image: Any) -> list[tuple[int, int]]:
    extrema = image.getextrema()
    return list(extrema) if isinstance(extrema[0], tuple) else [extrema]


def setup_params(setup: Any) -> dict[str, Any]:
    """What a run records of the render setup besides its own params: enough to render it again."""
    data = setup.to_dict()
    return {
        "family": data["family"],
        "pipeline_class": data["pipeline_class"],
        "dtype": data["dtype"],
        "device": data["device"],
        "scheduler_name": data["scheduler"]["name"],
        "scheduler_class": data["scheduler"]["class_name"],
        "scheduler_config": data["scheduler"]["config"],
        "model_source": data["model"],
        "vae": data["vae"],
        "inputs": data["inputs"],
        "versions": data["versions"],
        **adapter_params(data),
        **lora_params(data),
    }


def lora_params(setup: dict[str, Any]) -> dict[str, Any]:
    """A render setup's LoRAs as a run records them (name, source, file sha256, strength, in the order applied);
    nothing for a render without them, so older records read the same."""
    loras = setup.get("loras") or ()
    return {"loras": [{key: lora[key] for key in ("name", "source", "sha256", "strength", "a1111_hash")} for lora in loras]} if loras else {}


def adapter_params(setup: dict[str, Any]) -> dict[str, Any]:
    """A render setup's embeddings (name, path, sha256, token, ...) and ControlNet (its weights' source, image
    hash and scale) as a run records them; nothing for a render without them, so older records read the same."""
    recorded: dict[str, Any] = {}
    if setup.get("embeddings"):
        recorded["embeddings"] = setup["embeddings"]
    controlnet = setup.get("controlnet")
    if controlnet:
        recorded["controlnet"] = {**controlnet["source"], "image_sha256": controlnet["image_sha256"], "scale": controlnet["scale"]}
    return recorded
