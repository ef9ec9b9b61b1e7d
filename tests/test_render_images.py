"""Input images: reading, checks and sizing, with real files written by Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from promptlab.errors import RenderError
from promptlab.render.images import depth_tensor, prepare_images, read_image


def _save(path: Path, size: tuple[int, int], mode: str = "RGB", value: int = 128) -> Path:
    Image.new(mode, size, value if mode != "RGB" else (value, 30, 200)).save(path)
    return path


def test_read_converts_mode(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", (16, 8), mode="RGBA")
    image = read_image(path, "RGB")
    assert (image.mode, image.size) == ("RGB", (16, 8))
    assert read_image(path, "L", "mask").mode == "L"


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"image file '.*nope\.png' does not exist"):
        read_image(tmp_path / "nope.png")


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png at all")
    with pytest.raises(RenderError, match=r"mask file '.*broken\.png' cannot be read as an image"):
        read_image(path, "L", "mask")


def test_truncated_file_is_named(tmp_path: Path) -> None:
    path = _save(tmp_path / "cut.png", (64, 64))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(RenderError, match=r"cut\.png' cannot be read"):
        read_image(path)


@pytest.mark.parametrize("limit", [3000, 1000])
def test_decompression_bomb_warning_and_error_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    # 4096 pixels: over 3000 is Pillow's warning, over 2 x 1000 its hard error; both must refuse.
    path = _save(tmp_path / "bomb.png", (64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(RenderError, match=r"bomb\.png' is refused as a possible decompression bomb"):
        read_image(path)


def test_mask_size_mismatch_names_both_files(tmp_path: Path) -> None:
    image = _save(tmp_path / "image.png", (64, 64))
    mask = _save(tmp_path / "mask.png", (32, 64), mode="L")
    with pytest.raises(RenderError, match=r"mask file '.*mask\.png' is 32x64 but image file '.*image\.png' is 64x64"):
        prepare_images(image, mask_image=mask)


def test_depth_size_mismatch_is_refused(tmp_path: Path) -> None:
    image = _save(tmp_path / "image.png", (64, 64))
    depth = _save(tmp_path / "depth.png", (64, 48), mode="L")
    with pytest.raises(RenderError, match="depth map file"):
        prepare_images(image, depth_map=depth)


def test_size_not_multiple_of_8_is_refused_not_rounded(tmp_path: Path) -> None:
    image = _save(tmp_path / "odd.png", (60, 64))
    with pytest.raises(RenderError, match=r"odd\.png' is 60x64, not a multiple of 8.*--size"):
        prepare_images(image)


def test_requested_size_resizes_every_input(tmp_path: Path) -> None:
    image = _save(tmp_path / "image.png", (60, 44))
    mask = _save(tmp_path / "mask.png", (60, 44), mode="L", value=255)
    prepared = prepare_images(image, mask_image=mask, width=32, height=96)
    assert (prepared.width, prepared.height) == (32, 96)
    assert prepared.image.size == prepared.mask_image.size == (32, 96)
    assert prepared.image.mode == "RGB" and prepared.mask_image.mode == "L"
    assert set(np.unique(np.asarray(prepared.mask_image))) == {255}


def test_own_size_kept_when_valid(tmp_path: Path) -> None:
    prepared = prepare_images(_save(tmp_path / "image.png", (72, 40)))
    assert (prepared.width, prepared.height, prepared.image.size) == (72, 40, (72, 40))


def test_depth_map_keeps_16_bit_precision(tmp_path: Path) -> None:
    values = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 13
    path = tmp_path / "depth16.png"
    Image.fromarray(values).save(path)
    _save(tmp_path / "image.png", (64, 64))
    prepared = prepare_images(tmp_path / "image.png", depth_map=path)
    tensor = depth_tensor(prepared.depth_map)
    assert tuple(tensor.shape) == (1, 64, 64)
    assert float(tensor.max()) == float(values.max())
