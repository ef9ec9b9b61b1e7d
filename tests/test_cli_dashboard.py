"""``promptlab dashboard`` serves the app, and stops when it is told to: no server left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as answer:
            return answer.read() == b"ok"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGTERM and process groups are POSIX")
def test_dashboard_serves_and_sigterm_to_promptlab_stops_the_server(tmp_path: Path) -> None:
    promptlab = shutil.which("promptlab", path=str(Path(sys.executable).parent))
    command = [promptlab] if promptlab else [sys.executable, "-m", "promptlab.cli"]
    port = _free_port()
    env = {**os.environ, "PROMPTLAB_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [*command, "dashboard", "--port", str(port)], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _health(port):
            assert process.poll() is None, "promptlab dashboard exited before serving"
            assert time.monotonic() < deadline, "the dashboard never answered its health check"
            time.sleep(0.3)
        # A service manager stops promptlab with SIGTERM to its own pid.
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        time.sleep(0.5)
        assert not _health(port), "the Streamlit server outlived promptlab dashboard"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
