"""Input images for img2img, inpaint and depth2img: read with Pillow, checked, sized.

- The init image is made RGB, the mask ``L`` (white = repaint, black = keep, as diffusers reads
  it), a user depth map ``F`` (32-bit float, so 16-bit depth PNGs keep their precision; larger =
  nearer, as DPT/MiDaS write them; diffusers normalises it to -1..1).
- A mask or depth map must have the init image's size, else RenderError naming both files.
- With ``width``/``height`` given, every input is resized to exactly that size (aspect ratio not
  kept: LANCZOS for the image, NEAREST for the mask, BILINEAR for depth) and the output has that
  size. Without them the image keeps its own size, which must then be a multiple of 8 (the VAE's
  downsampling); nothing is cropped or rounded silently.
- Pillow's decompression-bomb warning is turned into an error, as is its hard limit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promptlab.errors import RenderError

if TYPE_CHECKING:
    import torch
    from PIL import Image


@dataclass(frozen=True)
class InputImages:
    """Inputs ready for a pipeline call, all ``width`` x ``height``."""

    image: Image.Image
    width: int
    height: int
    mask_image: Image.Image | None = None
    depth_map: Image.Image | None = None


def read_image(path: str | Path, mode: str = "RGB", role: str = "image") -> Image.Image:
    """Open ``path`` fully and convert it to ``mode``; RenderError naming the file on any failure."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                return opened.convert(mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise RenderError(
            f"{role} file {str(path)!r} is refused as a possible decompression bomb "
            f"(over Pillow's limit of {Image.MAX_IMAGE_PIXELS} pixels): {error}"
        ) from error
    except FileNotFoundError as error:
        raise RenderError(f"{role} file {str(path)!r} does not exist") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise RenderError(f"{role} file {str(path)!r} cannot be read as an image: {error}") from error


def prepare_images(
    image: str | Path,
    *,
    mask_image: str | Path | None = None,
    depth_map: str | Path | None = None,
    width: int | None = None,
    height: int | None = None,
    multiple: int = 8,
) -> InputImages:
    """Read and size the inputs of an image task (see the module docstring for the rules)."""
    from PIL import Image

    init = read_image(image, "RGB", "image")
    mask = read_image(mask_image, "L", "mask") if mask_image is not None else None
    depth = read_image(depth_map, "F", "depth map") if depth_map is not None else None
    for other, role, path in ((mask, "mask", mask_image), (depth, "depth map", depth_map)):
        if other is not None and other.size != init.size:
            raise RenderError(
                f"{role} file {str(path)!r} is {other.width}x{other.height} but image file {str(image)!r} is "
                f"{init.width}x{init.height}; they must be the same size"
            )
    target = (width or init.width, height or init.height)
    if target[0] % multiple or target[1] % multiple:
        raise RenderError(
            f"image file {str(image)!r} is {init.width}x{init.height}, not a multiple of {multiple} on each side; "
            f"pass width and height (--size WxH) to resize it"
        )
    if target != init.size:
        init = init.resize(target, Image.Resampling.LANCZOS)
        mask = mask.resize(target, Image.Resampling.NEAREST) if mask is not None else None
        depth = depth.resize(target, Image.Resampling.BILINEAR) if depth is not None else None
    return InputImages(image=init, width=target[0], height=target[1], mask_image=mask, depth_map=depth)


def depth_tensor(depth: Image.Image) -> torch.Tensor:
    """A ``F`` depth image as the (1, H, W) float tensor diffusers' depth2img takes as ``depth_map``."""
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(depth, dtype=np.float32).copy()).unsqueeze(0)
