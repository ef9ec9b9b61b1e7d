"""Many files at once: images and style files, told apart by suffix, read in argument order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlab.importer.images import ImportedPrompt, import_image
from promptlab.importer.styles import STYLE_SUFFIXES, Style, import_styles


@dataclass(frozen=True)
class ImportBatch:
    """What ``import_paths`` read: prompts from images, styles from style files, in argument order."""

    prompts: list[ImportedPrompt] = field(default_factory=list)
    styles: list[Style] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"prompts": [p.to_dict() for p in self.prompts], "styles": [s.to_dict() for s in self.styles]}


def import_paths(paths: Iterable[Path]) -> ImportBatch:
    """Images and style files (``STYLE_SUFFIXES``), read in order; the first file that fails raises, naming it."""
    prompts: list[ImportedPrompt] = []
    styles: list[Style] = []
    for path in map(Path, paths):
        if path.suffix.lower() in STYLE_SUFFIXES:
            styles.extend(import_styles(path))
        else:
            prompts.append(import_image(path))
    return ImportBatch(prompts=prompts, styles=styles)
