"""The real dashboard in a real browser: ``streamlit run app.py`` against a filled store, driven
by Playwright with Debian's Chromium; screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest

from test_dashboard import filled, filled_home  # noqa: F401 - the shared filled-store fixtures

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dashboard_url(filled: Path, serve_dashboard: Any):  # type: ignore[no-untyped-def]
    with serve_dashboard(filled, filled.parent / "streamlit.log") as (url, _):
        yield url


@pytest.mark.slow
def test_compare_insights_and_export_in_a_browser(dashboard_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard_url}/compare")
        expect(page.get_by_role("heading", name="Compare")).to_be_visible(timeout=60_000)
        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="dash").click()
        images = page.locator("[data-testid='stImage'] img")
        expect(images).to_have_count(4, timeout=30_000)
        expect(page.get_by_text(re.compile(r"^score -?\d+\.\d{2}( |$)"))).to_have_count(4)
        # Every image decoded, not just placed: Streamlit serves them after the elements appear.
        page.wait_for_function(
            """() => { const imgs = [...document.querySelectorAll("[data-testid='stImage'] img")];
                     return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
            timeout=30_000,
        )
        page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

        page.goto(f"{dashboard_url}/insights")
        expect(page.get_by_role("heading", name="Term and parameter effects")).to_be_visible(timeout=60_000)
        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="dash").click()
        charts = page.locator("[data-testid='stVegaLiteChart']")
        expect(charts).to_have_count(2, timeout=30_000)
        expect(charts.first.locator("canvas, svg").first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Best prompts")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "insights.png"), full_page=True)

        page.goto(f"{dashboard_url}/export")
        expect(page.get_by_role("heading", name="Export")).to_be_visible(timeout=60_000)
        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="dash").click()
        expect(page.get_by_test_id("stDownloadButton")).to_have_count(9, timeout=60_000)
        page.wait_for_function(
            """() => { const img = document.querySelector("[data-testid='stImage'] img");
                     return img && img.complete && img.naturalWidth > 0; }""",
            timeout=30_000,
        )
        with page.expect_download() as download:
            page.get_by_test_id("stDownloadButton").filter(has_text="a1111-styles").click()
        assert download.value.suggested_filename == "dash-a1111-styles.csv"
        assert Path(download.value.path()).read_bytes().startswith(b"\xef\xbb\xbfname,prompt,negative_prompt")
        page.screenshot(path=str(ARTIFACTS / "export.png"), full_page=True)
        browser.close()
