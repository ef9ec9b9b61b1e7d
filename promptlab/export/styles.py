"""The ranked table as style files: A1111's ``styles.csv`` and a Fooocus style file.

The choices, and why: a style's prompt is ``{prompt}, term, term``: the variant's terms in A1111
syntax without its subject, so the style applies to whatever the user types (both tools put the
typed prompt where ``STYLE_PLACEHOLDER`` stands). The style's negative prompt is the variant's,
in A1111 syntax, which both tools add to the user's. Style names are ``<experiment> #<rank>
<label>``, unique because the rank is. ``styles.csv`` starts with a UTF-8 BOM and has exactly
``name,prompt,negative_prompt``, as A1111 writes and reads it (``encoding="utf-8-sig"``,
``csv.DictReader``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from promptlab.errors import ExportError, PromptSyntaxError
from promptlab.export.rows import ExportRow
from promptlab.prompt import STYLE_PLACEHOLDER, Prompt, parse_compel
from promptlab.prompt.a1111 import lora_tags

A1111_STYLE_COLUMNS = ("name", "prompt", "negative_prompt")


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


def style_template(row: ExportRow) -> str:
    """The variant as a style prompt: ``{prompt}, `` then its terms in A1111 syntax, its subject left out."""
    terms = _terms_without_subject(row)
    rendered = Prompt("", terms).to_a1111()
    style = f"{STYLE_PLACEHOLDER}, {rendered}" if rendered else STYLE_PLACEHOLDER
    # The variant's LoRAs, as the tags its A1111 prompt ends with: a style applies them as A1111 reads them.
    tags = [tag.tag for tag in lora_tags(row.prompt_a1111)[1]]
    return " ".join([style, *tags])


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
        f"so the style cannot put {STYLE_PLACEHOLDER} in the subject's place"
    )


def _style(row: ExportRow, experiment: str) -> dict[str, str]:
    name = f"{experiment} #{row.rank} {row.label}".strip()
    return {"name": name, "prompt": style_template(row), "negative_prompt": row.negative_prompt_a1111}
