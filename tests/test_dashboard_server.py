"""The dashboard as users start it: ``promptlab dashboard``'s command (``streamlit run app.py``) on a
free port against a store holding a micro experiment, every page visited, and the server's own
output read for what a page's user never sees: a traceback, an error, pyarrow refusing a frame.

Pages are visited in Debian's Chromium through Playwright where both are installed (the scripts
run only for a browser's session); elsewhere AppTest runs each page's code and the server is
checked for starting up and answering.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from promptlab.dashboard import APP_PATH, dashboard_command

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
TIMEOUT_S = 90

# Text axes with an absent level, a number axis next to them (levels of mixed types in the analysis
# tables), two seeds: 16 images of 64 px, seconds on a CPU.
EXPERIMENT = """
name = "served"
model = "micro"
seeds = 2
scorer = "micro-clip"
batch_size = 16

[params]
num_inference_steps = 4
width = 64
height = 64

[prompt]
subject = "a circle on a black background"
intent = "a red circle on a black background"

[axes]
color = ["red", "blue"]
artist = ["", "Greg Rutkowski"]
guidance_scale = [5.0, 7.5]
"""

#: Every page's URL path and the heading it shows; "" is the default page, "home" its name.
PAGES = {"": "promptlab", "home": "promptlab", "build": "Build a prompt", "run": "Run an experiment",
         "search": "Search for a better prompt", "compare": "Compare", "judge": "Judge", "insights": "Insights",
         "history": "History", "export": "Export"}  # fmt: skip
#: What may not appear in the server's output.
SERVER_TROUBLE = re.compile(r"Traceback|Error|Exception|ArrowInvalid|Serialization of dataframe")


def _browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PROMPTLAB_HOME holding the micro experiment above, every cell rendered and scored."""
    from promptlab.experiment import parse_experiment
    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    home = tmp_path_factory.mktemp("served-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMPTLAB_HOME", str(home))
        patch.delenv("PROMPTLAB_DB", raising=False)
        with open_store() as store:
            summary = run_experiment(parse_experiment(EXPERIMENT, home / "served.toml"), store)
    assert summary.rendered == 16, summary.to_dict()
    return home


@dataclass
class Server:
    url: str
    log: Path


@pytest.fixture
def server(served_home: Path, tmp_path: Path) -> Iterator[Server]:
    """``promptlab dashboard``'s command on a free port, its output in a file read after it stops."""
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "PROMPTLAB_HOME": str(served_home)}
    env.pop("PROMPTLAB_DB", None)
    with log.open("wb") as out:
        process = subprocess.Popen(dashboard_command(port), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    assert answer.read() == b"ok"
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.5)
        yield Server(url, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _no_trouble_in(log: Path) -> None:
    text = log.read_text(errors="replace")
    trouble = [line for line in text.splitlines() if SERVER_TROUBLE.search(line)]
    assert not trouble, f"the server's output reports trouble:\n{text}"


@pytest.mark.slow
def test_every_page_renders_without_an_error_in_the_server_log(server: Server, served_home: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    if _browser_available():
        _visit_in_a_browser(server.url)
    else:
        # No browser: the server only started and answers; AppTest runs each page's code instead.
        for path in PAGES:
            with urllib.request.urlopen(f"{server.url}/{path}", timeout=10) as answer:
                assert answer.status == 200
        monkeypatch.setenv("PROMPTLAB_HOME", str(served_home))
        _run_pages_in_apptest()
    time.sleep(1)  # let the server write what the last page's run logged
    _no_trouble_in(server.log)


def _visit_in_a_browser(url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, heading in PAGES.items():
                page.goto(f"{url}/{path}")
                expect(page.get_by_role("heading", name=heading).first).to_be_visible(timeout=TIMEOUT_S * 1000)
                # Streamlit's status widget shows while the page's script runs.
                expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT_S * 1000)
                body = page.inner_text("body")
                assert "Page not found" not in body, f"/{path}: {body[:500]}"
                assert "Deploy" not in body, f"/{path} shows Streamlit's Deploy button"
                expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
                expect(page.get_by_test_id("stException")).to_have_count(0)
                expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
                if path in ACTIONS:
                    ACTIONS[path](page)
                    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT_S * 1000)
                    expect(page.get_by_test_id("stException")).to_have_count(0)
                    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
        finally:
            browser.close()


def _open_a_run(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.get_by_test_id("stSelectbox").filter(has_text="Open run").click()
    page.get_by_role("option").first.click()
    expect(page.get_by_role("heading", name=re.compile(r"^Run #\d+"))).to_be_visible(timeout=TIMEOUT_S * 1000)


def _side_by_side(page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import expect

    for run in ("#1 ", "#2 "):
        # Streamlit's multiselect lists its options once something is typed into it.
        page.get_by_test_id("stMultiSelect").filter(has_text="Pick 2 to 4 runs").locator("input").click()
        page.keyboard.type(run)
        option = page.get_by_role("option", name=re.compile(f"^{run}")).first
        # Under load the list can redraw under a click for long (CI: "element was detached from the DOM"
        # for 30 s): a few shorter tries.
        for attempt in range(3):
            try:
                option.click(timeout=TIMEOUT_S * 1000 // 3)
                break
            except PlaywrightTimeoutError:
                if attempt == 2:
                    raise
        page.keyboard.press("Escape")
    expect(page.get_by_text("Highlighted: the terms and parameters that differ.")).to_be_visible(timeout=TIMEOUT_S * 1000)


def _score_by_prompt(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_test_id("stRadio").first.get_by_text("prompt", exact=True).click()


#: What a user does on a page after it shows, so the widgets' code runs too.
ACTIONS = {"history": _open_a_run, "compare": _side_by_side, "insights": _score_by_prompt}


def _run_pages_in_apptest() -> None:
    from streamlit.testing.v1 import AppTest

    for name in ("home", "build", "run", "search", "compare", "judge", "insights", "history", "export"):
        at = AppTest.from_string(f"from promptlab.dashboard import {name}\n{name}.page()", default_timeout=TIMEOUT_S)
        at.run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not at.error, (name, [e.value for e in at.error])
