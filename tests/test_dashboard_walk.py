"""The whole path a new user walks, in Debian's Chromium through Playwright, on a fresh store: Build's
"Set up a comparison" (2 colours x no artist / an artist x 2 seeds on micro) -> Save and run -> Compare
-> Insights (the effects) -> Export. Screenshots of each step go to test-artifacts/walk-*.png."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)"),
]


@pytest.fixture
def served(promptlab_home: Path, promptlab_cache: Path, serve_dashboard: Any) -> Iterator[tuple[str, subprocess.Popen]]:
    """The dashboard on a free port, over an empty PROMPTLAB_HOME; its log is checked after the walk."""
    log = promptlab_home.parent / "streamlit.log"
    with serve_dashboard(promptlab_home, log, PROMPTLAB_CACHE=str(promptlab_cache)) as served:
        yield served
    assert "Traceback" not in log.read_text(), log.read_text()


def test_set_up_run_compare_insights_export(served: tuple[str, subprocess.Popen]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _ = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def type_into(label: str, value: str) -> None:
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Enter")
            page.wait_for_timeout(700)

        def choose(label: str, *options: str) -> None:
            for option in options:
                page.get_by_label(label, exact=True).click()
                page.keyboard.type(option)
                page.get_by_role("option").filter(has_text=option).first.click()
                page.keyboard.press("Escape")
                page.wait_for_timeout(700)

        # 1. Set up: subject, intent, two vocabulary axes, 4 steps, 2 seeds.
        page.goto(f"{url}/build")
        expect(page.get_by_role("heading", name="Build a prompt")).to_be_visible(timeout=60_000)
        # The first run loads the tokenizer; a rerun that starts meanwhile imports transformers in a
        # second thread, which transformers' lazy module does not survive (see the report).
        expect(page.get_by_test_id("stMetricLabel").filter(has_text="Tokens")).to_be_visible(timeout=60_000)
        type_into("Subject", "a circle on a black background")
        type_into("Intent: what every image should show (scores are measured against it)", "a red circle on a black background")
        type_into("Vocabulary axes", "2")
        choose("Axis 1: category", "color")
        choose("Axis 1: levels", "red", "blue")
        choose("Axis 2: category", "artist")
        choose("Axis 2: levels", "(no term)", "Greg Rutkowski")
        type_into("Steps", "4")
        type_into("Seeds: a count N (seeds 1..N) or a list", "2")
        type_into("Comparison name (its experiment file and store name)", "walk")
        expect(page.get_by_test_id("stMetricValue").filter(has_text="8")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("no past runs of this model: no estimate (micro 64x64)")).to_be_visible()
        page.get_by_text("Estimated time:").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "walk-1-set-up.png"), full_page=True)

        # 2. Run: progress, thumbnails, then links to Compare and Insights.
        page.get_by_role("button", name="Save and run").click()
        expect(page.get_by_text("8 rendered, 0 failed")).to_be_visible(timeout=180_000)
        expect(page.locator("[data-testid='stImage'] img")).to_have_count(8, timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "walk-2-run.png"), full_page=True)

        # 3. Compare, opened from the run's link, on that experiment.
        page.get_by_role("link", name="Compare walk").click()
        expect(page.get_by_role("heading", name="Compare")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("combobox", name="Experiment").first).to_have_value("walk")
        page.wait_for_function(
            """() => { const imgs = [...document.querySelectorAll("[data-testid='stImage'] img")];
                     return imgs.length >= 8 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
            timeout=60_000,
        )
        page.screenshot(path=str(ARTIFACTS / "walk-3-compare.png"), full_page=True)

        # 4. Insights: both axes' effects, each with its reference.
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Insights").click()
        expect(page.get_by_role("heading", name="Term and parameter effects")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("combobox", name="Experiment").first).to_have_value("walk")
        expect(page.locator("[data-testid='stVegaLiteChart']").first.locator("canvas, svg").first).to_be_visible(timeout=60_000)
        expect(page.get_by_text("blue vs red").first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Greg Rutkowski").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "walk-4-insights.png"), full_page=True)

        # 5. Export: the experiment's files to download.
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Export").click()
        expect(page.get_by_role("heading", name="Export")).to_be_visible(timeout=60_000)
        expect(page.get_by_test_id("stDownloadButton").first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "walk-5-export.png"), full_page=True)
        browser.close()
    assert not [e for e in errors if "Dropping sort property" in e], errors
