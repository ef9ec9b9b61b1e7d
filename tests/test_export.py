"""Every export is read back the way its reader reads it: same prompts, same numbers, same pixels, same bytes."""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from promptlab.analysis import best_prompts
from promptlab.errors import ExportError
from promptlab.export import (
    EXPORT_FILE_TYPES,
    EXPORT_FORMATS,
    export_best,
    export_rows,
    export_zip,
    grid_image,
    parse_markdown_table,
    plan_grid,
    write_best,
)
from promptlab.metadata import GenerationParameters, read_image_metadata, write_png
from promptlab.prompt import Prompt, Term, parse_a1111, parse_compel

STYLES = {"": (), "pop-art": (Term("pop-art", 1.1),), "oil painting": (Term("oil painting", 1.21), Term("detailed"))}
GUIDANCE = (5.0, 7.5)
SEEDS = (0, 1)
SUBJECT = "a red fox (vulpes), in the snow"
# what a user types into A1111 or Fooocus for that subject: brackets escaped
SUBJECT_A1111 = Prompt(SUBJECT).to_a1111()
NEGATIVE = "blurry, (ugly)1.2"


def _colour(run_id: int) -> tuple[int, int, int]:
    return (run_id * 9 % 256, 255 - run_id * 7 % 256, run_id * 31 % 256)


