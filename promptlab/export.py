"""The best prompts of an experiment, in the formats other tools read; a labelled grid; a zip.

What ``promptlab export`` and the dashboard's export page call::

    frame = store.runs_frame("squirrel-styles")
    text = export_best(frame, "a1111-styles", experiment="squirrel-styles", top=5)
    grid_image(frame, "style", "seed").save("grid.png")   # the store frame's image paths need no root
    export_zip(frame, Path("squirrel-styles.zip"), experiment="squirrel-styles")

The frame is ``promptlab.analysis``'s runs frame; its prompts are in compel syntax and are
converted with ``promptlab.prompt.convert`` where a format wants A1111's. The choices, and why:

1. ``EXPORT_FORMATS`` maps each format name (the CLI's ``--to`` values) to a writer taking the
   ranked ``ExportRow``s and the experiment name and returning the file's text.
2. ``a1111-styles`` and ``fooocus-styles`` write a style's prompt as ``{prompt}, term, term``:
   the variant's terms in A1111 syntax without its subject, so the style applies to whatever
   the user types (both tools put the typed prompt where ``{prompt}`` stands). The style's
   negative prompt is the variant's, in A1111 syntax, which both tools add to the user's.
   Style names are ``<experiment> #<rank> <label>``, unique because the rank is.
   ``styles.csv`` starts with a UTF-8 BOM and has exactly ``name,prompt,negative_prompt``,
   as A1111 writes and reads it (``encoding="utf-8-sig"``, ``csv.DictReader``).
3. The Markdown table shows numbers to 3 decimals, prompts and paths as code spans, ``|`` escaped;
   Markdown and the one-prompt-per-line lists cannot hold a line break, so a prompt with one
   raises ``ExportError`` (JSON and CSV keep it).
4. The grid (``plan_grid`` then ``draw_grid``, or ``grid_image`` for both): columns are the
   levels of axis ``x``, rows those of ``y``, each in order of first appearance in the frame
   (the store's experiment order). A cell holding several runs (other axes or seeds varying)
   shows its best-scoring run, or with ``seed=`` the best-scoring run of that seed. A cell
   with runs but no image is a grey tile saying "failed"; a cell with no run, "missing".
   Images of another size than the cell are fitted inside it (``ImageOps.pad``), never
   stretched.
5. The zip holds ``best.csv`` and ``best.json`` (the ranked table), ``runs.csv`` (every run of
   the ranked variants; of the whole experiment without ``top``) and ``images/`` with those
   runs' image files copied byte for byte, so their PNG metadata stays intact; the tables
   name images by their path in the zip.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from PIL import Image, ImageDraw, ImageFont, ImageOps

from promptlab.analysis import AXIS_PREFIX, BestPrompt, axis_columns, best_prompts, check_frame
from promptlab.errors import ExportError, PromptSyntaxError
from promptlab.prompt import Prompt, convert, parse_compel

STYLE_PLACEHOLDER = "{prompt}"
A1111_STYLE_COLUMNS = ("name", "prompt", "negative_prompt")
TABLE_COLUMNS = (
    "rank",
    "variant_key",
    "label",
    "subject",
    "prompt",
    "prompt_a1111",
    "negative_prompt",
    "negative_prompt_a1111",
    "best_score",
    "mean",
    "ci_low",
    "ci_high",
    "n",
    "image",
)
MARKDOWN_COLUMNS = (
    ("rank", "rank"),
    ("label", "label"),
    ("prompt", "prompt (compel)"),
    ("prompt_a1111", "prompt (A1111)"),
    ("negative_prompt", "negative prompt"),
    ("mean", "mean"),
    ("ci_low", "CI low"),
    ("ci_high", "CI high"),
    ("n", "seeds"),
    ("image", "best image"),
)
MARKDOWN_DECIMALS = 3
NUMBER_COLUMNS = ("rank", "best_score", "mean", "ci_low", "ci_high", "n")
# Axis names the grid accepts besides the frame's ``axis:<name>`` columns.
GRID_PLAIN_AXES = ("seed", "subject")
GRID_BACKGROUND = (255, 255, 255)
GRID_TILE = (128, 128, 128)
GRID_TEXT = (0, 0, 0)
GRID_TILE_TEXT = (255, 255, 255)
ZIP_IMAGES_DIR = "images"


@dataclass(frozen=True)
class ExportRow:
    """One ranked variant as every format writes it: prompts in both syntaxes, its numbers, its image."""

    rank: int
    variant_key: str
    label: str
    subject: str
    prompt: str
    prompt_a1111: str
    negative_prompt: str
    negative_prompt_a1111: str
    best_score: float
    mean: float
    ci_low: float
    ci_high: float
    n: int
    image: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes null."""
        return {
            key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in asdict(self).items()
        }


