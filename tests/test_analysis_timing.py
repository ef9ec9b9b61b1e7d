"""``analysis.timing``: how long cells will take, from a real store's past runs of the same model and size."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from promptlab.analysis.timing import estimate_time, format_estimate
from promptlab.experiment import cells, draft_comparison, parse_experiment, to_toml
from promptlab.prompt import Prompt, Term
from promptlab.runner import run_record
from promptlab.store import ScoreRecord, open_store
from promptlab.vocab import load_vocab

VOCAB = load_vocab(use_env=False)


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(buffer, format="PNG")
    return buffer.getvalue()


def spec(name: str, **param_axes: list[str]):  # type: ignore[no-untyped-def]
    raw = draft_comparison(
        Prompt("a circle", ()), name=name, vocab=VOCAB, seeds=2,
        axes={"color": [Term("red", 1.0, "color"), Term("blue", 1.0, "color")]}, param_axes=param_axes,
    )  # fmt: skip
    return parse_experiment(to_toml(raw), Path(f"{name}.toml"), vocab=VOCAB)


def test_no_past_runs_gives_no_estimate_and_says_of_which_model(promptlab_home: Path) -> None:
    with open_store() as store:
        estimate = estimate_time(cells(spec("new")), store)
    assert (estimate.cells, estimate.seconds) == (4, None)
    assert format_estimate(estimate) == "no past runs of this model: no estimate (micro 64x64)"


def test_the_estimate_is_the_median_past_time_per_model_and_size(promptlab_home: Path) -> None:
    past = spec("past")
    with open_store() as store:
        experiment = store.get_or_create_experiment(past.name, past.raw, past.path, subject=past.subject)
        assert experiment.id is not None
        # Render plus score seconds 1.5, 2.5 and 100 (a first load): the median, 2.5, counts for every cell.
        for shade, (cell, render_s) in enumerate(zip(cells(past), [1.0, 2.0, 99.0])):
            record = run_record(experiment.id, cell.variant, cell.seed, render_s=render_s, score_s=0.5)
            store.record_run(record, png(shade), [ScoreRecord("intent", "micro-clip", 0.3, "a circle")])
        failed = run_record(experiment.id, cells(past)[3].variant, cells(past)[3].seed, render_s=500.0)
        store.record_failure(failed, "out of memory")
        estimate = estimate_time(cells(spec("next")), store)
        assert estimate.seconds == pytest.approx(4 * 2.5)
        assert estimate.groups[0].past_runs == 3
        assert format_estimate(estimate) == "about 10 s (4 cells; micro 64x64: 2.50 s a cell from 3 past runs)"
        # Another size of the same model has no past runs.
        wider = estimate_time(cells(spec("wider", width=["128"])), store)
        assert wider.seconds is None and [(g.width, g.height) for g in wider.missing] == [(128, 64)]
