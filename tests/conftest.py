"""Shared fixtures: every test runs with its own PROMPTLAB_HOME, so no test touches the user's files."""

from __future__ import annotations

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
