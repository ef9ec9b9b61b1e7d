"""Shared fixtures: every test runs with its own PROMPTLAB_HOME, so no test touches the user's files."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def _served_dashboard(home: Path, log: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The dashboard (``promptlab dashboard``'s command) on a free port over ``home``, its output in ``log``;
    its URL once it answers, and its process; stopped afterwards."""
    from promptlab.dashboard import APP_PATH, dashboard_command

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("wb") as out:
        process = subprocess.Popen(dashboard_command(port), cwd=APP_PATH.parent, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PROMPTLAB_HOME": str(home), **env})  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(f"streamlit did not start: {log.read_text()}") from None
                    time.sleep(0.5)
            yield url, process
        finally:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def serve_dashboard() -> Callable[..., Any]:
    """``serve_dashboard(home, log, **env)``: a context manager serving the dashboard (``_served_dashboard``)."""
    return _served_dashboard
