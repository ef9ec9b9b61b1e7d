"""The best prompts of an experiment, in the formats other tools read; a labelled grid; a zip.

What ``promptlab export`` and the dashboard's export page call::

    frame = store.runs_frame("squirrel-styles")
    text = export_best(frame, "a1111-styles", experiment="squirrel-styles", top=5)
    grid_image(frame, "style", "seed").save("grid.png")   # the store frame's image paths need no root
    export_zip(frame, Path("squirrel-styles.zip"), experiment="squirrel-styles")

One module per job, each with its choices in its docstring:

- ``rows``: the ranked table every format writes (``ExportRow``, ``export_rows``);
- ``tables``: JSON, CSV, a Markdown table (and its reader), one prompt per line;
- ``styles``: A1111's ``styles.csv`` and Fooocus style files;
- ``formats``: the formats by name (``EXPORT_FORMATS``) and ``export_best``/``write_best``;
- ``grid``: the labelled x-by-y grid (``plan_grid`` decides, ``draw_grid`` draws);
- ``archive``: the zip of the ranked table, its runs and their images (a file, or bytes);
- ``files``: the frame's image files, and output written whole or not at all.

Importing this package loads none of its modules (nor pandas or Pillow): each name loads its
module on first use, so the CLI reads ``names.EXPORT_FORMAT_NAMES`` for ``--to`` at startup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promptlab.lazy import lazy_names

if TYPE_CHECKING:
    from promptlab.export.archive import ZIP_IMAGES_DIR, ZipExport, export_zip, zip_bytes
    from promptlab.export.formats import EXPORT_FORMATS, Writer, export_best, write_best
    from promptlab.export.grid import (
        GRID_BACKGROUND,
        GRID_PLAIN_AXES,
        GRID_TEXT,
        GRID_TILE,
        GRID_TILE_TEXT,
        GridCell,
        GridPlan,
        draw_grid,
        grid_axes,
        grid_image,
        plan_grid,
    )
    from promptlab.export.names import EXPORT_FILE_TYPES, EXPORT_FORMAT_NAMES, ExportFileType
    from promptlab.export.rows import TABLE_COLUMNS, ExportRow, export_rows
    from promptlab.export.styles import A1111_STYLE_COLUMNS, style_template, write_a1111_styles, write_fooocus_styles
    from promptlab.export.tables import (
        MARKDOWN_COLUMNS,
        MARKDOWN_DECIMALS,
        NUMBER_COLUMNS,
        parse_markdown_table,
        write_a1111_list,
        write_compel_list,
        write_csv,
        write_json,
        write_markdown,
    )

_HOMES: dict[str, str] = {
    **dict.fromkeys(("export_zip", "ZIP_IMAGES_DIR", "ZipExport", "zip_bytes"), "promptlab.export.archive"),
    **dict.fromkeys(("export_best", "EXPORT_FORMATS", "write_best", "Writer"), "promptlab.export.formats"),
    **dict.fromkeys(
        (
            "draw_grid",
            "grid_axes",
            "GRID_BACKGROUND",
            "grid_image",
            "GRID_PLAIN_AXES",
            "GRID_TEXT",
            "GRID_TILE",
            "GRID_TILE_TEXT",
            "GridCell",
            "GridPlan",
            "plan_grid",
        ),
        "promptlab.export.grid",
    ),
    **dict.fromkeys(("EXPORT_FILE_TYPES", "EXPORT_FORMAT_NAMES", "ExportFileType"), "promptlab.export.names"),
    **dict.fromkeys(("export_rows", "ExportRow", "TABLE_COLUMNS"), "promptlab.export.rows"),
    **dict.fromkeys(
        ("A1111_STYLE_COLUMNS", "style_template", "write_a1111_styles", "write_fooocus_styles"),
        "promptlab.export.styles",
    ),
    **dict.fromkeys(
        (
            "MARKDOWN_COLUMNS",
            "MARKDOWN_DECIMALS",
            "NUMBER_COLUMNS",
            "parse_markdown_table",
            "write_a1111_list",
            "write_compel_list",
            "write_csv",
            "write_json",
            "write_markdown",
        ),
        "promptlab.export.tables",
    ),
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())


__all__ = [
    "A1111_STYLE_COLUMNS",
    "EXPORT_FILE_TYPES",
    "EXPORT_FORMATS",
    "EXPORT_FORMAT_NAMES",
    "GRID_BACKGROUND",
    "GRID_PLAIN_AXES",
    "GRID_TEXT",
    "GRID_TILE",
    "GRID_TILE_TEXT",
    "MARKDOWN_COLUMNS",
    "MARKDOWN_DECIMALS",
    "NUMBER_COLUMNS",
    "TABLE_COLUMNS",
    "ZIP_IMAGES_DIR",
    "ExportFileType",
    "ExportRow",
    "GridCell",
    "GridPlan",
    "Writer",
    "ZipExport",
    "draw_grid",
    "export_best",
    "export_rows",
    "export_zip",
    "grid_axes",
    "grid_image",
    "parse_markdown_table",
    "plan_grid",
    "style_template",
    "write_a1111_list",
    "write_a1111_styles",
    "write_best",
    "write_compel_list",
    "write_csv",
    "write_fooocus_styles",
    "write_json",
    "write_markdown",
    "zip_bytes",
]