@dataclass(frozen=True)
class ExportFileType:
    """How a format's text is saved: the file suffix and the MIME type a download offers."""

    suffix: str
    mime: str


Writer = Callable[[Sequence[ExportRow], str], str]


def export_rows(frame: pd.DataFrame, top: int | None = 5) -> list[ExportRow]:
    """The ``top`` variants by mean score (every scored variant when ``top`` is None), ready to write."""
    check_frame(frame)
    scored = frame[pd.to_numeric(frame["score"], errors="coerce").notna()]
    if scored.empty:
        raise ExportError(
            f"the experiment has no scored runs ({len(frame)} run(s) in all): nothing to rank; "
            "score its images first (promptlab score)"
        )
    count = top if top is not None else scored["variant_key"].nunique()
    if count < 1:
        raise ExportError(f"top must be at least 1, got {top}")
    return [_export_row(best, frame) for best in best_prompts(frame, count)]


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
    _write_atomic(Path(out), text.encode("utf-8"))
    return Path(out)


def write_json(rows: Sequence[ExportRow], experiment: str) -> str:
    """``{"experiment": ..., "prompts": [row, ...]}``, NaN as null."""
    data = {"experiment": experiment, "prompts": [row.to_dict() for row in rows]}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_csv(rows: Sequence[ExportRow], experiment: str) -> str:
    """One row per variant with ``TABLE_COLUMNS``; NaN as an empty field."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.to_dict().items()})
    return buffer.getvalue()


def write_markdown(rows: Sequence[ExportRow], experiment: str) -> str:
    """A GitHub-flavoured Markdown table: numbers to 3 decimals, prompts as code spans."""
    lines = [
        "| " + " | ".join(title for _, title in MARKDOWN_COLUMNS) + " |",
        "|" + "|".join("---:" if key in NUMBER_COLUMNS else "---" for key, _ in MARKDOWN_COLUMNS) + "|",
    ]
    for row in rows:
        values = row.to_dict()
        cells = []
        for key, _ in MARKDOWN_COLUMNS:
            value = values[key]
            if isinstance(value, float):
                cells.append(f"{value:.{MARKDOWN_DECIMALS}f}")
            elif value is None:
                cells.append("n/a")
            elif key in ("rank", "n"):
                cells.append(str(value))
            elif key == "label":
                cells.append(_one_line(str(value), key, row).replace("|", "\\|"))
            else:
                cells.append(_markdown_code(_one_line(str(value), key, row)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_a1111_styles(rows: Sequence[ExportRow], experiment: str) -> str:
    """A1111's ``styles.csv``: BOM, ``name,prompt,negative_prompt``; prompts as ``{prompt}, terms``."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.DictWriter(buffer, fieldnames=A1111_STYLE_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(_style(row, experiment))
    return buffer.getvalue()


def write_fooocus_styles(rows: Sequence[ExportRow], experiment: str) -> str:
    """A Fooocus style file (``sdxl_styles/*.json``): a list of ``{name, prompt, negative_prompt}``."""
    return json.dumps([_style(row, experiment) for row in rows], indent=4, ensure_ascii=False) + "\n"


