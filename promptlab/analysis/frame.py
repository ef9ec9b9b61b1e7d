"""The runs frame analysis reads: its columns, axis levels, and small conversions shared by the analysis modules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from promptlab.errors import PromptlabError

#: The columns every runs frame has (``Store.runs_frame`` makes them), besides one per axis.
REQUIRED_COLUMNS = (
    "run_id",
    "variant_key",
    "label",
    "seed",
    "subject",
    "score",
    "image",
    "prompt",
    "negative_prompt",
)

#: An axis's column is this prefix and its name: ``axis:style``.
AXIS_PREFIX = "axis:"

#: A text axis's level when the variant has no term of it.
ABSENT = ""

#: The confidence level of each variant's interval over seeds.
VARIANT_LEVEL = 0.95

# Below this many standard deviations of a score scale, a difference or an SE is rounding error.
RELATIVE_TOLERANCE = 1e-9

#: An axis level as the analysis reads it: a term's text ("" when absent), or a parameter's value.
Level = str | float | int | bool


def check_frame(frame: pd.DataFrame) -> None:
    """Raise ``PromptlabError`` naming the required columns the runs frame lacks."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PromptlabError(
            f"runs frame is missing column(s) {', '.join(missing)}; analysis needs "
            f"{', '.join(REQUIRED_COLUMNS)} plus one '{AXIS_PREFIX}<name>' column per axis "
            "(Store.runs_frame builds it)"
        )


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's ``axis:<name>`` columns, in frame order."""
    return [c for c in frame.columns if isinstance(c, str) and c.startswith(AXIS_PREFIX)]


def all_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Every run, failed ones too (they still show the design), text axes' missing values read as ""."""
    check_frame(frame)
    try:
        score = pd.to_numeric(frame["score"], errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise PromptlabError(f"runs frame column 'score' must hold numbers (NaN for failed runs): {exc}") from exc
    if np.isinf(score).any():
        raise PromptlabError("runs frame column 'score' holds an infinite value; scores must be finite or NaN")
    runs = frame.assign(score=score).reset_index(drop=True)
    for column in axis_columns(runs):
        runs[column] = axis_values(runs[column])
    return runs


def axis_values(values: pd.Series) -> pd.Series:
    """An axis column as analysis reads it: a text axis's missing value is the term absent (""), numbers as they are."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    return values.astype(object).where(values.notna(), ABSENT)


def first_error(runs: pd.DataFrame, limit: int) -> str | None:
    """The first line, cut to ``limit`` characters, of the first error among ``runs``; None where no run has one."""
    if "error" not in runs.columns or not runs["error"].notna().any():
        return None
    return str(runs["error"].dropna().iloc[0]).splitlines()[0][:limit]


def is_nested(design: pd.DataFrame, other: str, column: str) -> bool:
    """Whether ``other`` applies (is not NaN) only at some levels of ``column``, decided by the level alone."""
    applies = design[design[column].notna()]
    missing = applies[other].isna()
    if not missing.any() or missing.all():
        return False
    return bool((missing.groupby(applies[column]).nunique() == 1).all())


def axis_levels(values: pd.Series) -> list[Level]:
    """An axis's levels in order of first appearance, as Python scalars."""
    return [python_value(v) for v in pd.unique(values.dropna())]


def level_name(axis: str, level: Level) -> str:
    if isinstance(level, str):
        return level if level != ABSENT else f"no {axis}"
    return f"{axis}={level}"


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise PromptlabError(f"alpha must lie strictly between 0 and 1, got {alpha}")


def python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    value = python_value(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
