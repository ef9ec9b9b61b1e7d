"""What goes into the store (``RunRecord``, ``ScoreRecord``, ``NewRun``) and what comes out
(``RunView``, ``ExperimentSummary``, ``Claim``, ``BrokenImage``), and the checks a record passes
before it becomes a row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from promptlab.errors import PromptSyntaxError, StoreError
from promptlab.prompt import Prompt, convert
from promptlab.render.params import SEED_RANGE
from promptlab.store.schema import MAX_STORED_SEED, PARAM_COLUMNS, SCORE_KINDS, Run


@dataclass(frozen=True)
class ScoreRecord:
    """A score to record with a run."""

    kind: str
    scorer: str
    value: float
    text: str
    model: str = ""
    pretrained: str | None = None
    weights_sha256: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """Everything about one cell but its image and scores; ``params`` uses diffusers' names.

    ``params`` holds the generation parameters and whatever else describes the render (model
    family, dtype, device, scheduler class and config, library versions): the names in
    ``PARAM_COLUMNS`` get columns of their own, the rest is kept as JSON.
    """

    experiment_id: int
    variant_key: str
    seed: int
    prompt: Prompt
    model: str
    negative_prompt: str = ""
    task: str = "txt2img"
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    axes: Mapping[str, Any] = field(default_factory=dict)
    intent: str = ""
    render_s: float | None = None
    score_s: float | None = None
    # The compel text as rendered, where the user wrote it (``promptlab render``): kept verbatim,
    # since the prompt model's own text may differ in ways that matter (a BREAK, a weighted comma).
    prompt_text: str | None = None

    @property
    def cell(self) -> str:
        return f"experiment {self.experiment_id}, variant {self.variant_key}, seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape stored in the image's ``promptlab`` chunk."""
        compel, a1111, plain = prompt_texts(self, strict=False)
        return {
            "experiment_id": self.experiment_id,
            "variant_key": self.variant_key,
            "label": self.label,
            "seed": self.seed,
            "subject": self.prompt.subject,
            "prompt": compel,
            "prompt_a1111": a1111,
            "prompt_plain": plain,
            "terms": terms_json(self.prompt),
            "negative_prompt": self.negative_prompt,
            "intent": self.intent or self.prompt.subject,
            "model": self.model,
            "task": self.task,
            "params": dict(self.params),
            "axes": dict(self.axes),
        }


@dataclass(frozen=True)
class NewRun:
    """A rendered cell for ``Store.record_runs``: its record, its image as finished PNG bytes, its scores.

    The bytes are stored as given: ``promptlab.metadata.run_png`` makes them with the A1111
    ``parameters`` and ``promptlab`` chunks a run's image carries.
    """

    record: RunRecord
    image: bytes
    scores: Sequence[ScoreRecord] = ()


class ScoreView(BaseModel):
    """A recorded score."""

    kind: str
    scorer: str
    model: str
    pretrained: str | None
    weights_sha256: str | None
    text: str
    value: float


class RunView(BaseModel):
    """A recorded run as the dashboard and CLI show it; ``model_dump(mode="json")`` is its JSON."""

    id: int
    experiment_id: int
    experiment: str
    variant_key: str
    label: str
    seed: int
    prompt: str
    prompt_a1111: str
    prompt_plain: str
    negative_prompt: str
    subject: str
    intent: str
    model: str
    task: str
    params: dict[str, Any]
    terms: list[dict[str, Any]]
    axes: dict[str, Any]
    status: str
    error: str | None
    image_sha256: str | None
    image_path: Path | None
    render_s: float | None
    score_s: float | None
    created_at: datetime
    scores: list[ScoreView]

    def score(self, kind: str = "intent", scorer: str | None = None) -> float | None:
        """The value of the first score of ``kind`` (from ``scorer`` if given), or None."""
        return next((s.value for s in self.scores if s.kind == kind and scorer in (None, s.scorer)), None)


class ExperimentSummary(BaseModel):
    """An experiment with its run counts, for listings."""

    id: int
    name: str
    source_path: str | None
    subject: str
    intent: str
    created_at: datetime
    runs: int
    ok: int
    failed: int
    models: list[str]
    last_run_at: datetime | None


@dataclass(frozen=True)
class RunToScore:
    """A finished run whose image a scorer has not scored yet: what scoring it needs."""

    run_id: int
    image_path: Path
    intent: str
    prompt_plain: str


@dataclass(frozen=True)
class Claim:
    """What ``Store.claim_cells`` found for each cell (variant key, seed): now the caller's, recorded
    meanwhile (done), or being rendered by another runner (taken)."""

    claimed: tuple[tuple[str, int], ...]
    done: tuple[tuple[str, int], ...]
    taken: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class BrokenImage:
    """A run recorded as ok whose image file is ``missing``, or ``changed`` (its sha256 is not the recorded one)."""

    run_id: int
    variant_key: str
    seed: int
    path: Path
    problem: str


