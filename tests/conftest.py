"""Shared fixtures: every test runs with its own PROMPTLAB_HOME, so no test touches the user's files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("PROMPTLAB_TEST_POSTGRES_URL")
NO_POSTGRES = "PROMPTLAB_TEST_POSTGRES_URL is not set (.ci/postgres.sh starts a throwaway server and sets it)"


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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the test server, dropped afterwards, so runs never see each other."""
    from sqlalchemy import create_engine, text

    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    schema = f"promptlab_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
