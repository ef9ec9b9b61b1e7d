"""Export formats by name: the writers, the files they make, and the entry points that use them.

    text = export_best(frame, "a1111-styles", experiment="squirrel-styles", top=5)
    write_best(frame, "json", Path("best.json"), experiment="squirrel-styles")

``EXPORT_FORMATS`` maps each format name (the CLI's ``--to`` values) to a writer taking the
ranked ``ExportRow``s and the experiment name and returning the file's text;
``names.EXPORT_FILE_TYPES`` says how each is saved (suffix, MIME type), in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from promptlab.errors import ExportError
from promptlab.export.files import write_atomic
from promptlab.export.rows import ExportRow, export_rows
from promptlab.export.styles import write_a1111_styles, write_fooocus_styles
from promptlab.export.tables import write_a1111_list, write_compel_list, write_csv, write_json, write_markdown


Writer = Callable[[Sequence[ExportRow], str], str]


EXPORT_FORMATS: dict[str, Writer] = {
    "json": write_json,
    "csv": write_csv,
    "markdown": write_markdown,
    "a1111-styles": write_a1111_styles,
    "fooocus-styles": write_fooocus_styles,
    "compel": write_compel_list,
    "a1111": write_a1111_list,
}



def export_best(
    frame: pd.DataFrame, fmt: str, *, experiment: str, top: int = 5
) -> str:
    """The best ``top`` prompts of ``experiment``'s runs frame as the text of format ``fmt``."""
    writer = _writer(fmt)
    return writer(export_rows(frame, top), experiment)


def write_best(
    frame: pd.DataFrame, fmt: str, out: Path, *, experiment: str, top: int = 5
) -> Path:
    """Write ``export_best(...)`` to ``out`` as UTF-8 (line endings as the writer made them); returns ``out``."""
    text = export_best(frame, fmt, experiment=experiment, top=top)
    write_atomic(Path(out), text.encode("utf-8"))
    return Path(out)


def _writer(fmt: str) -> Writer:
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    return EXPORT_FORMATS[fmt]
