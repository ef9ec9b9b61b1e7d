"""The Judge page under AppTest (two images, labels hidden, a key per button, each vote stored as
shown, the next pair preloaded), and what Insights says of the votes, on a real store in tmp_path."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from streamlit.testing.v1 import AppTest

from promptlab.prompt import Prompt, Term
from promptlab.store import RunRecord, ScoreRecord, Store, open_store

TIMEOUT = 60


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), (shade, 255 - shade, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def record(experiment_id: int, key: str, seed: int) -> RunRecord:
    return RunRecord(experiment_id=experiment_id, variant_key=key, seed=seed, prompt=Prompt("a squirrel", (Term(key, 1.0, "style"),)),
                     model="tiny-sd", label=f"style={key}")  # fmt: skip


def fill(store: Store, name: str = "judged", keys: tuple[str, ...] = ("a", "b", "c"), seeds: int = 2) -> dict[tuple[str, int], int]:
    """Recorded runs of ``keys`` x ``seeds``, each with a picture of its own and scores from clip and aesthetic."""
    experiment = store.add_experiment(name, {"scorers": ["clip", "aesthetic"]})
    ids = {}
    for index, key in enumerate(keys):
        for seed in range(seeds):
            scores = [ScoreRecord("intent", "clip", 30.0 - index, "x"), ScoreRecord("intent", "aesthetic", 5.0 + index, "x")]
            ids[key, seed] = store.record_run(record(experiment.id, key, seed), png(60 * index + seed), scores).id
    return ids


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, int], int]:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "ana")
    with open_store() as store:
        return fill(store)


def judge_page() -> AppTest:
    at = AppTest.from_string("from promptlab.dashboard import judge\njudge.page()", default_timeout=TIMEOUT).run()
    no_errors(at)
    return at


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def queue(at: AppTest) -> Any:
    return at.session_state["judge_queues"][("judged", "ana")]


def texts(at: AppTest) -> list[str]:
    return [m.value for m in (*at.markdown, *at.caption, *at.info, *at.warning)]


def votes() -> list[Any]:
    with open_store(read_only=True) as store:
        return store.list_votes("judged")


def test_two_images_show_without_their_labels_and_each_button_has_a_key(judged: dict[tuple[str, int], int]) -> None:
    at = judge_page()
    assert len(at.get("image")) == 2
    assert not any("style=" in text for text in texts(at))
    keys = {b.proto.label: b.proto.shortcut for b in at.button}
    assert keys == {"Left is better": "left", "Tie": "down", "Skip": "up", "Right is better": "right"}  # Streamlit keeps them lower-case
    pair = queue(at).current
    assert pair.left.seed == pair.right.seed and pair.left.variant_key != pair.right.variant_key
    assert queue(at).upcoming is not None and queue(at).upcoming.key != pair.key
    assert any(text.startswith("0 votes by ana on this experiment") for text in texts(at))


def test_a_vote_is_stored_as_shown_and_the_preloaded_pair_comes_next(judged: dict[tuple[str, int], int]) -> None:
    at = judge_page()
    shown, upcoming = queue(at).current, queue(at).upcoming
    at.button(key="judge_left").click().run()
    no_errors(at)
    (vote,) = votes()
    assert (vote.left_run_id, vote.right_run_id, vote.choice, vote.voter) == (shown.left.run_id, shown.right.run_id, "left", "ana")
    assert queue(at).current == upcoming
    # the labels of the vote just cast, not before
    (expander,) = at.expander
    assert expander.label == "Which was which (your last vote)"
    revealed = expander.markdown[0].value
    assert f"Left: **{shown.left.label}**; right: **{shown.right.label}**" in revealed and "You chose **left**" in revealed
    assert any(text.startswith("1 vote by ana on this experiment, 1 by everybody") for text in texts(at))
    at.button(key="judge_tie").click().run()
    assert [v.choice for v in votes()] == ["left", "tie"]
    assert votes()[1].left_run_id == upcoming.left.run_id


def test_skip_records_nothing_and_shows_another_pair(judged: dict[tuple[str, int], int]) -> None:
    at = judge_page()
    shown = queue(at).current
    at.button(key="judge_skip").click().run()
    no_errors(at)
    assert votes() == []
    assert queue(at).current.key != shown.key and shown.key in queue(at).skipped


def test_every_pair_is_judged_once_before_any_comes_again(judged: dict[tuple[str, int], int]) -> None:
    at = judge_page()
    for _ in range(6):  # 2 seeds x 3 variant pairs
        at.button(key="judge_right").click().run()
    no_errors(at)
    assert len({frozenset((v.left_run_id, v.right_run_id)) for v in votes()}) == 6


def test_a_run_deleted_while_shown_is_refused_in_one_red_line_and_nothing_is_written(judged: dict[tuple[str, int], int]) -> None:
    at = judge_page()
    shown = queue(at).current
    with open_store() as store:
        experiment = store.get_experiment("judged")
        key = shown.left.variant_key
        store.record_run(record(experiment.id, key, shown.left.seed), png(250), replace=[shown.left.run_id])
    at.button(key="judge_left").click().run()
    assert votes() == []
    assert any(f"run {shown.left.run_id} is not in" in e.value for e in at.error)
    assert not at.exception
    assert len(at.get("image")) == 2  # a fresh pair, of runs that exist
    at.button(key="judge_left").click().run()
    no_errors(at)
    assert len(votes()) == 1


def test_with_one_pair_in_all_it_comes_again_after_each_vote(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "ana")
    with open_store() as store:
        fill(store, "judged", keys=("a", "b"), seeds=1)
    at = judge_page()
    assert queue(at).upcoming is None or queue(at).upcoming.key == queue(at).current.key
    for count in (1, 2, 3):
        at.button(key="judge_left").click().run()
        no_errors(at)
        assert len(votes()) == count and len(at.get("image")) == 2


def test_an_experiment_of_one_variant_has_no_pair_to_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store() as store:
        fill(store, "judged", keys=("a",))
    at = judge_page()
    assert any("No pair to judge" in i.value for i in at.info)


def test_insights_says_where_to_judge_then_shows_strengths_and_each_scorers_agreement(judged: dict[tuple[str, int], int]) -> None:
    at = AppTest.from_string("from promptlab.dashboard import insights\ninsights.page()", default_timeout=TIMEOUT).run()
    no_errors(at)
    assert any("No votes yet: judge this experiment's images on the **Judge** page." in c.value for c in at.caption)
    with open_store() as store:
        for seed in range(2):
            store.record_vote(judged["a", seed], judged["b", seed], "left")
            store.record_vote(judged["c", seed], judged["a", seed], "right")
            store.record_vote(judged["b", seed], judged["c", seed], "tie" if seed else "left")
    at.run()
    no_errors(at)
    assert any(c.value.startswith("6 votes (1 tie) by ana.") for c in at.caption)
    table = at.dataframe[-1].value
    assert list(table["variant"]) == ["style=a", "style=b", "style=c"]
    lines = [m.value for m in at.markdown if "agrees with you" in m.value]
    assert lines == ["- clip agrees with you on 100% \\(95% CI 57\\-100%\\) of 5 pairs",
                     "- aesthetic agrees with you on 0% \\(95% CI 0\\-43%\\) of 5 pairs"]  # fmt: skip
    (download,) = at.get("download_button")
    assert download.proto.label == "Download the votes (CSV)"


def test_the_app_lists_the_judge_page() -> None:
    app = (Path(__file__).resolve().parent.parent / "app.py").read_text()
    assert 'st.Page(judge.page, title="Judge", url_path="judge")' in app


# In a real browser: the keys vote


CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture
def judge_url(judged: dict[tuple[str, int], int], promptlab_home: Path, serve_dashboard: Any) -> Any:
    with serve_dashboard(promptlab_home, promptlab_home.parent / "judge-streamlit.log") as (url, _):
        yield url


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")
def test_the_arrow_keys_vote_in_a_browser(judge_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    def wait_for_votes(count: int) -> None:
        for _ in range(200):
            if len(votes()) == count:
                return
            page.wait_for_timeout(50)
        raise AssertionError(f"expected {count} votes, found {len(votes())}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{judge_url}/judge")
            expect(page.get_by_text("0 votes by ana on this experiment")).to_be_visible(timeout=60_000)
            expect(page.get_by_test_id("stImage")).to_have_count(2)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "judge.png"))
            page.keyboard.press("ArrowLeft")
            wait_for_votes(1)
            expect(page.get_by_text("1 vote by ana on this experiment")).to_be_visible(timeout=30_000)
            page.keyboard.press("ArrowUp")  # skip: no vote
            page.keyboard.press("ArrowDown")
            wait_for_votes(2)
            expect(page.get_by_text("2 votes by ana on this experiment")).to_be_visible(timeout=30_000)
            page.keyboard.press("ArrowRight")
            wait_for_votes(3)
            assert [v.choice for v in votes()] == ["left", "tie", "right"]
            assert len({frozenset((v.left_run_id, v.right_run_id)) for v in votes()}) == 3
            expect(page.get_by_text("3 votes by ana on this experiment")).to_be_visible(timeout=30_000)
            page.get_by_text("Which was which (your last vote)").click()
            expect(page.get_by_text("You chose right")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "judge-revealed.png"))
        finally:
            browser.close()
