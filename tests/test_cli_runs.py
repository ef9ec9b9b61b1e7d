"""CLI commands over the renderer, runner and store, through typer's CliRunner on the tiny models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from promptlab.cli import app

runner = CliRunner()


def invoke(*args: str) -> object:
    result = runner.invoke(app, list(args))
    return result


@pytest.fixture()
def demo_store() -> None:
    result = runner.invoke(app, ["demo", "--format", "json"])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_demo_then_listings_and_analysis(demo_store: None) -> None:
    experiments = json.loads(runner.invoke(app, ["experiments", "list", "--format", "json"]).stdout)
    assert [e["name"] for e in experiments] == ["demo"] and experiments[0]["ok"] == 48
    runs = json.loads(runner.invoke(app, ["runs", "list", "--experiment", "demo", "--format", "json"]).stdout)
    assert len(runs) == 48
    first = runs[0]
    for key in ("id", "experiment", "prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale",
                "width", "height", "scheduler", "status", "error", "image", "scores"):
        assert key in first
    assert Path(first["image"]).is_file() and set(first["scores"]) == {"intent", "prompt"}
    shown = json.loads(runner.invoke(app, ["runs", "show", str(first["id"]), "--format", "json"]).stdout)
    assert shown["id"] == first["id"] and shown["params"]["family"] == "sd1"
    text = runner.invoke(app, ["runs", "show", str(first["id"])]).stdout
    assert "prompt:" in text
    analysis = json.loads(runner.invoke(app, ["analyze", "demo", "--format", "json"]).stdout)
    assert len(analysis["variants"]) == 6 and analysis["effects"]
    # micro draws what it is told: the red variants are best against "a red circle ..."
    assert analysis["best"][0]["prompt"].endswith("red")
    assert "Effects" in runner.invoke(app, ["analyze", "demo", "--score", "prompt"]).stdout
    again = json.loads(runner.invoke(app, ["demo", "--format", "json"]).stdout)
    assert again["rendered"] == 0 and again["skipped"] == 48


def test_db_path(promptlab_home: Path) -> None:
    data = json.loads(runner.invoke(app, ["db", "path", "--format", "json"]).stdout)
    assert data["path"] == str((promptlab_home / "promptlab.db").resolve())


def test_runs_show_unknown_id_is_an_error() -> None:
    result = runner.invoke(app, ["runs", "show", "999"])
    assert result.exit_code != 0
    assert "999" in str(result.exception)


@pytest.mark.slow
def test_render_writes_pngs_with_metadata_and_logs_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", "a cat, (oil painting)1.3", "--model", "tiny-sd", "--size", "64x64",
                                 "--steps", "2", "-n", "2", "--seed", "7", "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)
    assert [f["seed"] for f in files] == [7, 8]
    with Image.open(files[0]["path"]) as image:
        parameters = image.text["parameters"]
    assert parameters.startswith("a cat, (oil painting:1.3)\n")
    assert "Seed: 7" in parameters and "Size: 64x64" in parameters
    runs = json.loads(runner.invoke(app, ["runs", "list", "--experiment", "renders", "--format", "json"]).stdout)
    assert sorted(r["seed"] for r in runs) == [7, 8]
    # Every parameter is recorded, the long-prompt policy too, so rerender replays it.
    shown = json.loads(runner.invoke(app, ["runs", "show", str(runs[0]["id"]), "--format", "json"]).stdout)
    assert shown["params"]["long_prompt"] == "truncate"
    scored = json.loads(runner.invoke(app, ["score", files[0]["path"], "--model", "tiny-clip", "--format", "json"]).stdout)
    assert scored[0]["prompt"] == "a cat, oil painting" and 0 <= scored[0]["value"] <= 100


@pytest.mark.parametrize("args", [["--size", "65x64"], ["--steps", "0"], ["--scheduler", "Nope"]])
def test_render_mistakes(args: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", "a cat", "--model", "tiny-sd", "--out", str(tmp_path), *args])
    assert result.exit_code != 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a (red)1000 circle"], "prompt: 'red': weight 1000 is out of range: weights go from 0 to 100"),
        (["a cat", "--size", "1048576x1048576"], "size 1048576x1048576 is too large"),
        (["a cat", "--steps", "1000000"], "num_inference_steps 1000000 must be a whole number from 1 to 1000"),
        (["a cat", "-n", "100000000"], "count 100000000 must be a whole number from 1 to 10000"),
        (["a cat " * 2000], "prompt is 12,000 characters long: at most 10,000"),
    ],
)
def test_render_refuses_what_cannot_work_before_loading_the_model(args: list[str], message: str, tmp_path: Path) -> None:
    """Issue 22: these used to render black images, run for minutes or fail mid-way; none reaches the model now."""
    result = runner.invoke(app, ["render", *args, "--model", "./no/such/model", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and message in str(result.exception), result.exception
    assert not (tmp_path / "out").exists()


def test_model_info_and_schedulers() -> None:
    info = json.loads(runner.invoke(app, ["model", "info", "tiny-sd", "--format", "json"]).stdout)
    assert info["family"] == "sd1"
    assert {c["name"] for c in info["components"]} >= {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    schedulers = json.loads(runner.invoke(app, ["model", "schedulers", "tiny-sd", "--format", "json"]).stdout)
    labels = {s["label"] for s in schedulers}
    assert {"Euler a", "DPM++ 2M Karras", "DDIM"} <= labels
    assert "DPM++ 2M Karras" in runner.invoke(app, ["model", "schedulers", "tiny-sd"]).stdout


def test_score_without_prompt_or_metadata_says_so(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (32, 32)).save(path)
    result = runner.invoke(app, ["score", str(path), "--model", "tiny-clip"])
    assert result.exit_code != 0
    assert "plain.png" in str(result.exception)


@pytest.mark.slow
def test_export_formats_grid_zip_and_import(demo_store: None, tmp_path: Path) -> None:
    import csv
    import zipfile

    styles = tmp_path / "styles.csv"
    result = runner.invoke(app, ["export", "demo", "--to", "a1111-styles", "--top", "3", "--out", str(styles)])
    assert result.exit_code == 0, result.output
    assert styles.read_bytes().startswith(b"\xef\xbb\xbf")
    with styles.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and list(rows[0]) == ["name", "prompt", "negative_prompt"]
    listed = runner.invoke(app, ["export", "demo", "--to", "compel", "--top", "2"]).stdout.splitlines()
    assert len(listed) == 2 and listed[0].startswith("a circle on a black background")
    best = json.loads(runner.invoke(app, ["export", "demo", "--to", "json", "--top", "1"]).stdout)
    analysis = json.loads(runner.invoke(app, ["analyze", "demo", "--format", "json"]).stdout)
    top_mean = max(v["mean"] for v in analysis["variants"])
    assert best["prompts"][0]["mean"] == pytest.approx(top_mean)
    grid = tmp_path / "grid.png"
    assert runner.invoke(app, ["export", "demo", "--grid", "--x", "color", "--y", "artist", "--out", str(grid)]).exit_code == 0
    with Image.open(grid) as image:
        assert image.width > 3 * 64 and image.height > 2 * 64
    bad_axis = runner.invoke(app, ["export", "demo", "--grid", "--x", "nope", "--y", "seed", "--out", str(grid)])
    assert bad_axis.exit_code != 0
    archive = tmp_path / "demo.zip"
    assert runner.invoke(app, ["export", "demo", "--zip", "--out", str(archive)]).exit_code == 0
    with zipfile.ZipFile(archive) as z:
        pngs = [n for n in z.namelist() if n.endswith(".png")]
    assert pngs
    runs = json.loads(runner.invoke(app, ["runs", "list", "--experiment", "demo", "--limit", "1", "--format", "json"]).stdout)
    imported = json.loads(runner.invoke(app, ["import", runs[0]["image"], "--format", "json", "--store"]).stdout)
    assert imported["prompts"][0]["prompt"] == runs[0]["prompt"]
    assert imported["prompts"][0]["seed"] == runs[0]["seed"]
    assert json.loads(runner.invoke(app, ["runs", "list", "--experiment", "imported", "--format", "json"]).stdout)


def test_import_file_without_metadata_names_it(tmp_path: Path) -> None:
    path = tmp_path / "bare.png"
    Image.new("RGB", (16, 16)).save(path)
    result = runner.invoke(app, ["import", str(path)])
    assert result.exit_code != 0 and "bare.png" in str(result.exception)


def _render_micro(tmp_path: Path, name: str, prompt: str, *extra: str) -> Path:
    result = runner.invoke(app, ["render", prompt, "--model", "micro", "--seed", "3", "--steps", "20",
                                 "--out", str(tmp_path / name), "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)[0]["path"])


@pytest.mark.slow
def test_a_weight_inside_a_phrase_reaches_the_model(tmp_path: Path) -> None:
    from promptlab.micro.gates import redness

    weighted = _render_micro(tmp_path, "weighted", "a (red)1.5 circle")
    plain = _render_micro(tmp_path, "plain", "a red circle")
    with Image.open(weighted) as w, Image.open(plain) as p:
        assert w.tobytes() != p.tobytes()
        # micro draws a colour weight above 1 as a redder picture.
        assert redness(w) > redness(p) + 10
        assert w.text["parameters"].startswith("a (red:1.5) circle\n")
    # The same prompt written in A1111's syntax renders the very same image.
    a1111 = _render_micro(tmp_path, "a1111", "a (red:1.5) circle", "--syntax", "a1111")
    assert a1111.read_bytes() == weighted.read_bytes()


@pytest.mark.slow
def test_render_refuses_a1111_syntax_given_as_compel(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "from promptlab.cli import main; main()"
    args = ["render", "a (red:1.3) circle, [blurry]", "--model", "micro", "--out", str(tmp_path)]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: compel prompt: '(red:1.3)'")
    assert "--syntax a1111" in result.stderr
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_render_reads_a1111_break_as_a_new_chunk(tmp_path: Path) -> None:
    joined = _render_micro(tmp_path, "joined", "a red circle, on a black background", "--syntax", "a1111")
    broken = _render_micro(tmp_path, "broken", "a red circle BREAK on a black background", "--syntax", "a1111")
    assert joined.read_bytes() != broken.read_bytes()
    with Image.open(broken) as image:
        assert image.text["parameters"].startswith("a red circle BREAK on a black background\n")
        assert json.loads(image.text["promptlab"])["prompt"] == '("a red circle", "on a black background").and()'


TINY_EXPERIMENT = """
name = "tiny"
model = "tiny-sd"
seeds = [1, 2]
scorer = "tiny-clip"

