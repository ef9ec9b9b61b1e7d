"""Files the exports read and write: the frame's image files, and output written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

from promptlab.errors import ExportError


def image_file(image: str, images_root: Path | None) -> Path:
    """The image file a frame's ``image`` column names, read under ``images_root`` when relative; ``ExportError`` if missing."""
    path = Path(image)
    if not path.is_absolute() and images_root is not None:
        path = Path(images_root) / path
    if not path.is_file():
        raise ExportError(f"image file {path} is missing (the store names it); restore it or re-run that cell")
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name, so a failed export leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from error
