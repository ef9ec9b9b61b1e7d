"""What every render the runner makes shares: a variant's render parameters, what it records of the render setup, and the all-black check."""

from __future__ import annotations

from typing import Any

from promptlab.experiment import Variant
from promptlab.render.params import RENDER_PARAM_NAMES

_INPUT_PARAM_NAMES = {"image": "image", "mask": "mask_image", "mask_image": "mask_image", "depth": "depth_map", "depth_map": "depth_map"}


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
    return RenderParams(task=variant.task, long_prompt=variant.long_prompt, **values)


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
    }