def write_compel_list(rows: Sequence[ExportRow], experiment: str) -> str:
    """One prompt per line, compel syntax, best first."""
    return "".join(_one_line(row.prompt, "prompt", row) + "\n" for row in rows)


def write_a1111_list(rows: Sequence[ExportRow], experiment: str) -> str:
    """One prompt per line, A1111 syntax, best first."""
    return "".join(_one_line(row.prompt_a1111, "prompt_a1111", row) + "\n" for row in rows)


EXPORT_FORMATS: dict[str, Writer] = {
    "json": write_json,
    "csv": write_csv,
    "markdown": write_markdown,
    "a1111-styles": write_a1111_styles,
    "fooocus-styles": write_fooocus_styles,
    "compel": write_compel_list,
    "a1111": write_a1111_list,
}

EXPORT_FILE_TYPES: dict[str, ExportFileType] = {
    "json": ExportFileType(".json", "application/json"),
    "csv": ExportFileType(".csv", "text/csv"),
    "markdown": ExportFileType(".md", "text/markdown"),
    "a1111-styles": ExportFileType(".csv", "text/csv"),
    "fooocus-styles": ExportFileType(".json", "application/json"),
    "compel": ExportFileType(".txt", "text/plain"),
    "a1111": ExportFileType(".txt", "text/plain"),
}


def style_template(row: ExportRow) -> str:
    """The variant as a style prompt: ``{prompt}, `` then its terms in A1111 syntax, its subject left out."""
    terms = _terms_without_subject(row)
    rendered = Prompt("", terms).to_a1111()
    return f"{STYLE_PLACEHOLDER}, {rendered}" if rendered else STYLE_PLACEHOLDER


def _writer(fmt: str) -> Writer:
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    return EXPORT_FORMATS[fmt]


def _export_row(best: BestPrompt, frame: pd.DataFrame) -> ExportRow:
    runs = frame[frame["variant_key"] == best.variant_key]
    best_run = runs[runs["image"].astype(str) == best.image]
    subject = str((best_run if not best_run.empty else runs)["subject"].iloc[0])
    return ExportRow(
        rank=best.rank,
        variant_key=best.variant_key,
        label=best.label,
        subject=subject,
        prompt=best.prompt,
        prompt_a1111=_to_a1111(best.prompt, "prompt", best),
        negative_prompt=best.negative_prompt,
        negative_prompt_a1111=_to_a1111(best.negative_prompt, "negative_prompt", best),
        best_score=best.best_score,
        mean=best.mean,
        ci_low=best.ci_low,
        ci_high=best.ci_high,
        n=best.n,
        image=best.image,
    )


def _to_a1111(text: str, what: str, best: BestPrompt) -> str:
    if not text.strip():
        return ""
    try:
        return convert(text, "compel", "a1111")
    except PromptSyntaxError as error:
        raise ExportError(
            f"variant {best.label!r}: its {what} {text!r} cannot be written in A1111 syntax: {error}"
        ) from error


def _terms_without_subject(row: ExportRow) -> tuple[Any, ...]:
    """The prompt's terms after the segments that spell the run's subject (a subject may hold commas)."""
    parsed = parse_compel(row.prompt)
    if not row.subject.strip():
        return parsed.terms
    try:
        # the subject as the prompt spells it, escapes and all
        subject = parse_compel(Prompt(row.subject).to_compel())
    except PromptSyntaxError as error:
        raise ExportError(f"variant {row.label!r}: subject {row.subject!r} cannot be written in compel: {error}") from error
    lead = len(subject.terms)
    if parsed.subject == subject.subject and parsed.terms[:lead] == subject.terms:
        return parsed.terms[lead:]
    raise ExportError(
        f"variant {row.label!r}: prompt {row.prompt!r} does not start with its subject {row.subject!r}, "
        "so the style cannot put {prompt} in the subject's place"
    )


def _style(row: ExportRow, experiment: str) -> dict[str, str]:
    name = f"{experiment} #{row.rank} {row.label}".strip()
    return {"name": name, "prompt": style_template(row), "negative_prompt": row.negative_prompt_a1111}


