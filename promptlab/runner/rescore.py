"""Scoring recorded images again with another scorer, so every image has every scorer's score.

    with open_store() as store:
        added = score_runs(store, "squirrel-styles", load_scorer("aesthetic"))

An experiment file's ``scorers`` score each new image as it is rendered; a scorer added later
(to the file, or by ``promptlab score --experiment NAME --scorer NAME``) scores the images
already recorded: each finished run with an image gets the scorer's intent and own-prompt
scores, written a batch at a time (``Store.add_scores``), so a stop loses at most one batch and
a second call scores only what is still missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promptlab.store import ScoreRecord, Store


@dataclass(frozen=True)
class Rescored:
    """What ``score_runs`` did: runs scored now, of those missing the scorer's scores, in seconds."""

    experiment: str
    scorer: str
    scored: int
    missing: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "scorer": self.scorer, "scored": self.scored, "missing": self.missing, "seconds": self.seconds}


def score_record(kind: str, score: Any) -> ScoreRecord:
    """The store's record of a scorer's ``Score`` as the ``kind`` (intent or prompt) score."""
    return ScoreRecord(
        kind=kind,
        scorer=score.scorer,
        value=float(score.value),
        text=score.text,
        model=score.model,
        pretrained=score.pretrained,
        weights_sha256=getattr(score, "weights_sha256", None),
    )


def score_runs(
    store: Store,
    experiment: str | int,
    scorer: Any,
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Rescored:
    """Score every finished run of ``experiment`` that ``scorer`` (loaded) has not scored yet.

    Each image against its intent and its own plain prompt, as the runner does; ``progress`` is
    called with (scored, missing) after each batch. ScoringError names an image file that cannot
    be read (lost or damaged: running the experiment again renders it anew).
    """
    from promptlab.scoring import open_image

    started = time.perf_counter()
    name = scorer.spec.name
    todo = store.runs_to_score(experiment, name)
    size = batch_size or scorer.batch_size
    scored = 0
    for start in range(0, len(todo), size):
        chunk = todo[start : start + size]
        images = [open_image(run.image_path) for run in chunk]
        pairs = scorer.score_pairs(images, [run.intent for run in chunk], [run.prompt_plain for run in chunk])
        store.add_scores(
            {run.run_id: [score_record("intent", pair.intent), score_record("prompt", pair.prompt)] for run, pair in zip(chunk, pairs)}
        )
        scored += len(chunk)
        if progress is not None:
            progress(scored, len(todo))
    label = experiment if isinstance(experiment, str) else store.get_experiment(experiment).name
    return Rescored(label, name, scored, len(todo), time.perf_counter() - started)