[params]
num_inference_steps = 2
width = 64
height = 64

[prompt]
subject = "a squirrel"
"""


def _can_drop_root_powers() -> bool:
    return os.geteuid() != 0 or (shutil.which("unshare") is not None and subprocess.run(["unshare", "--user", "true"]).returncode == 0)


@pytest.mark.slow
@pytest.mark.skipif(not _can_drop_root_powers(), reason="as root, needs unshare --user to make file permissions apply")
def test_a_read_only_home_is_browsed_and_only_writing_says_it_cannot(tmp_path: Path, promptlab_home: Path) -> None:
    experiment = tmp_path / "tiny.toml"
    experiment.write_text(TINY_EXPERIMENT)
    assert invoke("run", str(experiment)).exit_code == 0
    (promptlab_home / "promptlab.db-wal").unlink(missing_ok=True)
    (promptlab_home / "promptlab.db-shm").unlink(missing_ok=True)
    for path in (promptlab_home, *promptlab_home.rglob("*")):
        path.chmod(path.stat().st_mode & ~0o222)
    # Root ignores file permissions; in a user namespace of its own it does not.
    prefix = ["unshare", "--user"] if os.geteuid() == 0 else []
    try:
        for args in (["experiments", "list"], ["runs", "list"], ["runs", "show", "1"], ["analyze", "tiny"],
                     ["export", "tiny"], ["db", "path"]):  # fmt: skip
            done = subprocess.run([*prefix, sys.executable, "-m", "promptlab.cli", *args], capture_output=True, text=True)
            assert done.returncode == 0, (args, done.stderr)
        done = subprocess.run([*prefix, sys.executable, "-m", "promptlab.cli", "run", str(experiment)], capture_output=True, text=True)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "cannot be written here" in done.stderr, done.stderr
    finally:
        for path in (promptlab_home, *promptlab_home.rglob("*")):
            path.chmod(path.stat().st_mode | 0o200)


def test_runs_show_marks_a_lost_image(tmp_path: Path) -> None:
    experiment = tmp_path / "tiny.toml"
    experiment.write_text(TINY_EXPERIMENT)
    assert invoke("run", str(experiment)).exit_code == 0
    shown = json.loads(runner.invoke(app, ["runs", "show", "1", "--format", "json"]).stdout)
    assert shown["image_problem"] is None
    Path(shown["image"]).unlink()
    result = runner.invoke(app, ["runs", "show", "1"])
    assert "image_problem:   missing" in result.stdout
    assert "warning: the image file of run 1 is missing" in result.stderr


@pytest.mark.slow
def test_errors_are_one_line_and_debug_shows_the_cause(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    env = {**os.environ, "PROMPTLAB_DB": f"sqlite:///{corrupt}"}
    plain = subprocess.run([sys.executable, "-m", "promptlab.cli", "runs", "list"], capture_output=True, text=True, env=env)
    assert plain.returncode == 1 and plain.stderr.count("\n") == 1 and plain.stderr.startswith("error: cannot open database")
    debug = subprocess.run([sys.executable, "-m", "promptlab.cli", "--debug", "runs", "list"], capture_output=True, text=True, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "sqlalche.me" in debug.stderr