def _one_line(text: str, what: str, row: ExportRow) -> str:
    if "\n" in text or "\r" in text:
        raise ExportError(
            f"variant {row.label!r}: its {what} holds a line break, which this format cannot hold; "
            "export it as json or csv"
        )
    return text


def _markdown_code(text: str) -> str:
    if not text:
        return ""
    escaped = text.replace("|", "\\|")
    # a backtick inside needs a longer fence, padded so a leading or trailing backtick stays text
    if "`" in text:
        return f"`` {escaped} ``"
    return f"`{escaped}`"


def parse_markdown_table(text: str) -> list[dict[str, str]]:
    """Read back a table ``write_markdown`` wrote: one dict per row keyed by ``TABLE_COLUMNS`` names, cells as text."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    if len(lines) < 2:
        raise ExportError("Markdown table: expected a header line and a separator line starting with '|'")
    keys = [key for key, _ in MARKDOWN_COLUMNS]
    rows = []
    for line in lines[2:]:
        cells = _split_markdown_row(line)
        if len(cells) != len(keys):
            raise ExportError(f"Markdown table row has {len(cells)} cells, expected {len(keys)}: {line!r}")
        rows.append(dict(zip(keys, cells)))
    return rows


def _split_markdown_row(line: str) -> list[str]:
    cells, current, i = [], [], 1
    body = line.rstrip()
    while i < len(body):
        char = body[i]
        if char == "\\" and body[i + 1 : i + 2] == "|":
            current.append("|")
            i += 2
            continue
        if char == "|":
            cells.append(_unwrap_code("".join(current).strip()))
            current = []
        else:
            current.append(char)
        i += 1
    return cells


def _unwrap_code(cell: str) -> str:
    if cell.startswith("`` ") and cell.endswith(" ``"):
        return cell[3:-3]
    if len(cell) >= 2 and cell.startswith("`") and cell.endswith("`"):
        return cell[1:-1]
    return cell


# The grid.


@dataclass(frozen=True)
class GridCell:
    """What one grid cell shows: the chosen run's image and score, or why there is none."""

    row: int
    column: int
    status: Literal["ok", "failed", "missing"]
    n_runs: int
    run_id: Any = None
    seed: int | None = None
    score: float | None = None
    image: Path | None = None


@dataclass(frozen=True)
class GridPlan:
    """Everything ``draw_grid`` needs: levels, labels, the chosen run per cell, and the layout in pixels.

    The image is ``label_width + columns * cell_width`` wide and ``header_height + rows *
    (cell_height + score_height)`` high; cell (row, column)'s picture starts at ``cell_origin``.
    """

    x: str
    y: str
    x_labels: list[str]
    y_labels: list[str]
    cells: list[GridCell]
    cell_width: int
    cell_height: int
    label_width: int
    header_height: int
    score_height: int
    font_size: int
    x_lines: list[list[str]] = field(default_factory=list)
    y_lines: list[list[str]] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return (
            self.label_width + len(self.x_labels) * self.cell_width,
            self.header_height + len(self.y_labels) * (self.cell_height + self.score_height),
        )

    def cell_origin(self, row: int, column: int) -> tuple[int, int]:
        """Top-left pixel of the picture of cell (row, column)."""
        return (
            self.label_width + column * self.cell_width,
            self.header_height + row * (self.cell_height + self.score_height),
        )

    def cell(self, row: int, column: int) -> GridCell:
        return self.cells[row * len(self.x_labels) + column]


def grid_axes(frame: pd.DataFrame) -> list[str]:
    """The names ``grid_image`` accepts for ``x`` and ``y``: the frame's axes, then seed and subject."""
    return [column[len(AXIS_PREFIX) :] for column in axis_columns(frame)] + [
        name for name in GRID_PLAIN_AXES if name in frame.columns
    ]


