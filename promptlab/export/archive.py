"""A zip of an experiment's best prompts, their runs and their images.

    export_zip(frame, Path("squirrel-styles.zip"), experiment="squirrel-styles")
    data = zip_bytes(frame, experiment="squirrel-styles")   # the same zip, in memory (a download)

The zip holds ``best.csv`` and ``best.json`` (the ranked table), ``runs.csv`` (every run of the
ranked variants; of the whole experiment without ``top``) and ``images/`` with those runs'
image files copied byte for byte, so their PNG metadata stays intact; the tables name images by
their path in the zip.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from promptlab.export.files import image_file, write_atomic
from promptlab.export.rows import export_rows
from promptlab.export.tables import write_csv, write_json

ZIP_IMAGES_DIR = "images"


@dataclass(frozen=True)
class ZipExport:
    """What ``export_zip`` wrote."""

    path: Path
    variants: int
    runs: int
    images: int


def export_zip(
    frame: pd.DataFrame,
    out_path: Path,
    images_root: Path | None = None,
    top: int | None = None,
    *,
    experiment: str = "experiment",
) -> ZipExport:
    """A zip of the ranked table (CSV, JSON), the runs of those variants, and their images, bytes unchanged.

    ``top`` None ranks every scored variant and takes every run, failed ones too (``runs.csv``
    then is the whole experiment). Relative image paths are read under ``images_root``.
    """
    data, variants, runs, images = _zip(frame, images_root, top, experiment)
    # written to a temporary name, then renamed, so a failed export leaves no half zip
    out_path = Path(out_path)
    write_atomic(out_path, data)
    return ZipExport(path=out_path, variants=variants, runs=runs, images=images)


def zip_bytes(
    frame: pd.DataFrame, images_root: Path | None = None, top: int | None = None, *, experiment: str = "experiment"
) -> bytes:
    """The zip ``export_zip`` writes, as bytes: for a download, with no file in between."""
    return _zip(frame, images_root, top, experiment)[0]


def _zip(frame: pd.DataFrame, images_root: Path | None, top: int | None, experiment: str) -> tuple[bytes, int, int, int]:
    """The zip's bytes, and how many variants, runs and images it holds."""
    # 1. the ranked variants and their runs
    rows = export_rows(frame, top)
    keys = {row.variant_key for row in rows}
    runs = frame if top is None else frame[frame["variant_key"].isin(keys)]
    runs = runs.reset_index(drop=True)
    # 2. a name in the zip for every image file, unique even when two folders hold the same file name
    names: dict[str, str] = {}
    files: dict[str, Path] = {}
    taken: set[str] = set()
    for run_id, image in zip(runs["run_id"], runs["image"]):
        if pd.isna(image) or str(image) == "" or str(image) in names:
            continue
        path = image_file(str(image), images_root)
        name = f"{ZIP_IMAGES_DIR}/{path.name}"
        if name in taken:
            name = f"{ZIP_IMAGES_DIR}/{run_id}-{path.name}"
        names[str(image)], files[str(image)] = name, path
        taken.add(name)
    # 3. the tables, naming images by their place in the zip
    in_zip = [replace(row, image=names.get(row.image, row.image)) for row in rows]
    run_table = runs.drop(columns=[c for c in ("terms", "params", "axes") if c in runs.columns]).copy()
    run_table["image"] = [names.get(str(image), "") if pd.notna(image) else "" for image in runs["image"]]
    # 4. the zip, in memory
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("best.csv", write_csv(in_zip, experiment))
        archive.writestr("best.json", write_json(in_zip, experiment))
        archive.writestr("runs.csv", run_table.to_csv(index=False))
        for image, name in names.items():
            # PNGs are compressed already; stored, their bytes (metadata chunks included) stay as they were
            archive.writestr(name, files[image].read_bytes(), compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue(), len(rows), len(runs), len(names)
