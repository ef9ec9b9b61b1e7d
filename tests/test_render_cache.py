"""Loaded models live in a bounded cache: a sweep over many checkpoints holds only the last few."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from promptlab import model_cache
from promptlab.errors import ModelError
from promptlab.experiment import parse_experiment
from promptlab.model_cache import DEFAULT_MODEL_CACHE_SIZE, MODEL_CACHE_ENV, ModelCache, model_cache_size, set_model_cache_size
from promptlab.render import models
from promptlab.runner import RunnerProgress, run_experiment
from promptlab.scoring import clear_scorers, load_scorer, loaded_scorers
from promptlab.store import open_store

SWEEP = """
name = "model-sweep"
model = "tiny-sd"
seeds = [1]
scorer = "tiny-clip"

[params]
num_inference_steps = 1
width = 64
height = 64

[prompt]
subject = "a red circle"

[axes]
model = ["tiny-sd", "tiny-sdxl", "micro"]
"""


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread: None) -> None:
    """Render tests run torch on one thread (see conftest)."""


@pytest.fixture(autouse=True)
def _empty_caches() -> Any:
    models.clear_cache()
    clear_scorers()
    yield
    set_model_cache_size(None)


@pytest.mark.slow
@pytest.mark.parametrize("bound", [1, 2])
def test_a_model_axis_sweep_holds_at_most_the_bound(
    bound: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_CACHE_ENV, str(bound))
    loaded: list[weakref.ref[Any]] = []
    load_base = models._load_base

    def watched(*args: Any) -> Any:
        base = load_base(*args)
        loaded.append(weakref.ref(base.pipe))
        return base

    monkeypatch.setattr(models, "_load_base", watched)
    live: list[int] = []

    def count(_: RunnerProgress) -> None:
        gc.collect()
        live.append(sum(ref() is not None for ref in loaded))

    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    with open_store() as store:
        summary = run_experiment(parse_experiment(SWEEP, path), store, progress=count)
    assert summary.ok and summary.rendered == 3 and len(live) >= 3
    # Checked before any cell (last to first), then rendered: only the models past the bound load twice.
    assert len(loaded) == 3 + (3 - bound)
    assert max(live) <= bound, live
    gc.collect()
    assert sum(ref() is not None for ref in loaded) == bound
    assert len(models.loaded_models()) == bound


def test_the_default_bound_and_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_CACHE_ENV, raising=False)
    assert model_cache_size() == DEFAULT_MODEL_CACHE_SIZE == 2
    monkeypatch.setenv(MODEL_CACHE_ENV, "3")
    assert model_cache_size() == 3
    set_model_cache_size(1)
    assert model_cache_size() == 1
    set_model_cache_size(None)
    assert model_cache_size() == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_bound_is_named(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_CACHE_ENV, value)
    with pytest.raises(ModelError, match=f"{MODEL_CACHE_ENV} '{value}': expected a whole number of models, at least 1"):
        model_cache_size()
    monkeypatch.delenv(MODEL_CACHE_ENV)
    with pytest.raises(ModelError, match="model cache size 0"):
        set_model_cache_size(0)


def test_setting_a_smaller_bound_evicts_at_once() -> None:
    models.load_model("tiny-sd")
    models.load_model("tiny-sdxl")
    assert len(models.loaded_models()) == 2
    set_model_cache_size(1)
    assert [key[0] for key in models.loaded_models()] == [str(models.tiny_model_folder("tiny-sdxl"))]


def test_an_evicted_model_loads_again_and_renders_the_same() -> None:
    from promptlab.render import RenderItem, RenderParams, render

    set_model_cache_size(1)
    params = RenderParams(num_inference_steps=1, width=64, height=64)
    first = render([RenderItem("a red circle", 3)], params, "tiny-sd").images[0].image
    models.load_model("tiny-sdxl")
    assert len(models.loaded_models()) == 1
    again = render([RenderItem("a red circle", 3)], params, "tiny-sd").images[0].image
    assert first.tobytes() == again.tobytes()


def test_scorers_are_bounded_too() -> None:
    set_model_cache_size(1)
    load_scorer("tiny-clip", device="cpu")
    load_scorer("micro-clip", device="cpu")
    assert [spec.name for spec, _ in loaded_scorers()] == ["micro-clip"]


def test_the_cache_evicts_least_recently_used_and_tells_the_hook() -> None:
    evicted: list[str] = []
    cache: ModelCache[str, object] = ModelCache("test", size=2, on_evict=evicted.append)
    for key in ("a", "b", "a", "c"):
        cache.get_or_load(key, object)
    assert list(cache.keys()) == ["a", "c"] and evicted == ["b"]
    assert cache.get("b") is None
    cache.clear()
    assert evicted == ["b", "a", "c"] and len(cache) == 0


def test_every_cache_follows_set_model_cache_size() -> None:
    cache: ModelCache[int, int] = ModelCache("test")
    for key in range(3):
        cache.get_or_load(key, lambda: 0)
    assert len(cache) == model_cache.model_cache_size()
    set_model_cache_size(1)
    assert list(cache.keys()) == [2]