def utc(moment: datetime) -> datetime:
    """The moment in UTC; naive datetimes (SQLite's) are UTC already."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def check_json(value: Any, what: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} cannot be stored as JSON: {exc}; convert the value to a string or number") from exc
    return value


def check_score(score: ScoreRecord, record: RunRecord) -> None:
    check_score_value(score, f"run ({record.cell})")


def check_score_value(score: ScoreRecord, where: str) -> None:
    """StoreError, naming ``where``, for a score of an unknown kind or a value that is no finite number."""
    if score.kind not in SCORE_KINDS:
        raise StoreError(f"{where}: score kind {score.kind!r}: expected one of {', '.join(SCORE_KINDS)}")
    if isinstance(score.value, bool) or not isinstance(score.value, (int, float)) or not math.isfinite(score.value):
        raise StoreError(
            f"{where}: {score.kind} score from {score.scorer!r} = {score.value!r}: expected a finite number; "
            "record a scorer failure with record_failure"
        )


def prompt_texts(record: RunRecord, *, strict: bool) -> tuple[str, str, str]:
    """The prompt in compel, A1111 and plain syntax; a prompt compel cannot hold keeps its plain text when not strict."""
    prompt = record.prompt
    try:
        if record.prompt_text is not None:
            text = record.prompt_text
            return text, convert(text, "compel", "a1111"), convert(text, "compel", "plain")
        return prompt.to_compel(), prompt.to_a1111(), prompt.to_plain()
    except PromptSyntaxError:
        if strict:
            raise
        plain = prompt.to_plain()
        return record.prompt_text or plain, plain, plain


def terms_json(prompt: Prompt) -> list[dict[str, Any]]:
    terms = []
    for t in prompt.terms:
        term: dict[str, Any] = {"text": t.text, "weight": t.weight, "category": t.category}
        if t.fragments:
            term["fragments"] = [list(fragment) for fragment in t.fragments]
        terms.append(term)
    return terms


def run_row(record: RunRecord, status: str, error: str | None, image_sha256: str | None) -> Run:
    # -1 is an imported image's unknown seed (A1111's "random"); every other seed is a rendered one's.
    if isinstance(record.seed, bool) or not isinstance(record.seed, int) or not -1 <= record.seed <= MAX_STORED_SEED:
        raise StoreError(
            f"run ({record.cell}): seed {record.seed!r} cannot be stored: a seed must be {SEED_RANGE}, or -1 when unknown"
        )
    # A failure may be the prompt's own fault; it is still recorded, with the text it has.
    compel, a1111, plain = prompt_texts(record, strict=status == "ok")
    params = dict(record.params)
    embedding_rows(0, params)  # checked before any file or row is written
    lora_rows(0, params, record.cell)
    columns = {name: params.pop(name, None) for name in PARAM_COLUMNS}
    return Run(
        experiment_id=record.experiment_id,
        variant_key=record.variant_key,
        label=record.label,
        seed=record.seed,
        prompt=compel,
        prompt_a1111=a1111,
        prompt_plain=plain,
        subject=record.prompt.subject,
        intent=record.intent or record.prompt.subject,
        negative_prompt=record.negative_prompt,
        model=record.model,
        task=record.task,
        params=check_json(params, f"run ({record.cell}) params"),
        axes=check_json(dict(record.axes), f"run ({record.cell}) axes"),
        terms=terms_json(record.prompt),
        status=status,
        error=error,
        render_s=record.render_s,
        score_s=record.score_s,
        image_sha256=image_sha256,
        **columns,
    )



def embedding_rows(run_id: int, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``run_embedding`` rows of a run whose params list its embeddings (``name``, ``token``, ``sha256`` each)."""
    rows = []
    for position, embedding in enumerate(params.get("embeddings") or ()):
        if not isinstance(embedding, Mapping) or not all(isinstance(embedding.get(k), str) for k in ("name", "token", "sha256")):
            raise StoreError(
                f"run {run_id}: embedding {embedding!r} must be a mapping with text name, token and sha256 "
                "(what render.embeddings.Embedding.to_dict gives)"
            )
        rows.append(
            {"run_id": run_id, "position": position, "name": embedding["name"], "token": embedding["token"], "sha256": embedding["sha256"]}
        )
    return rows


def lora_rows(run_id: int, params: Mapping[str, Any], cell: str = "") -> list[dict[str, Any]]:
    """The ``run_lora`` rows of a run whose params list its LoRAs (``name``, ``strength`` and ``sha256`` each, the hash
    None where unknown), in the order they were applied."""
    rows = []
    for position, lora in enumerate(params.get("loras") or ()):
        ok = isinstance(lora, Mapping) and isinstance(lora.get("name"), str) and isinstance(lora.get("sha256"), (str, type(None)))
        strength = lora.get("strength") if isinstance(lora, Mapping) else None
        if not ok or isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
            raise StoreError(
                f"run ({cell or run_id}): LoRA {lora!r} must be a mapping with a text name, a number strength and a "
                "sha256 (text, or None where unknown): what render.adapters.LoraSpec.to_dict gives"
            )
        rows.append({"run_id": run_id, "position": position, "name": lora["name"], "sha256": lora["sha256"], "strength": float(strength)})
    return rows