def plan_grid(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    images_root: Path | None = None,
    cell_size: int | tuple[int, int] | None = None,
    seed: int | None = None,
    font_size: int | None = None,
) -> GridPlan:
    """Which run each cell of an x-by-y grid shows, and the layout (see the module docstring, point 4).

    ``x`` and ``y`` name an axis (``style`` or ``axis:style``), ``seed`` or ``subject``.
    ``cell_size`` defaults to the first image's size. Relative image paths are read under
    ``images_root`` (default: the working directory).
    """
    # 1. check the inputs
    check_frame(frame)
    if frame.empty:
        raise ExportError("the experiment has no runs: nothing to draw")
    x_column, y_column = _grid_column(frame, x), _grid_column(frame, y)
    if x_column == y_column:
        raise ExportError(f"x and y are both {x!r}: pick two different axes from {', '.join(grid_axes(frame))}")
    frame = frame.reset_index(drop=True)
    runs = frame
    if seed is not None:
        if "seed" in (x_column, y_column):
            raise ExportError("seed= picks one seed per cell; it cannot be combined with seed as the x or y axis")
        seeds = [int(s) for s in pd.unique(runs["seed"])]
        if seed not in seeds:
            raise ExportError(f"seed {seed} is not in the experiment; its seeds are {seeds}")
        runs = runs[runs["seed"] == seed]
    # 2. levels in order of first appearance, then the chosen run per cell
    x_codes, x_levels = _levels(frame, x_column, runs)
    y_codes, y_levels = _levels(frame, y_column, runs)
    cells = [
        _pick(runs[(x_codes == column) & (y_codes == row)], row, column, images_root)
        for row in range(len(y_levels))
        for column in range(len(x_levels))
    ]
    # 3. the layout
    width, height = _cell_size(cell_size, cells)
    size = font_size if font_size is not None else max(10, (width + height) // 40)
    if size < 1:
        raise ExportError(f"font_size must be at least 1 pixel, got {size}")
    font = ImageFont.load_default(size=size)
    line_height = _line_height(font)
    pad = max(2, size // 3)
    x_labels = [_level_label(x_column, level) for level in x_levels]
    y_labels = [_level_label(y_column, level) for level in y_levels]
    # Wide enough for the longest word of a row label (up to two cells), so names wrap between words.
    longest_word = max((font.getlength(word) for label in y_labels for word in label.split()), default=0)
    label_width = max(width * 3 // 4, 4 * size + 2 * pad, min(math.ceil(longest_word) + 2 * pad, 2 * width))
    x_lines = [_wrap(label, font, width - 2 * pad) for label in x_labels]
    y_lines = [_wrap(label, font, label_width - 2 * pad) for label in y_labels]
    header_height = max(len(lines) for lines in x_lines) * line_height + 2 * pad
    return GridPlan(
        x=x_column,
        y=y_column,
        x_labels=x_labels,
        y_labels=y_labels,
        cells=cells,
        cell_width=width,
        cell_height=height,
        label_width=label_width,
        header_height=header_height,
        score_height=line_height + 2 * pad,
        font_size=size,
        x_lines=x_lines,
        y_lines=y_lines,
    )


def draw_grid(plan: GridPlan) -> Image.Image:
    """Draw ``plan``: labels on top and left, each cell's picture with its score below it."""
    canvas = Image.new("RGB", plan.size, GRID_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=plan.font_size)
    # 1. column labels, centred over their column
    for column, lines in enumerate(plan.x_lines):
        left = plan.label_width + column * plan.cell_width
        _draw_lines(draw, font, lines, (left, 0, left + plan.cell_width, plan.header_height), GRID_TEXT)
    # 2. row labels, centred beside their row
    for row, lines in enumerate(plan.y_lines):
        top = plan.header_height + row * (plan.cell_height + plan.score_height)
        bottom = top + plan.cell_height + plan.score_height
        _draw_lines(draw, font, lines, (0, top, plan.label_width, bottom), GRID_TEXT)
    # 3. the cells
    for cell in plan.cells:
        left, top = plan.cell_origin(cell.row, cell.column)
        box = (left, top, left + plan.cell_width, top + plan.cell_height)
        if cell.status == "ok" and cell.image is not None:
            canvas.paste(_fitted(cell.image, (plan.cell_width, plan.cell_height)), (left, top))
            score = "no score" if cell.score is None else f"{cell.score:.3f}"
            strip = (left, box[3], box[2], box[3] + plan.score_height)
            _draw_lines(draw, font, [score], strip, GRID_TEXT)
        else:
            draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=GRID_TILE)
            _draw_lines(draw, font, [cell.status], box, GRID_TILE_TEXT)
    return canvas


def grid_image(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    images_root: Path | None = None,
    cell_size: int | tuple[int, int] | None = None,
    seed: int | None = None,
    font_size: int | None = None,
) -> Image.Image:
    """A labelled x-by-y grid of the experiment's images, like A1111's X/Y plot (``plan_grid`` + ``draw_grid``)."""
    return draw_grid(
        plan_grid(frame, x, y, images_root=images_root, cell_size=cell_size, seed=seed, font_size=font_size)
    )


def _grid_column(frame: pd.DataFrame, name: str) -> str:
    candidates = [name] if name in GRID_PLAIN_AXES else [AXIS_PREFIX + name.removeprefix(AXIS_PREFIX)]
    for column in candidates:
        if column in frame.columns:
            return column
    raise ExportError(f"unknown axis {name!r}: the experiment's axes are {', '.join(grid_axes(frame)) or 'none'}")


def _levels(frame: pd.DataFrame, column: str, runs: pd.DataFrame) -> tuple[pd.Series, list[Any]]:
    """Each run's level index and the levels, in order of first appearance over the whole frame."""
    codes, uniques = pd.factorize(_axis_values(frame[column]), use_na_sentinel=False)
    return pd.Series(codes, index=frame.index).reindex(runs.index), [_py(level) for level in uniques]


def _axis_values(values: pd.Series) -> pd.Series:
    # a text axis's missing value means the term is absent, read as "" (promptlab.analysis's rule)
    if pd.api.types.is_numeric_dtype(values):
        return values
    return values.astype(object).where(values.notna(), "")


def _level_label(column: str, level: Any) -> str:
    name = column.removeprefix(AXIS_PREFIX)
    if column == "subject":
        return str(level)
    if column == "seed":
        return f"seed {level}"
    if isinstance(level, str):
        return level if level else f"no {name}"
    if isinstance(level, float) and math.isnan(level):
        return f"{name}: n/a"
    return f"{name}: {level:g}" if isinstance(level, float) else f"{name}: {level}"


def _pick(runs: pd.DataFrame, row: int, column: int, images_root: Path | None) -> GridCell:
    if runs.empty:
        return GridCell(row=row, column=column, status="missing", n_runs=0)
    with_image = runs[runs["image"].notna() & (runs["image"].astype(str) != "")]
    if "status" in runs.columns:
        with_image = with_image[with_image["status"].fillna("ok") == "ok"]
    if with_image.empty:
        return GridCell(row=row, column=column, status="failed", n_runs=len(runs))
    scores = pd.to_numeric(with_image["score"], errors="coerce")
    chosen = with_image.loc[scores.idxmax()] if scores.notna().any() else with_image.iloc[0]
    score = float(chosen["score"]) if pd.notna(chosen["score"]) else None
    return GridCell(
        row=row,
        column=column,
        status="ok",
        n_runs=len(runs),
        run_id=_py(chosen["run_id"]),
        seed=int(chosen["seed"]),
        score=score,
        image=_image_path(str(chosen["image"]), images_root),
    )


def _image_path(image: str, images_root: Path | None) -> Path:
    path = Path(image)
    if not path.is_absolute() and images_root is not None:
        path = Path(images_root) / path
    if not path.is_file():
        raise ExportError(f"image file {path} is missing (the store names it); restore it or re-run that cell")
    return path


def _cell_size(cell_size: int | tuple[int, int] | None, cells: list[GridCell]) -> tuple[int, int]:
    if cell_size is None:
        first = next((cell.image for cell in cells if cell.image is not None), None)
        if first is None:
            raise ExportError("no cell has an image, so the cell size is unknown: pass cell_size")
        with Image.open(first) as image:
            return image.size
    width, height = (cell_size, cell_size) if isinstance(cell_size, int) else cell_size
    if width < 1 or height < 1:
        raise ExportError(f"cell_size must be positive pixels, got {cell_size}")
    return width, height


def _fitted(path: Path, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as image:
        picture = image.convert("RGB")
    if picture.size == size:
        return picture
    return ImageOps.pad(picture, size, color=GRID_BACKGROUND)


def _line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    ascent, descent = font.getmetrics()  # type: ignore[union-attr]
    return int(ascent + descent)


def _wrap(text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; a word wider than a line is broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        for piece in [word] if font.getlength(word) <= width else _break_word(word, font, width):
            candidate = f"{current} {piece}" if current else piece
            if current and font.getlength(candidate) > width:
                lines.append(current)
                candidate = piece
            current = candidate
    return [*lines, current]


def _break_word(word: str, font: Any, width: int) -> list[str]:
    pieces, current = [], ""
    for char in word:
        if current and font.getlength(current + char) > width:
            pieces.append(current)
            current = ""
        current += char
    return [*pieces, current] if current else pieces


def _draw_lines(
    draw: ImageDraw.ImageDraw, font: Any, lines: list[str], box: tuple[int, int, int, int], fill: tuple[int, int, int]
) -> None:
    line_height = _line_height(font)
    left, top, right, bottom = box
    y = top + (bottom - top - line_height * len(lines)) // 2
    for line in lines:
        x = left + (right - left - font.getlength(line)) / 2
        draw.text((x, y), line, font=font, fill=fill)
        y += line_height


# The zip.


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
    # 1. the ranked variants and their runs
    rows = export_rows(frame, top)
    keys = {row.variant_key for row in rows}
    runs = frame if top is None else frame[frame["variant_key"].isin(keys)]
    runs = runs.reset_index(drop=True)
    # 2. a name in the zip for every image file, unique even when two folders hold the same file name
    names: dict[str, str] = {}
    taken: set[str] = set()
    for run_id, image in zip(runs["run_id"], runs["image"]):
        if pd.isna(image) or str(image) == "" or str(image) in names:
            continue
        path = _image_path(str(image), images_root)
        name = f"{ZIP_IMAGES_DIR}/{path.name}"
        if name in taken:
            name = f"{ZIP_IMAGES_DIR}/{run_id}-{path.name}"
        names[str(image)] = name
        taken.add(name)
    # 3. the tables, naming images by their place in the zip
    in_zip = [_replace_image(row, names.get(row.image, row.image)) for row in rows]
    run_table = runs.drop(columns=[c for c in ("terms", "params", "axes") if c in runs.columns]).copy()
    run_table["image"] = [names.get(str(image), "") if pd.notna(image) else "" for image in runs["image"]]
    # 4. write to a temporary name, then rename, so a failed export leaves no half zip
    out_path = Path(out_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("best.csv", write_csv(in_zip, experiment))
        archive.writestr("best.json", write_json(in_zip, experiment))
        archive.writestr("runs.csv", run_table.to_csv(index=False))
        for image, name in names.items():
            # PNGs are compressed already; stored, their bytes (metadata chunks included) stay as they were
            archive.writestr(name, _image_path(image, images_root).read_bytes(), compress_type=zipfile.ZIP_STORED)
    _write_atomic(out_path, buffer.getvalue())
    return ZipExport(path=out_path, variants=len(rows), runs=len(runs), images=len(names))


def _replace_image(row: ExportRow, image: str) -> ExportRow:
    return ExportRow(**{**asdict(row), "image": image})


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from error


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value

