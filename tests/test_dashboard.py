"""Every dashboard page under streamlit's AppTest, against a store filled by a real tiny-model run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from promptlab.dashboard import APP_PATH, dashboard_command

EXPERIMENT = """
name = "dash"
model = "tiny-sd"
seeds = 2
scorer = "tiny-clip"
batch_size = 4

[params]
num_inference_steps = 2
width = 64
height = 64

[prompt]
subject = "a squirrel"
terms = { medium = ["oil painting"] }

[axes]
style = ["", "pop-art"]
"""
TIMEOUT = 120


@pytest.fixture(scope="session")
def filled_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PROMPTLAB_HOME holding one real tiny run: 2 styles x 2 seeds, 64x64, 2 steps."""
    from promptlab.experiment import parse_experiment
    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    home = tmp_path_factory.mktemp("dashboard-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMPTLAB_HOME", str(home))
        patch.setenv("PROMPTLAB_CACHE", str(tmp_path_factory.getbasetemp() / "promptlab-cache"))
        patch.delenv("PROMPTLAB_DB", raising=False)
        with open_store() as store:
            summary = run_experiment(parse_experiment(EXPERIMENT, home / "dash.toml"), store)
    assert summary.rendered == 4, summary.to_dict()
    return home


@pytest.fixture
def filled(filled_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMPTLAB_HOME", str(filled_home))
    return filled_home


def page(name: str) -> AppTest:
    at = AppTest.from_string(f"from promptlab.dashboard import {name}\n{name}.page()", default_timeout=TIMEOUT)
    return at.run()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_dashboard_command_binds_localhost() -> None:
    argv = dashboard_command(8600)
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.port") + 1] == "8600"
    assert Path(argv[argv.index("run") + 1]) == APP_PATH
    assert dashboard_command(8600, "0.0.0.0")[argv.index("--server.address") + 1] == "0.0.0.0"


def test_dashboard_hides_the_deploy_button_and_developer_menu() -> None:
    import tomllib

    argv = dashboard_command(8600)
    assert argv[argv.index("--client.toolbarMode") + 1] == "minimal"
    # ``streamlit run app.py`` from the repository reads the same setting from .streamlit/config.toml.
    config = tomllib.loads((APP_PATH.parent / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["client"]["toolbarMode"] == "minimal"


def test_scores_show_two_decimals_and_labels_show_as_written() -> None:
    from promptlab.dashboard.data import markdown_text, score_text

    assert score_text(75.56234) == "75.56"
    assert score_text(float("nan")) == score_text(None) == "no score"
    # A level such as "---" or "*" would be a horizontal rule or a bullet in markdown.
    assert markdown_text("---") == "\\-\\-\\-"
    assert markdown_text("a (red:1.3) *b*") == "a \\(red\\:1\\.3\\) \\*b\\*"
    assert markdown_text("no artist") == "no artist"


def test_app_routes_to_home_on_an_empty_store() -> None:
    at = AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT).run()
    no_errors(at)
    assert at.title[0].value == "promptlab"
    assert "No runs yet" in at.subheader[0].value
    assert at.button(key="run_demo").label == "Run the demo"


def test_home_lists_experiments(filled: Path) -> None:
    at = page("home")
    no_errors(at)
    assert at.dataframe[0].value["experiment"].tolist() == ["dash"]


def test_build_composes_and_saves(promptlab_home: Path) -> None:
    at = page("build")
    no_errors(at)
    at.text_input(key="build_subject").set_value("a red fox").run()
    at.multiselect(key="build_terms_style").select("pop-art").run()
    at.multiselect(key="build_terms_medium").select("oil painting").run()
    at.slider(key="build_w_style_pop-art").set_value(1.3).run()
    # pop-art first: the style category moves before medium.
    at.number_input(key="build_pos_medium_oil painting").set_value(5).run()
    no_errors(at)
    codes = [c.value for c in at.code]
    assert codes[0] == "a red fox, (pop-art)1.3, oil painting"
    assert codes[1] == "a red fox, (pop-art:1.3), oil painting"
    assert at.metric[0].value.endswith("/75")
    at.text_input(key="build_name").set_value("fox").run()
    at.button(key="build_save").click().run()
    no_errors(at)
    saved = promptlab_home / "experiments" / "fox.toml"
    from promptlab.experiment import expand, load_experiment

    spec = load_experiment(saved)
    assert spec.subject == "a red fox"
    # The documented order: pop-art's category moved before medium, so the file's prompt is the one shown.
    assert [(t.text, t.weight, t.category) for t in spec.terms] == [("pop-art", 1.3, "style"), ("oil painting", 1.0, "medium")]
    (variant,) = expand(spec)
    assert variant.prompt.to_compel() == codes[0]
    assert variant.prompt.to_a1111() == codes[1]


def test_build_reads_an_a1111_negative_and_saves_its_syntax(promptlab_home: Path) -> None:
    at = page("build")
    at.text_input(key="build_subject").set_value("a red circle").run()
    at.text_input(key="build_negative").set_value("(blue:1.2), [blurry]").run()
    # Given as compel, A1111's syntax is refused by name, not rendered as literal text.
    assert at.error and "'(blue:1.2)' is A1111 syntax" in at.error[0].value
    at.radio(key="build_syntax").set_value("a1111").run()
    no_errors(at)
    codes = [c.value for c in at.code]
    assert "(blue)1.2, (blurry)0.909091" in codes and "(blue:1.2), (blurry:0.909091)" in codes
    at.text_input(key="build_name").set_value("circle").run()
    at.button(key="build_save").click().run()
    no_errors(at)
    from promptlab.experiment import load_experiment

    spec = load_experiment(promptlab_home / "experiments" / "circle.toml")
    assert spec.negative_prompt == "(blue)1.2, (blurry)0.909091"


def test_build_marks_terms_past_the_window() -> None:
    at = page("build")
    at.text_input(key="build_subject").set_value(" ".join(["squirrel"] * 80)).run()
    at.multiselect(key="build_terms_style").select("pop-art").run()
    no_errors(at)
    table = at.dataframe[0].value
    assert table.loc[table["term"] == "pop-art", "past the window"].item() == "wholly"
    assert any("window" in w.value for w in at.warning)


def test_build_suggests_terms_with_clip_and_effects(filled: Path) -> None:
    at = page("build")
    at.text_input(key="build_suggest_model").set_value("tiny-clip").run()
    at.button(key="build_suggest").click().run()
    no_errors(at)
    suggestions = at.dataframe[-2].value if len(at.dataframe) > 1 else at.dataframe[-1].value
    assert "similarity" in suggestions.columns and len(suggestions) == 10
    # Terms that helped earlier: the library's term_suggestions over every experiment's analysis.
    from promptlab.analysis import analyze, term_suggestions
    from promptlab.store import open_store
    from promptlab.vocab import load_vocab

    with open_store() as store:
        results = [analyze(store.runs_frame(e.name, "intent"), score_kind="intent", experiment=e.name) for e in store.list_experiments()]
    expected = term_suggestions(results, load_vocab().categories)
    if expected:
        table = at.dataframe[-1].value
        assert list(zip(table["term"], table["experiment"], table["mean_diff"])) == [(e.term, e.experiment, e.mean_diff) for e in expected]
    else:
        assert any("No term with a positive measured effect" in c.value for c in at.caption)


def test_run_page_runs_an_experiment_file(filled: Path) -> None:
    folder = filled / "experiments"
    folder.mkdir(exist_ok=True)
    (folder / "again.toml").write_text(EXPERIMENT.replace('name = "dash"', 'name = "again"'), encoding="utf-8")
    at = page("run")
    no_errors(at)
    at.selectbox(key="run_source").select(str(folder / "again.toml")).run()
    at.text_input(key="run_again_seeds").set_value("1").run()
    at.button(key="run_start").click().run()
    no_errors(at)
    assert "2 rendered, 0 failed" in at.success[0].value
    assert len(at.get("image")) == 2
    from promptlab.store import open_store

    with open_store() as store:
        assert store.count_runs(experiment="again") == 2


def test_run_page_leaves_what_the_file_does_not_set_to_the_model(filled: Path) -> None:
    """A file without params or scorer runs at the model's own size and with its own scorer
    (micro: 64x64, micro-clip), not at widget defaults meant for another model."""
    folder = filled / "experiments"
    folder.mkdir(exist_ok=True)
    (folder / "bare.toml").write_text('name = "bare"\nmodel = "micro"\nseeds = 1\n[prompt]\nsubject = "a red circle"\n', encoding="utf-8")
    at = page("run")
    at.selectbox(key="run_source").select(str(folder / "bare.toml")).run()
    no_errors(at)
    code = next(c.value for c in at.code if c.value.startswith('name = "bare"'))
    assert "scorer" not in code and "width" not in code and "num_inference_steps" not in code, code
    assert at.number_input(key="run_bare_width").value is None
    assert at.text_input(key="run_bare_scorer").placeholder == "micro-clip"
    at.number_input(key="run_bare_num_inference_steps").set_value(4).run()
    code = next(c.value for c in at.code if c.value.startswith('name = "bare"'))
    assert "num_inference_steps = 4" in code, code


def test_run_page_refuses_bad_seeds(filled: Path) -> None:
    at = page("run")
    key = next(w.key for w in at.text_input if w.key.endswith("_seeds"))
    at.text_input(key=key).set_value("one, two").run()
    assert at.error and "seeds" in at.error[0].value
    assert not at.exception


def test_run_page_keeps_an_upload_in_the_store_and_renders_img2img_from_it(filled_copy: Path) -> None:
    import hashlib
    import io

    from PIL import Image

    from promptlab.store import open_store

    folder = filled_copy / "experiments"
    folder.mkdir(exist_ok=True)
    (folder / "up.toml").write_text(EXPERIMENT.replace('name = "dash"', 'name = "up"'), encoding="utf-8")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="PNG")
    png = buffer.getvalue()
    at = page("run")
    at.selectbox(key="run_source").select(str(folder / "up.toml")).run()
    at.selectbox(key="run_up_task").select("img2img").run()
    at.text_input(key="run_up_seeds").set_value("1").run()
    at.get("file_uploader")[0].set_value(("Red.PNG", png, "image/png")).run()
    no_errors(at)
    kept = filled_copy / "inputs" / f"{hashlib.sha256(png).hexdigest()}.png"
    assert kept.read_bytes() == png
    assert f'image = "{kept}"' in next(c.value for c in at.code if c.value.startswith("name = "))
    at.button(key="run_start").click().run()
    no_errors(at)
    assert "2 rendered, 0 failed" in at.success[0].value
    with open_store() as store:
        runs = store.list_runs(experiment="up")
        assert len(runs) == 2 and all(r.task == "img2img" for r in runs)
        assert {i["path"] for r in runs for i in r.params["inputs"]} == {str(kept)}


def test_compare_grid_and_side_by_side(filled: Path) -> None:
    at = page("compare")
    at.selectbox(key="compare_experiment").select("dash").run()
    no_errors(at)
    assert len(at.get("image")) == 4
    assert sum(c.value.startswith("score ") for c in at.caption) == 4
    at.selectbox(key="compare_y").select("style").run()
    at.selectbox(key="compare_x").select("seed").run()
    no_errors(at)
    _same_grid_as_export(at, "style", "seed")
    at.selectbox(key="compare_y").select("seed").run()
    at.selectbox(key="compare_x").select("style").run()
    no_errors(at)
    _same_grid_as_export(at, "seed", "style")
    options = at.multiselect(key="compare_pick").options
    at.multiselect(key="compare_pick").select(options[0]).select(options[-1]).run()
    no_errors(at)
    table = at.dataframe[-1].value
    assert "term: pop-art" in table.index


def _same_grid_as_export(at: AppTest, y: str, x: str) -> None:
    """Compare's labels, their order and each cell's run are those of the exported grid (export.plan_grid)."""
    from promptlab.dashboard.data import markdown_text
    from promptlab.export import plan_grid
    from promptlab.store import open_store

    with open_store() as store:
        plan = plan_grid(store.runs_frame("dash", "intent"), x, y)
    bold = [m.value.removeprefix("**").removesuffix("**") for m in at.markdown if m.value.startswith("**")]
    assert bold[0] == f"{y} \\\\ {x}"
    assert bold[1:] == [markdown_text(label) for label in [*plan.x_labels, *plan.y_labels]]
    assert "no style" in plan.x_labels + plan.y_labels  # the absent level, named as the grid names it
    shown = [c.value for c in at.caption if c.value.startswith("score ")]
    # the same run and the same number as the grid image, two decimals, and how many runs it was chosen from
    assert [text.rsplit("#", 1)[1] for text in shown] == [str(cell.run_id) for cell in plan.cells]
    assert [text.split(" ")[1] for text in shown] == [f"{cell.score:.2f}" for cell in plan.cells]
    assert all(f"best of {cell.n_runs}" in text for text, cell in zip(shown, plan.cells) if cell.n_runs > 1)


def test_insights_shows_effects_and_best(filled: Path) -> None:
    at = page("insights")
    at.selectbox(key="insights_experiment").select("dash").run()
    no_errors(at)
    assert [s.value for s in at.subheader] == ["Term and parameter effects", "Score distributions per variant", "Best prompts", "Your votes"]
    assert len(at.get("vega_lite_chart")) == 2
    assert len(at.dataframe[-1].value) == 2


@pytest.fixture
def filled_copy(filled_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the filled store, for a test that adds runs to it."""
    import shutil

    home = tmp_path / "copied-home"
    shutil.copytree(filled_home, home)
    monkeypatch.setenv("PROMPTLAB_HOME", str(home))
    return home


def test_history_search_open_and_render_again(filled_copy: Path) -> None:
    at = page("history")
    at.selectbox(key="history_experiment").select("dash").run()
    no_errors(at)
    assert len(at.dataframe[0].value) == 4
    # The short columns first, so the score stays on screen next to the id whatever the names' lengths.
    assert list(at.dataframe[0].value.columns)[:2] == ["id", "score"]
    at.text_input(key="history_search").set_value("pop-art").run()
    assert len(at.dataframe[0].value) == 2
    at.selectbox(key="history_open").select_index(0).run()
    no_errors(at)
    assert at.subheader[0].value.startswith("Run #")
    scores = json.loads(at.json[0].value)["scores"]
    assert scores and all(re.fullmatch(r"-?\d+\.\d{2}", value) for value in scores.values()), scores
    source = int(at.subheader[0].value.removeprefix("Run #"))
    at.button(key="history_rerender").click().run()
    no_errors(at)
    assert len(at.get("image")) == 2
    from promptlab.store import open_store

    # Rendered again is logged, with what it was made from.
    with open_store() as store:
        (again,) = store.list_runs(experiment="renders")
        assert again.params["rerender_of"] == source and again.status == "ok"
    caption = at.get("image")[-1].proto.imgs[0].caption
    assert caption.startswith(f"rendered again: seed {again.seed}, run #{again.id} in renders; ")


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[bytes, str]]:
    """Every download button's file as the page handed it to streamlit: file name -> (bytes, MIME)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    files: dict[str, tuple[bytes, str]] = {}
    add = MediaFileManager.add

    def recording_add(self: MediaFileManager, data: bytes | str, mimetype: str, *args: object, **kwargs: object) -> str:
        if kwargs.get("is_for_static_download"):
            files[str(kwargs["file_name"])] = (data if isinstance(data, bytes) else data.encode(), mimetype)
        return add(self, data, mimetype, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MediaFileManager, "add", recording_add)
    return files


def test_export_offers_downloads(filled: Path, downloads: dict[str, tuple[bytes, str]]) -> None:
    import csv
    import io
    import json
    import zipfile

    from PIL import Image

    from promptlab.export import EXPORT_FILE_TYPES, EXPORT_FORMATS, parse_markdown_table

    at = page("export")
    at.selectbox(key="export_experiment").select("dash").run()
    at.number_input(key="export_top").set_value(2).run()
    no_errors(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert sorted(labels) == sorted([*EXPORT_FORMATS, "Grid image (PNG)", "Images and table (zip)"])
    for fmt, file_type in EXPORT_FILE_TYPES.items():
        data, mime = downloads[f"dash-{fmt}{file_type.suffix}"]
        assert mime == file_type.mime, fmt
        data.decode("utf-8")
    assert [p["rank"] for p in json.loads(downloads["dash-json.json"][0])["prompts"]] == [1, 2]
    assert len(list(csv.DictReader(io.StringIO(downloads["dash-csv.csv"][0].decode())))) == 2
    assert len(parse_markdown_table(downloads["dash-markdown.md"][0].decode())) == 2
    styles = downloads["dash-a1111-styles.csv"][0]
    assert styles.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(styles.decode("utf-8-sig"))))
    assert [r["name"].split(" ")[1] for r in rows] == ["#1", "#2"]
    assert all("{prompt}" in r["prompt"] for r in rows)
    assert len(json.loads(downloads["dash-fooocus-styles.json"][0])) == 2
    assert len(downloads["dash-compel.txt"][0].decode().splitlines()) == 2
    assert len(downloads["dash-a1111.txt"][0].decode().splitlines()) == 2
    # the grid: 2 styles (X) by 2 seeds (Y)
    assert len(at.get("image")) == 1
    png, mime = downloads["dash-grid.png"]
    assert mime == "image/png"
    with Image.open(io.BytesIO(png)) as grid:
        assert grid.format == "PNG" and grid.width > 2 * 64 and grid.height > 2 * 64
    x, y = at.selectbox(key="export_grid_x").value, at.selectbox(key="export_grid_y").value
    assert {x, y} == {"style", "seed"}
    at.selectbox(key="export_grid_x").select(y).run()
    at.selectbox(key="export_grid_y").select(x).run()
    no_errors(at)
    assert downloads["dash-grid.png"][0] != png  # transposed
    zipped, mime = downloads["dash.zip"]
    assert mime == "application/zip"
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        names = archive.namelist()
    assert {"best.csv", "best.json", "runs.csv"} <= set(names)
    assert sum(n.startswith("images/") for n in names) == 4


def test_export_shows_a_library_error_without_traceback(promptlab_home: Path) -> None:
    from promptlab.prompt import Prompt
    from promptlab.store import RunRecord, open_store

    with open_store() as store:
        experiment = store.add_experiment("broken", {})
        record = RunRecord(experiment.id, "v0", 1, Prompt("a squirrel"), "tiny-sd")
        store.record_failure(record, "out of memory")
    at = page("export")
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and "no scored runs" in at.error[0].value
    assert not at.get("download_button")


@pytest.fixture
def lost_image(filled_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the filled store with its image files deleted (issue 22)."""
    import shutil

    home = tmp_path / "lost-home"
    shutil.copytree(filled_home, home)
    for image in (home / "images").glob("*.png"):
        image.unlink()
    monkeypatch.setenv("PROMPTLAB_HOME", str(home))
    return home


def test_a_lost_image_file_is_marked_and_never_raises(lost_image: Path) -> None:
    at = page("compare")
    at.selectbox(key="compare_experiment").select("dash").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("image")) == 0
    assert sum("image file missing" in w.value for w in at.warning) == 4
    options = at.multiselect(key="compare_pick").options
    for option in options:
        at.multiselect(key="compare_pick").select(option)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("image file missing" in w.value for w in at.warning)


def test_browsing_opens_the_store_read_only_and_running_opens_it_for_writing(filled: Path) -> None:
    from promptlab.dashboard import data

    at = page("home")
    no_errors(at)
    assert data.store().read_only is True
    assert data.writable_store().read_only is False


def test_app_started_without_an_address_shows_how_to_start_it_not_the_store(filled: Path) -> None:
    from streamlit import config

    from promptlab.dashboard import UNBOUND_MESSAGE

    previous = config.get_option("server.address")
    config.set_option("server.address", None)
    try:
        at = AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT).run()
    finally:
        config.set_option("server.address", previous)
    assert [e.value for e in at.error] == [UNBOUND_MESSAGE]
    assert not at.title and not at.dataframe


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the listening sockets from /proc/net/tcp (Linux)")
def test_promptlab_dashboard_listens_on_localhost_only_from_any_working_directory(filled: Path, tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # A working directory without .streamlit/config.toml, and a HOME without one either.
    env = {**os.environ, "HOME": str(tmp_path)}
    process = subprocess.Popen(dashboard_command(port), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        listening: set[str] = set()
        while not listening and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.3)
            listening = _listening_addresses(port)
        assert listening == {"127.0.0.1"}
    finally:
        process.terminate()
        process.wait(timeout=20)


def _listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (IPv4 and IPv6), from /proc/net."""
    import ipaddress

    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":  # LISTEN
                raw = bytes.fromhex(address)
                # /proc writes each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_build_defaults_to_micro_and_names_the_file_after_the_current_subject(promptlab_home: Path) -> None:
    at = page("build")
    at.text_input(key="build_subject").set_value("a gold star on a sky blue background").run()
    at.button(key="build_save").click().run()
    no_errors(at)
    from promptlab.experiment import load_experiment

    spec = load_experiment(promptlab_home / "experiments" / "a-gold-star-on-a-sky-blue-background.toml")
    # Offline in seconds on a CPU: the built-in micro model, its own scorer, its 64x64.
    assert (spec.model, spec.scorer, spec.params) == ("micro", "micro-clip", {"width": 64, "height": 64})
    # A real model is one field away: its scorer and size follow it.
    at.text_input(key="build_model").set_value("runwayml/stable-diffusion-v1-5").run()
    no_errors(at)
    saved = at.code[-1].value
    assert 'model = "runwayml/stable-diffusion-v1-5"' in saved and 'scorer = "clip"' in saved and "width" not in saved


def test_build_numbers_positions_once_each_and_shows_weights_with_two_decimals() -> None:
    at = page("build")
    at.multiselect(key="build_terms_style").select("pop-art").run()
    at.multiselect(key="build_terms_medium").select("oil painting").run()
    at.multiselect(key="build_terms_light").select("golden hour").run()
    no_errors(at)
    keys = ["build_pos_style_pop-art", "build_pos_medium_oil painting", "build_pos_light_golden hour"]
    # A new term goes last; no two share a position (it was medium's default 1 next to pop-art's 1).
    assert [at.number_input(key=k).value for k in keys] == [1, 2, 3]
    at.number_input(key="build_pos_light_golden hour").set_value(1).run()
    assert [at.number_input(key=k).value for k in keys] == [2, 3, 1]
    # Moved to 1: golden hour's category goes first, the others keep their order after it.
    assert at.code[0].value == "fat cat lies on the couch, golden hour, pop-art, oil painting"
    at.slider(key="build_w_style_pop-art").set_value(1.3).run()
    no_errors(at)
    shown = pa.ipc.open_stream(at.dataframe[0].proto.arrow_data.styler.display_values).read_all().to_pandas()
    assert list(shown["weight"]) == ["1.00", "1.30", "1.00"]


def test_build_wraps_the_prompt_boxes_so_the_whole_text_shows() -> None:
    at = page("build")
    at.text_input(key="build_subject").set_value("a very long subject " * 12).run()
    at.text_input(key="build_negative").set_value("blurry, ugly").run()
    no_errors(at)
    boxes = at.code[:4]
    assert [box.proto.wrap_lines for box in boxes] == [True] * 4
    assert boxes[0].value.startswith("a very long subject") and boxes[0].value.endswith("a very long subject")


def test_build_suggests_related_terms_offline_with_micro_clip_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = page("build")
    assert at.text_input(key="build_suggest_model").value == "micro-clip"
    at.button(key="build_suggest").click().run()
    no_errors(at)
    suggestions = next(d.value for d in at.dataframe if "similarity" in d.value.columns)
    assert len(suggestions) == 10
