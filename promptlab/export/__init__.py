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
- ``archive``: the zip of the ranked table, its runs and their images;
- ``files``: the frame's image files, and output written whole or not at all.
"""

from promptlab.export.archive import ZIP_IMAGES_DIR, ZipExport, export_zip
from promptlab.export.formats import EXPORT_FILE_TYPES, EXPORT_FORMATS, ExportFileType, Writer, export_best, write_best
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

__all__ = [
    "A1111_STYLE_COLUMNS",
    "EXPORT_FILE_TYPES",
    "EXPORT_FORMATS",
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
]