@pytest.fixture
def experiment(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """Style x guidance_scale x seed runs with real PNG files; oil painting at 7.5 failed, pop-art at 7.5 seed 1 absent."""
    root = tmp_path / "images"
    rows = []
    run_id = 0
    for style, terms in STYLES.items():
        for guidance in GUIDANCE:
            for seed in SEEDS:
                if (style, guidance, seed) == ("pop-art", 7.5, 1):
                    continue
                prompt = Prompt(SUBJECT, terms)
                failed = style == "oil painting" and guidance == 7.5
                image = None
                if not failed:
                    image = f"{run_id:02d}.png"
                    picture = Image.new("RGB", (24, 16), _colour(run_id))
                    picture.putpixel((3, 5), (1, 2, 3))
                    params = GenerationParameters(
                        prompt=prompt.to_a1111(), steps=20, sampler="Euler a", cfg_scale=guidance, seed=seed
                    )
                    write_png(picture, root / image, params, promptlab_record={"run_id": run_id})
                rows.append(
                    {
                        "run_id": run_id,
                        "variant_key": f"{style or 'none'}@{guidance}",
                        "label": f"{style or 'no style'} | cfg {guidance}",
                        "seed": seed,
                        "subject": SUBJECT,
                        "score": math.nan if failed else float((run_id * 7) % 11),
                        "image": image,
                        "prompt": prompt.to_compel(),
                        "negative_prompt": NEGATIVE,
                        "status": "failed" if failed else "ok",
                        "axis:style": style,
                        "axis:guidance_scale": guidance,
                    }
                )
                run_id += 1
    return pd.DataFrame(rows), root


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _number(text: str) -> float | None:
    return float(text) if text else None


def _absolute(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    return frame.assign(image=[str(root / i) if isinstance(i, str) else None for i in frame["image"]])


def _same_terms(text: str, parse: object, original_compel: str) -> None:
    got, want = parse(text), parse_compel(original_compel)  # type: ignore[operator]
    assert (got.subject, [(t.text, t.weight) for t in got.terms]) == (
        want.subject,
        [(t.text, t.weight) for t in want.terms],
    )


def test_registry_has_the_cli_format_names_and_file_types() -> None:
    names = {"json", "csv", "markdown", "a1111-styles", "fooocus-styles", "compel", "a1111"}
    assert set(EXPORT_FORMATS) == names and set(EXPORT_FILE_TYPES) == names == set(READERS)


def _terms(prompt: Prompt) -> tuple[str, list[tuple[str, float]]]:
    return prompt.subject, [(t.text, t.weight) for t in prompt.terms]


def _styles_csv_prompts(text: str) -> list[Prompt]:
    rows = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    return [parse_a1111(r["prompt"].replace("{prompt}", SUBJECT_A1111)) for r in rows]


# How each format's prompts are read back, in file order.
READERS = {
    "json": lambda text: [parse_compel(r["prompt"]) for r in json.loads(text)["prompts"]],
    "csv": lambda text: [parse_compel(r["prompt"]) for r in csv.DictReader(io.StringIO(text))],
    "markdown": lambda text: [parse_compel(r["prompt"]) for r in parse_markdown_table(text)],
    "a1111-styles": _styles_csv_prompts,
    "fooocus-styles": lambda text: [parse_a1111(s["prompt"].replace("{prompt}", SUBJECT_A1111)) for s in json.loads(text)],
    "compel": lambda text: [parse_compel(line) for line in text.splitlines()],
    "a1111": lambda text: [parse_a1111(line) for line in text.splitlines()],
}


@pytest.mark.parametrize("fmt", sorted(EXPORT_FORMATS))
def test_every_format_holds_the_top_n_best_first(experiment: tuple[pd.DataFrame, Path], fmt: str) -> None:
    frame, _ = experiment
    best = best_prompts(frame, 3)
    read = READERS[fmt](export_best(frame, fmt, experiment="fox", top=3))
    assert [_terms(p) for p in read] == [_terms(parse_compel(b.prompt)) for b in best]
    assert len({b.prompt for b in best}) >= 2  # so the order is tested too


def test_json_round_trip(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, _ = experiment
    best = best_prompts(frame, 3)
    data = json.loads(export_best(frame, "json", experiment="fox", top=3))
    assert data["experiment"] == "fox"
    rows = data["prompts"]
    assert [(r["rank"], r["label"], r["prompt"], r["negative_prompt"], r["image"]) for r in rows] == [
        (b.rank, b.label, b.prompt, b.negative_prompt, b.image) for b in best
    ]
    assert [(r["mean"], r["ci_low"], r["ci_high"], r["n"], r["best_score"]) for r in rows] == [
        (b.mean, _none(b.ci_low), _none(b.ci_high), b.n, b.best_score) for b in best
    ]
    for r in rows:
        _same_terms(r["prompt_a1111"], parse_a1111, r["prompt"])
        _same_terms(r["negative_prompt_a1111"], parse_a1111, r["negative_prompt"])


def test_json_writes_a_missing_interval_as_null(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, _ = experiment
    one_seed = frame[frame["seed"] == 0]
    rows = json.loads(export_best(one_seed, "json", experiment="fox", top=1))["prompts"]
    assert rows[0]["ci_low"] is None and rows[0]["n"] == 1


def test_csv_round_trip(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, _ = experiment
    best = best_prompts(frame, 5)
    rows = list(csv.DictReader(io.StringIO(export_best(frame, "csv", experiment="fox", top=5))))
    assert [(int(r["rank"]), r["label"], r["prompt"], r["negative_prompt"], r["image"]) for r in rows] == [
        (b.rank, b.label, b.prompt, b.negative_prompt, b.image) for b in best
    ]
    assert [(float(r["mean"]), _number(r["ci_low"]), _number(r["ci_high"]), int(r["n"])) for r in rows] == [
        (b.mean, _none(b.ci_low), _none(b.ci_high), b.n) for b in best
    ]
    for r in rows:
        _same_terms(r["prompt_a1111"], parse_a1111, r["prompt"])


def test_markdown_table_round_trip(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, _ = experiment
    best = best_prompts(frame, 4)
    text = export_best(frame, "markdown", experiment="fox", top=4)
    assert text.splitlines()[0].startswith("| rank | label | prompt (compel)")
    rows = parse_markdown_table(text)
    # labels hold a '|', which must come back from its escape
    assert [(int(r["rank"]), r["label"], r["prompt"], r["negative_prompt"], r["image"]) for r in rows] == [
        (b.rank, b.label, b.prompt, b.negative_prompt, b.image) for b in best
    ]
    assert any(r["ci_low"] == "n/a" for r in rows) and any(r["ci_low"] != "n/a" for r in rows)
    for r, b in zip(rows, best):
        assert float(r["mean"]) == round(b.mean, 3)
        assert r["ci_high"] == ("n/a" if math.isnan(b.ci_high) else f"{b.ci_high:.3f}")
        assert int(r["n"]) == b.n
        _same_terms(r["prompt_a1111"], parse_a1111, b.prompt)


def test_a1111_styles_read_as_a1111_reads_them(experiment: tuple[pd.DataFrame, Path], tmp_path: Path) -> None:
    frame, _ = experiment
    best = best_prompts(frame, 5)
    out = write_best(frame, "a1111-styles", tmp_path / "styles.csv", experiment="fox", top=5)
    assert out.read_bytes().startswith(b"\xef\xbb\xbfname,prompt,negative_prompt\r\n")
    # modules/styles.py: open(path, "r", encoding="utf-8-sig", newline="") and csv.DictReader
    with open(out, encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file, skipinitialspace=True)
        styles = list(reader)
        assert reader.fieldnames == ["name", "prompt", "negative_prompt"]
    assert [s["name"] for s in styles] == [f"fox #{b.rank} {b.label}" for b in best]
    for style, b in zip(styles, best):
        assert style["prompt"].startswith("{prompt}")
        # A1111 puts the user's prompt where {prompt} stands: with the subject typed, the variant comes back
        _same_terms(style["prompt"].replace("{prompt}", SUBJECT_A1111), parse_a1111, b.prompt)
        _same_terms(style["negative_prompt"], parse_a1111, b.negative_prompt)
    assert any(s["prompt"] == "{prompt}" for s in styles)  # the no-style variant adds no terms


def test_fooocus_styles_round_trip(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, _ = experiment
    best = best_prompts(frame, 5)
    styles = json.loads(export_best(frame, "fooocus-styles", experiment="fox", top=5))
    assert isinstance(styles, list) and all(set(s) == {"name", "prompt", "negative_prompt"} for s in styles)
    assert len({s["name"] for s in styles}) == len(styles)
    for style, b in zip(styles, best):
        assert "{prompt}" in style["prompt"]
        _same_terms(style["prompt"].replace("{prompt}", SUBJECT_A1111), parse_a1111, b.prompt)


@pytest.mark.parametrize(("fmt", "parse"), [("compel", parse_compel), ("a1111", parse_a1111)])
def test_prompt_lists_parse_back_to_the_same_terms(experiment: tuple[pd.DataFrame, Path], fmt: str, parse: object) -> None:
    frame, _ = experiment
    best = best_prompts(frame, 5)
    lines = export_best(frame, fmt, experiment="fox", top=5).splitlines()
    assert len(lines) == len(best)
    for line, b in zip(lines, best):
        _same_terms(line, parse, b.prompt)


def test_export_errors(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, _ = experiment
    with pytest.raises(ExportError, match="unknown export format 'yaml'.*a1111-styles"):
        export_best(frame, "yaml", experiment="fox")
    with pytest.raises(ExportError, match="no scored runs"):
        export_best(frame.assign(score=math.nan), "json", experiment="fox")
    with pytest.raises(ExportError, match="top must be at least 1"):
        export_rows(frame, 0)
    broken = frame.assign(negative_prompt="blurry\nugly")
    with pytest.raises(ExportError, match="line break.*json or csv"):
        export_best(broken, "markdown", experiment="fox")
    assert "blurry\\nugly" in export_best(broken, "json", experiment="fox")
    elsewhere = frame.assign(subject="a grey wolf")
    with pytest.raises(ExportError, match="does not start with its subject 'a grey wolf'"):
        export_best(elsewhere, "a1111-styles", experiment="fox")


def test_grid_size_labels_and_pixels(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, root = experiment
    plan = plan_grid(frame, "style", "guidance_scale", images_root=root)
    image = grid_image(frame, "style", "guidance_scale", images_root=root)
    assert plan.x_labels == ["no style", "pop-art", "oil painting"]
    assert plan.y_labels == ["guidance_scale: 5", "guidance_scale: 7.5"]
    assert (plan.cell_width, plan.cell_height) == (24, 16)
    assert image.size == plan.size == (
        plan.label_width + 3 * 24,
        plan.header_height + 2 * (16 + plan.score_height),
    )
    # cell (no style, 5.0) holds runs 0 (score 0) and 1 (score 7): the best-scoring one is shown
    cell = plan.cell(0, 0)
    assert (cell.status, cell.run_id, cell.seed, cell.score, cell.n_runs) == ("ok", 1, 1, 7.0, 2)
    left, top = plan.cell_origin(0, 0)
    assert image.crop((left, top, left + 24, top + 16)).tobytes() == Image.open(root / "01.png").convert("RGB").tobytes()
    # the labels and the scores are drawn: dark pixels in the header, left column and score strip
    header = image.crop((plan.label_width, 0, image.width, plan.header_height))
    side = image.crop((0, plan.header_height, plan.label_width, image.height))
    strip = image.crop((left, top + 16, left + 24, top + 16 + plan.score_height))
    assert all(region.convert("L").getextrema()[0] < 100 for region in (header, side, strip))


def test_grid_row_labels_wrap_between_words(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, root = experiment
    long_word = "x" * 60
    names = {"oil painting": "Greg Rutkowski", "pop-art": f"by {long_word}"}
    frame = frame.assign(**{"axis:style": frame["axis:style"].replace(names)})
    plan = plan_grid(frame, "seed", "axis:style", images_root=root, cell_size=(64, 64))
    lines = dict(zip(plan.y_labels, plan.y_lines, strict=True))
    # The label column widens for a name's longest word, so "Rutkowski" is not broken ...
    assert lines["Greg Rutkowski"] in (["Greg", "Rutkowski"], ["Greg Rutkowski"])
    # ... up to two cells: a word wider than that is still broken between characters.
    assert plan.label_width <= 2 * 64
    assert "".join(lines[f"by {long_word}"][1:]) == long_word and len(lines[f"by {long_word}"]) > 2


def test_grid_labels_keep_the_space_between_words(experiment: tuple[pd.DataFrame, Path]) -> None:
    """At small sizes Pillow's default font draws a space 2 pixels wide, as wide as the gaps between
    letters: "no style" read as "nostyle". The space is drawn wider than any gap inside a word."""
    import numpy as np

    frame, root = experiment
    plan = plan_grid(frame, "seed", "style", images_root=root, cell_size=(64, 64))
    assert plan.font_size == 10 and plan.y_labels[0] == "no style" and plan.y_lines[0] == ["no style"]
    image = grid_image(frame, "seed", "style", images_root=root, cell_size=(64, 64))
    top = plan.header_height
    label = np.asarray(image.crop((0, top, plan.label_width, top + plan.cell_height)).convert("L")) < 128
    ink = label.any(axis=0)
    columns = np.flatnonzero(ink)
    gaps, run = [], 0
    for inked in ink[columns[0] : columns[-1] + 1]:
        if inked and run:
            gaps.append(run)
        run = 0 if inked else run + 1
    widest, second = sorted(gaps, reverse=True)[:2]
    assert widest >= 3 and widest > second, gaps


def test_grid_marks_failed_and_missing_cells_grey(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, root = experiment
    plan = plan_grid(frame, "style", "guidance_scale", images_root=root, seed=1)
    image = grid_image(frame, "style", "guidance_scale", images_root=root, seed=1)
    assert plan.cell(1, 2).status == "failed" and plan.cell(1, 2).n_runs == 1
    assert plan.cell(1, 1).status == "missing" and plan.cell(1, 1).n_runs == 0
    assert plan.cell(0, 0).seed == 1
    for row, column in ((1, 1), (1, 2)):
        left, top = plan.cell_origin(row, column)
        assert image.getpixel((left + 1, top + 1)) == (128, 128, 128)


def test_grid_seed_picks_that_seed(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, root = experiment
    plan = plan_grid(frame, "style", "guidance_scale", images_root=root, seed=0)
    assert plan.cell(0, 0).run_id == 0 and plan.cell(0, 0).score == 0.0


def test_grid_by_seed_with_absolute_paths_and_resized_cells(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, root = experiment
    frame = _absolute(frame, root)
    plan = plan_grid(frame, "seed", "axis:style", cell_size=(48, 48))
    image = grid_image(frame, "seed", "axis:style", cell_size=(48, 48))
    assert plan.x_labels == ["seed 0", "seed 1"] and image.size == plan.size
    assert image.size == (plan.label_width + 2 * 48, plan.header_height + 3 * (48 + plan.score_height))
    cell = plan.cell(2, 0)  # oil painting, seed 0: runs at 5.0 and at 7.5 (failed); the 5.0 one shows
    assert cell.status == "ok"
    expected = ImageOps.pad(Image.open(cell.image).convert("RGB"), (48, 48), color=(255, 255, 255))
    left, top = plan.cell_origin(2, 0)
    assert image.crop((left, top, left + 48, top + 48)).tobytes() == expected.tobytes()


def test_grid_errors(experiment: tuple[pd.DataFrame, Path]) -> None:
    frame, root = experiment
    with pytest.raises(ExportError, match=r"unknown axis 'colour'.*style, guidance_scale, seed, subject"):
        grid_image(frame, "colour", "seed", images_root=root)
    with pytest.raises(ExportError, match="both 'style'"):
        grid_image(frame, "style", "axis:style", images_root=root)
    with pytest.raises(ExportError, match=r"seed 9 is not in the experiment; its seeds are \[0, 1\]"):
        grid_image(frame, "style", "guidance_scale", images_root=root, seed=9)
    with pytest.raises(ExportError, match="cannot be combined with seed"):
        grid_image(frame, "style", "seed", images_root=root, seed=0)
    with pytest.raises(ExportError, match="01.png is missing"):
        grid_image(frame, "style", "guidance_scale", images_root=root / "elsewhere")


def test_zip_holds_tables_and_untouched_images(experiment: tuple[pd.DataFrame, Path], tmp_path: Path) -> None:
    frame, root = experiment
    result = export_zip(frame, tmp_path / "out" / "fox.zip", root, experiment="fox")
    ok = frame[frame["image"].notna()]
    assert (result.variants, result.runs, result.images) == (5, len(frame), len(ok))  # oil painting at 7.5 only failed
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        assert {"best.csv", "best.json", "runs.csv"} <= names
        for image in ok["image"]:
            assert archive.read(f"images/{image}") == (root / image).read_bytes()
        best = json.loads(archive.read("best.json"))["prompts"]
        table = list(csv.DictReader(io.StringIO(archive.read("best.csv").decode())))
        runs = list(csv.DictReader(io.StringIO(archive.read("runs.csv").decode())))
        archive.extract(best[0]["image"], tmp_path / "unzipped")
    expected = best_prompts(frame, 6)
    assert len(expected) == 5
    assert [(r["prompt"], r["mean"]) for r in best] == [(b.prompt, b.mean) for b in expected]
    assert [r["image"] for r in table] == [r["image"] for r in best] == [f"images/{b.image}" for b in expected]
    assert {r["image"] for r in runs} == {f"images/{i}" for i in ok["image"]} | {""}
    meta = read_image_metadata(tmp_path / "unzipped" / best[0]["image"])
    assert meta.promptlab_record is not None and meta.parameters.prompt.startswith(SUBJECT_A1111)


def test_zip_top_keeps_only_those_variants(experiment: tuple[pd.DataFrame, Path], tmp_path: Path) -> None:
    frame, root = experiment
    keys = {b.variant_key for b in best_prompts(frame, 2)}
    wanted = {f"images/{i}" for i in frame[frame["variant_key"].isin(keys)]["image"]}
    result = export_zip(_absolute(frame, root), tmp_path / "top.zip", top=2, experiment="fox")
    with zipfile.ZipFile(result.path) as archive:
        images = {n for n in archive.namelist() if n.startswith("images/")}
        runs = list(csv.DictReader(io.StringIO(archive.read("runs.csv").decode())))
    assert result.variants == 2 and images == wanted and result.images == len(wanted) == 3
    assert {r["variant_key"] for r in runs} == keys


def test_zip_names_same_named_files_from_two_folders_apart(experiment: tuple[pd.DataFrame, Path], tmp_path: Path) -> None:
    frame, root = experiment
    other = tmp_path / "other"
    other.mkdir()
    (other / "00.png").write_bytes((root / "01.png").read_bytes())
    frame = _absolute(frame, root)
    frame.loc[frame["run_id"] == 1, "image"] = str(other / "00.png")
    result = export_zip(frame, tmp_path / "two.zip", experiment="fox")
    with zipfile.ZipFile(result.path) as archive:
        runs = {int(r["run_id"]): r["image"] for r in csv.DictReader(io.StringIO(archive.read("runs.csv").decode()))}
        assert runs[0] == "images/00.png" and runs[1] == "images/1-00.png"
        assert archive.read(runs[1]) == (root / "01.png").read_bytes()
        assert archive.read(runs[0]) == (root / "00.png").read_bytes()


def test_exports_from_a_real_store(tmp_path: Path) -> None:
    from promptlab.metadata import run_png
    from promptlab.store import RunRecord, ScoreRecord, open_store

    with open_store() as store:
        experiment = store.get_or_create_experiment("fox", {"name": "fox"}, subject=SUBJECT)
        for index, (style, terms) in enumerate(STYLES.items()):
            for seed in SEEDS:
                record = RunRecord(
                    experiment_id=experiment.id,
                    variant_key=f"v{index}",
                    seed=seed,
                    prompt=Prompt(SUBJECT, terms),
                    model="tiny",
                    negative_prompt=NEGATIVE,
                    params={"num_inference_steps": 2, "guidance_scale": 7.0, "scheduler": "euler"},
                    label=style or "no style",
                    axes={"style": style},
                )
                picture = Image.new("RGB", (16, 16), _colour(index * 2 + seed))
                scores = [ScoreRecord("intent", "clip", float(index + seed), SUBJECT)]
                store.record_run(record, run_png(record, picture, scores, "fox"), scores)
        frame = store.runs_frame("fox")
        home = store.home
    rows = json.loads(export_best(frame, "json", experiment="fox", top=3))["prompts"]
    assert [r["label"] for r in rows] == ["oil painting", "pop-art", "no style"]
    plan = plan_grid(frame, "style", "seed", images_root=home)
    assert plan.x_labels == ["no style", "pop-art", "oil painting"] and plan.cell(1, 2).score == 3.0
    result = export_zip(frame, tmp_path / "store.zip", home, experiment="fox")
    with zipfile.ZipFile(result.path) as archive:
        name = json.loads(archive.read("best.json"))["prompts"][0]["image"]
        assert archive.read(name) == Path(rows[0]["image"]).read_bytes()


def test_grid_cells_show_each_cells_best_run_with_an_image(tmp_path: Path) -> None:
    # Random runs: some cells empty, some with only failed runs, repeated runs, scores missing or tied.
    import numpy as np

    rng = np.random.default_rng(7)
    Image.new("RGB", (8, 8)).save(tmp_path / "image.png")
    rows = []
    for style in range(6):
        for seed in range(9):
            for _ in range(rng.integers(0, 4)):
                ok = rng.random() > 0.2
                rows.append(
                    {
                        "run_id": len(rows) + 1, "variant_key": f"v{style}", "label": f"s{style}", "seed": seed,
                        "subject": "cat", "score": np.nan if rng.random() < 0.2 else float(rng.integers(0, 3)),
                        "image": "image.png" if ok else None, "prompt": "p", "negative_prompt": "",
                        "status": "ok" if ok else "failed", "axis:style": f"style {style}" if style else None,
                    }
                )  # fmt: skip
    frame = pd.DataFrame(rows)
    plan = plan_grid(frame, "style", "seed", images_root=tmp_path)
    for cell in plan.cells:
        style = frame["axis:style"].fillna("").map(lambda s: plan.x_labels.index(s or "no style"))
        here = frame[(style == cell.column) & (frame["seed"] == int(plan.y_labels[cell.row].split()[1]))]
        usable = here[here["status"] == "ok"]
        if here.empty:
            assert (cell.status, cell.n_runs) == ("missing", 0)
        elif usable.empty:
            assert (cell.status, cell.n_runs) == ("failed", len(here))
        else:
            scored = usable.dropna(subset=["score"])
            best = scored.loc[scored["score"].idxmax()] if len(scored) else usable.iloc[0]
            assert (cell.status, cell.n_runs, cell.run_id) == ("ok", len(here), best["run_id"])
    assert {cell.status for cell in plan.cells} == {"ok", "failed", "missing"}


def test_every_format_name_has_a_writer_and_a_file_type_and_the_package_loads_lazily() -> None:
    import subprocess
    import sys

    from promptlab.export.names import EXPORT_FORMAT_NAMES

    assert tuple(EXPORT_FORMATS) == EXPORT_FORMAT_NAMES == tuple(EXPORT_FILE_TYPES)
    # The CLI reads the names at startup: neither they nor the package pull in pandas.
    code = "import sys, promptlab.export, promptlab.export.names; print('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_grid_cell_scores_are_the_variants_means_and_intervals(experiment: tuple[pd.DataFrame, Path]) -> None:
    from promptlab.analysis import variant_table
    from promptlab.export.grid import cell_scores

    frame, root = experiment
    cells = cell_scores(frame, "guidance_scale", "style")
    plan_cells = plan_grid(frame, "guidance_scale", "style", cell_size=8, images_root=root).cells
    assert [(c.row, c.column) for c in cells] == [(c.row, c.column) for c in plan_cells]
    # each cell is one variant here: its mean and 95% interval are variant_table's
    for cell, variant in zip(cells, variant_table(frame)):
        assert cell.run_ids == tuple(frame.loc[frame["variant_key"] == variant.variant_key, "run_id"])
        assert cell.n_seeds == variant.n
        assert _none(cell.mean) == _none(variant.mean)
        assert _none(cell.ci_low) == pytest.approx(_none(variant.ci_low))
        assert _none(cell.ci_high) == pytest.approx(_none(variant.ci_high))
    # known numbers: no style at 5.0 is runs 0 and 1 (seeds 0 and 1), scores 0 and 7
    first = cells[0]
    assert (first.run_ids, first.seeds, first.mean) == ((0, 1), (0, 1), 3.5)
    half = 12.706204736 * np.std([0.0, 7.0], ddof=1) / math.sqrt(2)  # t(1 df, 0.975)
    assert (first.ci_low, first.ci_high) == pytest.approx((3.5 - half, 3.5 + half))
    # pop-art at 7.5 has one seed: a mean, no interval; oil painting at 7.5 failed: no mean
    assert (cells[3].n_seeds, math.isnan(cells[3].ci_low)) == (1, True)
    assert (cells[5].n_seeds, math.isnan(cells[5].mean), cells[5].run_ids) == (0, True, (9, 10))


def test_grid_cell_scores_with_seed_as_an_axis_are_single_runs(experiment: tuple[pd.DataFrame, Path]) -> None:
    from promptlab.export.grid import cell_scores

    frame, _ = experiment
    frame = frame[frame["axis:guidance_scale"] == 5.0]
    cells = cell_scores(frame, "seed", "style")
    scores = dict(zip(frame["run_id"], frame["score"]))
    for cell in cells:
        assert len(cell.run_ids) == 1 and cell.mean == scores[cell.run_ids[0]] and math.isnan(cell.ci_high)


def test_grid_levels_and_keep_levels_use_the_grids_labels(experiment: tuple[pd.DataFrame, Path]) -> None:
    from promptlab.export.grid import grid_levels, keep_levels

    frame, root = experiment
    levels = grid_levels(frame)
    assert levels == {
        "style": ["no style", "pop-art", "oil painting"],
        "guidance_scale": ["guidance_scale: 5", "guidance_scale: 7.5"],
        "seed": ["seed 0", "seed 1"],
        "subject": [SUBJECT],
    }
    kept = keep_levels(frame, {"style": ["no style", "oil painting"], "seed": ["seed 1"]})
    assert list(kept["run_id"]) == [1, 3, 8, 10]
    plan = plan_grid(kept, "style", "guidance_scale", cell_size=8, images_root=root)
    assert plan.x_labels == ["no style", "oil painting"]
    assert keep_levels(frame, {}).equals(frame)
    with pytest.raises(ExportError, match="unknown axis 'artist'"):
        keep_levels(frame, {"artist": []})
    with pytest.raises(ExportError, match="no level 'cubism'"):
        keep_levels(frame, {"style": ["cubism"]})
