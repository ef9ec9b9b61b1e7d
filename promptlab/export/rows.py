"""The ranked table every export format writes: one ``ExportRow`` per variant, best first.

    rows = export_rows(store.runs_frame("squirrel-styles"), top=5)
    rows[0].prompt, rows[0].prompt_a1111     # the best variant's prompt in both syntaxes

The frame is ``promptlab.analysis``'s runs frame; its prompts are in compel syntax and are
converted with ``promptlab.prompt.convert`` for the A1111 columns. Variants are ranked by mean
score (``analysis.best_prompts``); a variant's prompt with no A1111 form raises ``ExportError``
naming it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd

from promptlab.analysis import BestPrompt, best_prompts, check_frame
from promptlab.analysis.frame import jsonable
from promptlab.errors import ExportError, PromptSyntaxError
from promptlab.prompt import convert
from promptlab.prompt.a1111 import lora_tag


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
        """JSON-ready: NaN becomes null (``Analysis.to_dict``'s rule)."""
        return jsonable(asdict(self))


# The table's columns are the row's fields, in order.
TABLE_COLUMNS: tuple[str, ...] = tuple(column.name for column in fields(ExportRow))


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
    subjects, tags = _subjects(frame), _lora_tags(frame)
    return [_export_row(best, subjects, tags.get(best.variant_key, [])) for best in best_prompts(frame, count)]


def _subjects(frame: pd.DataFrame) -> dict[tuple[str, str | None], str]:
    """The subject of each variant's first run with each image, and (image None) of its first run, in one pass."""
    images = frame["image"].astype(str)
    by_image = frame.assign(image=images).drop_duplicates(["variant_key", "image"])
    first = frame.drop_duplicates("variant_key")
    return {
        **{(key, None): str(subject) for key, subject in zip(first["variant_key"], first["subject"])},
        **{(key, image): str(subject) for key, image, subject in zip(by_image["variant_key"], by_image["image"], by_image["subject"])},
    }


def _export_row(best: BestPrompt, subjects: dict[tuple[str, str | None], str], lora_tags: list[str]) -> ExportRow:
    # the subject of the run that made the best image, else of the variant's first run
    subject = subjects.get((best.variant_key, best.image), subjects[(best.variant_key, None)])
    return ExportRow(
        rank=best.rank,
        variant_key=best.variant_key,
        label=best.label,
        subject=subject,
        prompt=best.prompt,
        # A variant's LoRAs go with its A1111 prompt as A1111 takes them: <lora:name:w> tags after it.
        prompt_a1111=" ".join(part for part in (_to_a1111(best.prompt, "prompt", best), *lora_tags) if part),
        negative_prompt=best.negative_prompt,
        negative_prompt_a1111=_to_a1111(best.negative_prompt, "negative_prompt", best),
        best_score=best.best_score,
        mean=best.mean,
        ci_low=best.ci_low,
        ci_high=best.ci_high,
        n=best.n,
        image=best.image,
    )


def _lora_tags(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Each variant's ``<lora:name:w>`` tags, from its first run (every run of a variant applies the same LoRAs)."""
    if "params" not in frame.columns:
        return {}  # a frame made without the runs' params (by hand): no LoRAs to tell
    first = frame.drop_duplicates("variant_key")
    tags: dict[str, list[str]] = {}
    for key, params in zip(first["variant_key"], first["params"]):
        loras = params.get("loras") if isinstance(params, dict) else None
        tags[key] = [
            lora_tag(lora["name"], float(lora["strength"]))
            for lora in loras or ()
            if isinstance(lora, dict) and isinstance(lora.get("name"), str) and isinstance(lora.get("strength"), (int, float))
        ]
    return tags


def _to_a1111(text: str, what: str, best: BestPrompt) -> str:
    if not text.strip():
        return ""
    try:
        return convert(text, "compel", "a1111")
    except PromptSyntaxError as error:
        raise ExportError(
            f"variant {best.label!r}: its {what} {text!r} cannot be written in A1111 syntax: {error}"
        ) from error
