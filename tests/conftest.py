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
