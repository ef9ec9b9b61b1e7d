"""Run: pick an experiment file (saved or just built), set model, task, params and seeds, upload
input images for the image tasks, and run it with a progress bar, images showing as they finish."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from promptlab.dashboard import data, state
from promptlab.errors import ExperimentError, PromptlabError
from promptlab.experiment import (
    INPUT_KEYS,
    PROMPT_SYNTAXES,
    TASK_INPUTS,
    TASKS,
    default_scorer,
    parse_experiment,
    read_seeds,
    scorer_keys,
    scorer_text,
    to_toml,
)
from promptlab.paths import examples_dir
from promptlab.render.models import BUILTIN_MODELS
from promptlab.render.params import MAX_SIDE, MAX_STEPS

if TYPE_CHECKING:
    from promptlab.runner import RunSummary
if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

EXAMPLES_DIR = examples_dir()
COLUMNS = 6


def experiment_files() -> list[Path]:
    """Saved experiment files (PROMPTLAB_HOME/experiments), then the bundled examples."""
    saved = sorted(data.experiments_dir().glob("*.toml"))
    return saved + sorted(EXAMPLES_DIR.glob("*.toml"))


def page() -> None:
    st.title("Run an experiment")
    files = experiment_files()
    if not files:
        st.info("No experiment file yet: build one on the **Build** page.")
        return
    chosen = st.session_state.get("run_file")
    names = [str(f) for f in files]
    source = Path(st.selectbox("Experiment file", names, index=names.index(chosen) if chosen in names else 0,
                               key="run_source"))  # fmt: skip
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        data.show_error(ExperimentError(f"{source}: cannot read it as TOML: {error}"))
        return
    try:
        raw, complete = _settings(raw, source)
        text = to_toml(raw)
    except PromptlabError as error:
        data.show_error(error)
        return
    if not complete:
        return
    with st.expander("Experiment file to run"):
        st.code(text, language="toml")
    target = data.experiments_dir() / f"{raw['name']}.toml"
    try:
        spec = parse_experiment(text, target, vocab=data.vocab())
    except PromptlabError as error:
        data.show_error(error)
        return
    st.caption(f"{len(spec.seeds)} seeds; saved to {target} when run.")
    if spec.name in {e.name for e in data.experiments()}:
        said = f"{spec.name} in the store: {state.state_text(spec.name)}."
        if state.incomplete(spec.name):
            st.warning(f"{said} Run renders the cells not done yet and retries the failed ones.")
        else:
            st.caption(said)
    if st.button("Run", type="primary", key="run_start") and data.save_text(target, text):
        run_with_progress(spec)


def _settings(raw: dict[str, Any], source: Path) -> tuple[dict[str, Any], bool]:
    """The file's values, as changed by the widgets (the widgets start at the file's values), and
    whether every widget holds a valid value (a refused one is marked where it is)."""
    key = f"run_{source.stem}"
    raw["name"] = st.text_input("Experiment name", value=raw.get("name", source.stem), key=f"{key}_name")
    left, middle, right = st.columns(3)
    models = list(BUILTIN_MODELS)
    model = raw.get("model", "micro")
    raw["model"] = left.text_input("Model (hub id, folder, .safetensors or " + ", ".join(models) + ")",
                                   value=model, key=f"{key}_model")  # fmt: skip
    task = raw.get("task", "txt2img")
    raw["task"] = middle.selectbox("Task", TASKS, index=TASKS.index(task) if task in TASKS else 0, key=f"{key}_task")
    scorer = right.text_input("Scorers", value=scorer_text(raw), placeholder=default_scorer([raw["model"]]), key=f"{key}_scorer",
                              help="Empty: the model's own (micro-clip for micro, else clip). Several, comma-separated: "
                                   "every image gets each score; the first ranks.")  # fmt: skip
    raw.pop("scorer", None)
    raw.pop("scorers", None)
    raw |= scorer_keys(scorer)
    syntax = raw.get("syntax", "compel")
    raw["syntax"] = st.radio("Syntax of the subject and negative prompt", PROMPT_SYNTAXES, horizontal=True,
                             index=PROMPT_SYNTAXES.index(syntax) if syntax in PROMPT_SYNTAXES else 0,
                             key=f"{key}_syntax")  # fmt: skip
    seeds = raw.get("seeds", 4)
    written = ", ".join(map(str, seeds)) if isinstance(seeds, list) else str(seeds)
    seeds_text = st.text_input("Seeds: a count N (seeds 1..N) or a list", value=written, key=f"{key}_seeds")
    complete = True
    try:
        raw["seeds"] = read_seeds(seeds_text, str(source))
    except ExperimentError as error:
        data.show_error(error)
        complete = False
    params = dict(raw.get("params", {}))
    cols = st.columns(5)
    # Each starts at the file's value; empty (as when the file sets none) is the model's own default.
    fields = {
        "num_inference_steps": ("Steps", int, 1, MAX_STEPS, 1),
        "guidance_scale": ("Guidance scale", float, 0.0, 50.0, 0.5),
        "width": ("Width", int, 8, MAX_SIDE, 8),
        "height": ("Height", int, 8, MAX_SIDE, 8),
    }
    for column, (param, (label, kind, low, high, step)) in zip(cols, fields.items()):
        written = params.pop(param, None)
        value = column.number_input(label, kind(low), kind(high), None if written is None else kind(written), kind(step),
                                    placeholder="model's default", key=f"{key}_{param}")  # fmt: skip
        if value is not None:
            params[param] = kind(value)
    scheduler = cols[4].text_input("Scheduler", value=params.get("scheduler", ""), key=f"{key}_scheduler")
    params.pop("scheduler", None)
    if scheduler.strip():
        params["scheduler"] = scheduler.strip()
    if raw["task"] != "txt2img":
        params["strength"] = float(st.slider("Strength", 0.0, 1.0, float(params.get("strength", 0.75)), 0.05, key=f"{key}_strength"))
    else:
        params.pop("strength", None)
    raw["params"] = params
    _, accepted = TASK_INPUTS[raw["task"]]
    for name in INPUT_KEYS:
        if name not in accepted:
            raw.pop(name, None)
            continue
        upload = st.file_uploader(f"{name.capitalize()} ({raw['task']})", type=["png", "jpg", "jpeg", "webp"],
                                  key=f"{key}_{name}_upload")  # fmt: skip
        if upload is not None:
            raw[name] = str(data.writable_store().save_input(upload.getvalue(), Path(upload.name).suffix or ".png"))
        elif name in raw:
            raw[name] = str((source.parent / raw[name]).resolve())
    return raw, complete


def run_with_progress(spec) -> RunSummary | None:  # type: ignore[no-untyped-def]
    """Run ``spec`` into the store with a progress bar and each finished image as a thumbnail; its
    summary, or None after showing why it could not run."""
    from promptlab.runner import run_experiment

    bar = st.progress(0.0, text="Loading the model...")
    grid = st.container()
    row: list[Any] = []
    count = [0]

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        bar.progress(p.done / p.total if p.total else 1.0,
                     text=f"{p.done} of {p.total} images ({p.failed} failed, {p.skipped} already done), {p.elapsed_s:.1f} s")  # fmt: skip
        last = p.last
        if last is None:
            return
        if count[0] % COLUMNS == 0:
            row[:] = grid.columns(COLUMNS)
        cell = row[count[0] % COLUMNS]
        count[0] += 1
        if last.image:
            data.show_image(cell, last.image, f"{last.label}, seed {last.seed}: {data.score_text(last.scores.get('intent'))}", thumb=True)
        elif last.status == "taken":
            cell.caption(f"{last.label}, seed {last.seed}: recorded by another run")
        else:
            cell.error(f"{last.label}, seed {last.seed}: {last.error}")

    try:
        summary = run_experiment(spec, data.writable_store(), progress=progress)
    except PromptlabError as error:
        data.show_error(error)
        return None
    finally:
        data.refresh()
    st.success(f"{summary.rendered} rendered, {summary.failed} failed, {summary.skipped} already done, "
               f"in {summary.seconds:.1f} s.")  # fmt: skip
    return summary
