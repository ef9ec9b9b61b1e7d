"""Shared fixtures: every test runs with its own PROMPTLAB_HOME, so no test touches the user's files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def promptlab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "promptlab-home"
    monkeypatch.setenv("PROMPTLAB_HOME", str(home))
    monkeypatch.delenv("PROMPTLAB_DB", raising=False)
    monkeypatch.delenv("PROMPTLAB_VOCAB", raising=False)
    return home


@pytest.fixture(autouse=True)
def promptlab_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One cache per test session: tiny models are built once, not per test."""
    cache = tmp_path_factory.getbasetemp() / "promptlab-cache"
    monkeypatch.setenv("PROMPTLAB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Profiled: on a shared 2-core machine two intra-op threads contend and run ~2x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
