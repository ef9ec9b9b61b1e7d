"""The export formats by name, and how each is saved: what the CLI's ``--to`` offers, without pandas."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFileType:
    """How a format's text is saved: the file suffix and the MIME type a download offers."""

    suffix: str
    mime: str


EXPORT_FILE_TYPES: dict[str, ExportFileType] = {
    "json": ExportFileType(".json", "application/json"),
    "csv": ExportFileType(".csv", "text/csv"),
    "markdown": ExportFileType(".md", "text/markdown"),
    "a1111-styles": ExportFileType(".csv", "text/csv"),
    "fooocus-styles": ExportFileType(".json", "application/json"),
    "compel": ExportFileType(".txt", "text/plain"),
    "a1111": ExportFileType(".txt", "text/plain"),
}

#: Every export format's name, in the order the CLI and the dashboard offer them.
EXPORT_FORMAT_NAMES: tuple[str, ...] = tuple(EXPORT_FILE_TYPES)
