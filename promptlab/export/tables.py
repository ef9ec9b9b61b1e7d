"""The ranked table as JSON, CSV, a Markdown table, and one prompt per line.

JSON writes NaN as null and CSV as an empty field; both keep a prompt's line breaks. The
Markdown table shows numbers to 3 decimals, prompts and paths as code spans, ``|`` escaped, and
``parse_markdown_table`` reads it back. Markdown and the one-prompt-per-line lists cannot hold
a line break, so a prompt with one raises ``ExportError`` (JSON and CSV keep it).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from promptlab.errors import ExportError
from promptlab.export.rows import TABLE_COLUMNS, ExportRow

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


def write_json(rows: Sequence[ExportRow], experiment: str) -> str:
    """``{"experiment": ..., "prompts": [row, ...]}``, NaN as null."""
    data = {"experiment": experiment, "prompts": [row.to_dict() for row in rows]}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_csv(rows: Sequence[ExportRow], experiment: str) -> str:
    """One row per variant with ``TABLE_COLUMNS``; NaN as an empty field (``to_dict``'s None, which csv writes as "")."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS)
    writer.writeheader()
    writer.writerows(row.to_dict() for row in rows)
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


def write_compel_list(rows: Sequence[ExportRow], experiment: str) -> str:
    """One prompt per line, compel syntax, best first."""
    return "".join(_one_line(row.prompt, "prompt", row) + "\n" for row in rows)


def write_a1111_list(rows: Sequence[ExportRow], experiment: str) -> str:
    """One prompt per line, A1111 syntax, best first."""
    return "".join(_one_line(row.prompt_a1111, "prompt_a1111", row) + "\n" for row in rows)


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
