"""The ``promptlab`` command: a thin shell over the library.

Each command parses its input, calls one library function and prints the result, as text
or, with ``--format json``, as JSON for scripts. A ``PromptlabError`` becomes one red line on
stderr and exit code 1 (``promptlab --debug ...`` prints its traceback and causes instead).
Commands that only read open the store read-only. Heavy libraries are imported inside the
commands that need them, so ``promptlab --help`` starts fast.
"""

from __future__ import annotations

import json
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from promptlab.errors import PromptlabError
from promptlab.prompt import SOURCE_SYNTAXES, SYNTAXES
from promptlab.render.params import LONG_PROMPT_POLICIES, RENDER_PARAM_NAMES, TASKS

app = typer.Typer(
    name="promptlab",
    help="Measured prompt experiments for Stable Diffusion: build, render, score, track, compare, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
vocab_app = typer.Typer(help="Browse the prompt vocabularies.", no_args_is_help=True)
prompt_app = typer.Typer(help="Build, count and convert prompts.", no_args_is_help=True)
model_app = typer.Typer(help="Inspect Stable Diffusion models.", no_args_is_help=True)
runs_app = typer.Typer(help="Browse recorded runs.", no_args_is_help=True)
experiments_app = typer.Typer(help="Browse experiments.", no_args_is_help=True)
db_app = typer.Typer(help="The run database.", no_args_is_help=True)
micro_app = typer.Typer(help="The micro-world: scenes promptlab draws, and the micro models trained on them.", no_args_is_help=True)
app.add_typer(vocab_app, name="vocab")
app.add_typer(prompt_app, name="prompt")
app.add_typer(model_app, name="model")
app.add_typer(runs_app, name="runs")
app.add_typer(experiments_app, name="experiments")
app.add_typer(db_app, name="db")
app.add_typer(micro_app, name="micro")
# Set by --debug: errors print their traceback and causes (the SQL behind a database error).
_DEBUG = False


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="On an error, print its traceback and causes instead of one line."),
) -> None:
    global _DEBUG
    _DEBUG = debug


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def _choices(name: str, values: Any) -> Any:
    """A typer choice type whose values are the library's own names (one source for each list)."""
    return Enum(name, {value: value for value in values}, type=str)


Syntax = _choices("Syntax", SYNTAXES)
SourceSyntax = _choices("SourceSyntax", SOURCE_SYNTAXES)
Task = _choices("Task", TASKS)
LongPrompt = _choices("LongPrompt", LONG_PROMPT_POLICIES)


FORMAT_OPTION = typer.Option(OutputFormat.text, "--format", help="text for people, json for scripts.")
VOCAB_OPTION = typer.Option(
    None, "--vocab", help="Your own vocabulary folder; adds to and overrides the bundled one (also PROMPTLAB_VOCAB)."
)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _vocab(vocab_dir: Optional[Path]) -> Any:
    from promptlab.vocab import load_vocab

    return load_vocab([vocab_dir] if vocab_dir else [])


@vocab_app.command("list")
def vocab_list(
    category: Optional[str] = typer.Argument(None, help="A category; omit to list the categories."),
    vocab_dir: Optional[Path] = VOCAB_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """List the categories, or one category's terms with what each does to an image."""
    vocab = _vocab(vocab_dir)
    if category is None:
        rows = [
            {"category": c.name, "terms": len(c.terms), "description": c.description}
            for c in vocab.categories.values()
        ]
        if fmt is OutputFormat.json:
            return emit_json(rows)
        width = max(len(r["category"]) for r in rows)
        for r in rows:
            typer.echo(f"{r['category']:<{width}}  {r['terms']:>3} terms  {r['description']}")
        return None
    terms = vocab.category(category).terms
    rows = [{"category": t.category, "text": t.text, "description": t.description} for t in terms]
    if fmt is OutputFormat.json:
        return emit_json(rows)
    width = max((len(r["text"]) for r in rows), default=0)
    for r in rows:
        typer.echo(f"{r['text']:<{width}}  {r['description']}")
    return None


@prompt_app.command("build")
def prompt_build(
    subject: str = typer.Option(..., "--subject", help="What the image shows, e.g. 'fat cat lies on the couch'."),
    term: list[str] = typer.Option([], "--term", help="CATEGORY=TEXT[:WEIGHT], repeatable, in prompt order."),
    negative: str = typer.Option("", "--negative", help="Negative prompt text."),
    negative_preset: list[str] = typer.Option([], "--negative-preset", help="A negative preset name, repeatable."),
    syntax: Syntax = typer.Option(Syntax.compel, "--syntax", help="Weight syntax of the printed prompt."),
    vocab_dir: Optional[Path] = VOCAB_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Build a prompt from a subject and vocabulary terms; print it with its token count and warnings."""
    from promptlab.compose import compose

    built = compose(
        subject,
        term,
        negative=negative,
        negative_presets=negative_preset,
        syntax=syntax.value,
        vocab=_vocab(vocab_dir),
    )
    if fmt is OutputFormat.json:
        return emit_json(built.to_dict())
    typer.echo(f"prompt:          {built.text}")
    typer.echo(f"negative prompt: {built.negative_prompt}")
    typer.echo(f"tokens:          {built.token_count.total}/{built.token_count.window}")
    for warning in built.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    return None


@prompt_app.command("convert")
def prompt_convert(
    text: str = typer.Argument(..., help="The prompt text."),
    from_syntax: SourceSyntax = typer.Option(..., "--from", help="Syntax of TEXT."),
    to_syntax: Syntax = typer.Option(..., "--to", help="Syntax to write."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Convert a prompt between A1111 and Compel weight syntax (or strip the weights)."""
    from promptlab.prompt import convert

    converted = convert(text, from_syntax.value, to_syntax.value)
    if fmt is OutputFormat.json:
        return emit_json({"prompt": converted})
    typer.echo(converted)
    return None


class ScoreKind(str, Enum):
    intent = "intent"
    prompt = "prompt"


def _print_rows(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table: one line per row, the given columns."""
    if not rows:
        typer.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        typer.echo("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


@model_app.command("info")
def model_info(
    model: str = typer.Argument(..., help="Hub id, local diffusers folder, .safetensors file, or a built-in model (micro, tiny-sd, ...)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Show a model's pipeline class, family and components (class and library of each)."""
    import dataclasses

    from promptlab.render import model_info as describe

    info = describe(model)
    if fmt is OutputFormat.json:
        return emit_json(dataclasses.asdict(info))
    typer.echo(f"model:    {info.model}")
    typer.echo(f"pipeline: {info.pipeline_class}")
    typer.echo(f"family:   {info.family}")
    typer.echo(f"source:   {info.source.kind} {info.source.location}")
    _print_rows([dataclasses.asdict(c) for c in info.components], ["name", "class_name", "library"])
    return None


@model_app.command("schedulers")
def model_schedulers(
    model: str = typer.Argument(..., help="Hub id, local folder, .safetensors file, or a built-in model (micro, tiny-sd, ...)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """List the scheduler names a model can render with (diffusers classes and A1111 sampler names)."""
    import dataclasses

    from promptlab.render import list_schedulers

    rows = [dataclasses.asdict(c) for c in list_schedulers(model)]
    if fmt is OutputFormat.json:
        return emit_json(rows)
    _print_rows(rows, ["label", "name", "class_name"])
    return None


@app.command()
def render(
    prompt: str = typer.Argument(..., help="The prompt: compel syntax (term++, (term)1.3), or A1111's with --syntax a1111."),
    model: str = typer.Option(..., "--model", help="Hub id, local folder, .safetensors file, or a built-in model (micro, tiny-sd, ...)."),
    task: Task = typer.Option(Task.txt2img, "--task", help="What to render."),
    image: Optional[Path] = typer.Option(None, "--image", help="Init image (img2img, inpaint, depth2img)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Inpaint mask: white is repainted."),
    depth: Optional[Path] = typer.Option(None, "--depth", help="Depth map for depth2img (default: estimated)."),
    strength: float = typer.Option(0.8, "--strength", help="How much of the init image is repainted (0..1]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="First seed; images get seed, seed+1, ... (default: random)."),
    count: int = typer.Option(1, "-n", "--count", help="How many images."),
    steps: int = typer.Option(30, "--steps", help="num_inference_steps."),
    guidance: float = typer.Option(7.5, "--guidance", help="guidance_scale (CFG)."),
    size: Optional[str] = typer.Option(None, "--size", help="WIDTHxHEIGHT, multiples of 8 (default: the model's)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Scheduler or A1111 sampler name, e.g. 'DPM++ 2M Karras'."),
    negative: str = typer.Option("", "--negative", help="Negative prompt."),
    vae: Optional[str] = typer.Option(None, "--vae", help="A separate VAE: hub id, folder or file."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float16, bfloat16 or float32 (default: fp16 on CUDA, fp32 on CPU)."),
    device: Optional[str] = typer.Option(None, "--device", help="cuda, mps or cpu (default: the best available)."),
    long_prompt: LongPrompt = typer.Option(LongPrompt.truncate, "--long-prompt", help="Past 75 tokens: truncate, or chunk (compel)."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow a pickle .ckpt file (loading one can run code)."),
    syntax: SourceSyntax = typer.Option(SourceSyntax.compel, "--syntax", help="Weight syntax of the prompt and negative prompt."),
    out: Path = typer.Option(Path("."), "--out", help="Folder for the PNG files."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Render a prompt to PNG files (with A1111-readable metadata) and log the runs in the store."""
    from promptlab.render import ModelSpec, RenderParams, RenderRequest, parse_size
    from promptlab.runner import render_to_files
    from promptlab.store import open_store

    width, height = parse_size(size) if size else (None, None)
    params = RenderParams(
        task=task.value,
        num_inference_steps=steps,
        guidance_scale=guidance,
        width=width,
        height=height,
        negative_prompt=negative,
        strength=strength,
        scheduler=scheduler,
        image=str(image) if image else None,
        mask_image=str(mask) if mask else None,
        depth_map=str(depth) if depth else None,
        long_prompt=long_prompt.value,
    )
    spec = ModelSpec(model, vae=vae, dtype=dtype, device=device, allow_pickle=allow_pickle)
    request = RenderRequest(prompt=prompt, model=spec, params=params, seed=seed, count=count)
    with open_store() as store:
        files = render_to_files(request, out, store, syntax=syntax.value)
    if fmt is OutputFormat.json:
        return emit_json([f.to_dict() for f in files])
    for f in files:
        typer.echo(str(f.path))
    return None


@app.command()
def run(
    experiment: Path = typer.Argument(..., help="An experiment TOML file (see examples/squirrel-styles.toml)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per pipeline call (default: the file's)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Run an experiment: render, score and record every cell not yet in the store (resumable)."""
    from promptlab.experiment import load_experiment
    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    spec = load_experiment(experiment)
    with open_store() as store, _progress_bar(f"{spec.name}") as progress:
        summary = run_experiment(spec, store, batch_size=batch_size, progress=progress)
    _report_summary(summary, fmt)
    if not summary.ok:
        raise typer.Exit(1)


@app.command()
def demo(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Run the bundled demo experiment on the built-in micro models (seconds on a CPU)."""
    from promptlab.demo import run_demo
    from promptlab.store import open_store

    with open_store() as store, _progress_bar("demo") as progress:
        summary = run_demo(store, progress=progress)
    _report_summary(summary, fmt)
    if fmt is OutputFormat.text:
        typer.echo("Next: promptlab analyze demo   |   promptlab dashboard")
    if not summary.ok:
        raise typer.Exit(1)


@micro_app.command("train")
def micro_train(
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for micro/ and micro-clip/ (default: the package's own weights)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the scenes, captions, initial weights and batches."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: torch's choice)."),
    only: Optional[str] = typer.Option(None, "--only", help="Train one model only: micro or micro-clip (each has its own seeds)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Retrain micro and micro-clip from seeds (under an hour on 2 CPU cores)."""
    import shlex

    import torch
    from tqdm import tqdm

    from promptlab.micro import WEIGHTS_DIR
    from promptlab.micro.train import MODELS, TrainConfig, train_all

    if threads is not None:
        torch.set_num_threads(threads)
    bars: dict[str, Any] = {}

    def progress(stage: str, step: int, total: int, loss: float) -> None:
        if stage not in bars:
            for bar in bars.values():
                bar.close()
            bars[stage] = tqdm(desc=stage, total=total, unit="step", file=sys.stderr, dynamic_ncols=True)
        bars[stage].update(1)
        bars[stage].set_postfix(loss=f"{loss:.4f}", refresh=False)

    command = shlex.join(["promptlab", *sys.argv[1:]])
    try:
        report = train_all(out or WEIGHTS_DIR, TrainConfig(seed=seed), command, progress, (only,) if only else MODELS)
    finally:
        for bar in bars.values():
            bar.close()
    if fmt is OutputFormat.json:
        return emit_json(report.to_dict())
    minutes = ", ".join(f"{stage} {seconds / 60:.1f}" for stage, seconds in report.seconds.items())
    folders = {"micro": report.micro, "micro-clip": report.micro_clip}
    typer.echo("\n".join(f"{name}: {folders[name]}" for name in report.models) + f"\nminutes: {minutes}")
    return None


@micro_app.command("draw")
def micro_draw(
    caption: str = typer.Argument(..., help="A caption, e.g. 'a red circle on a black background, small, left, sunlight'."),
    out: Path = typer.Option(Path("scene.png"), "-o", "--out", help="PNG file to write."),
    seed: int = typer.Option(0, "--seed", help="Picks what the caption leaves out, and jitters the shape."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Draw the micro-world scene a caption describes (the ground truth micro learns from)."""
    import dataclasses

    from promptlab.micro.world import draw, scene_for

    scene = scene_for(caption, seed)
    draw(scene, seed).save(out)
    if fmt is OutputFormat.json:
        return emit_json({"path": str(out), "caption": scene.caption(), "scene": dataclasses.asdict(scene)})
    typer.echo(f"{out}: {scene.caption()}")
    return None


@micro_app.command("judge")
def micro_judge(
    images: list[Path] = typer.Argument(..., help="Images to read (micro renders or drawn scenes)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Read shape, colour, background, size and position back from each image's pixels."""
    import dataclasses

    from promptlab.micro.world import judge
    from promptlab.scoring import open_image

    rows = [{"image": str(path), **dataclasses.asdict(judge(open_image(path)))} for path in images]
    if fmt is OutputFormat.json:
        return emit_json(rows)
    _print_rows(rows, ["image", "color", "shape", "background", "size", "position"])
    return None


def _progress_bar(name: str) -> Any:
    """A tqdm bar fed by the runner's progress callback: cells done / total, images/s, ETA."""
    from contextlib import contextmanager

    from tqdm import tqdm

    @contextmanager
    def bar() -> Any:
        with tqdm(desc=name, unit="img", file=sys.stderr, dynamic_ncols=True) as t:

            def update(p: Any) -> None:
                t.total = p.total
                t.n = p.done
                t.set_postfix(failed=p.failed, skipped=p.skipped, refresh=False)
                t.refresh()

            yield update

    return bar()


def _report_summary(summary: Any, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        emit_json(summary.to_dict())
        return
    taken = f"{summary.taken} left to other runs, " if summary.taken else ""
    typer.echo(
        f"{summary.experiment}: {summary.rendered} rendered, {summary.skipped} already done, {taken}"
        f"{summary.failed} failed of {summary.total_cells} cells in {summary.seconds:.1f}s"
    )
    for error in summary.to_dict()["errors"][:10]:
        typer.secho(f"failed: {error['label']} seed {error['seed']}: {error['error']}", fg=typer.colors.RED, err=True)


@runs_app.command("list")
def runs_list(
    experiment: Optional[str] = typer.Option(None, "--experiment", help="Only this experiment (name or id)."),
    search: Optional[str] = typer.Option(None, "--search", help="Only runs whose prompt contains this text."),
    limit: int = typer.Option(50, "--limit", help="At most this many runs, newest first."),
    offset: int = typer.Option(0, "--offset", help="Skip this many runs first."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """List recorded runs, newest first."""
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        runs = store.list_runs(experiment=experiment, search=search, limit=limit, offset=offset)
    rows = [_run_json(r) for r in runs]
    if fmt is OutputFormat.json:
        return emit_json(rows)
    for row in rows:
        row["score"] = "" if row["scores"].get("intent") is None else f"{row['scores']['intent']:.2f}"
    _print_rows(rows, ["id", "experiment", "seed", "status", "score", "prompt"])
    return None


@runs_app.command("show")
def runs_show(run_id: int = typer.Argument(..., help="The run's id."), fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Show everything recorded about one run (and whether its image file is missing or changed)."""
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        view = store.get_run(run_id)
        row = _run_json(view, full=True)
        row["image_problem"] = store.image_problem(view.image_sha256) if view.image_sha256 else None
    if row["image_problem"]:
        typer.secho(
            f"warning: the image file of run {run_id} is {row['image_problem']} ({row['image']}); "
            "promptlab run on its experiment file renders it again",
            fg=typer.colors.YELLOW,
            err=True,
        )
    if fmt is OutputFormat.json:
        return emit_json(row)
    for key, value in row.items():
        typer.echo(f"{key + ':':<17}{json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
    return None


def _run_json(view: Any, full: bool = False) -> dict[str, Any]:
    """A run as the CLI prints it: its columns, params flattened in, scores by kind."""
    data = view.model_dump(mode="json")
    row: dict[str, Any] = {
        "id": data["id"],
        "experiment": data["experiment"],
        "label": data["label"],
        "prompt": data["prompt"],
        "negative_prompt": data["negative_prompt"],
        "seed": data["seed"],
        "model": data["model"],
        "task": data["task"],
    }
    params = data["params"]
    for name in RENDER_PARAM_NAMES:
        row[name] = params.get(name)
    row.update(
        status=data["status"],
        error=data["error"],
        image=data["image_path"],
        scores={s["kind"]: s["value"] for s in data["scores"]},
        created_at=data["created_at"],
    )
    if full:
        row.update(
            prompt_a1111=data["prompt_a1111"],
            intent=data["intent"],
            terms=data["terms"],
            axes=data["axes"],
            params=params,
            score_details=data["scores"],
            render_s=data["render_s"],
            score_s=data["score_s"],
        )
    return row


@experiments_app.command("list")
def experiments_list(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """List experiments with their run counts."""
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        rows = [e.model_dump(mode="json") for e in store.list_experiments()]
    if fmt is OutputFormat.json:
        return emit_json(rows)
    _print_rows(rows, ["id", "name", "runs", "ok", "failed", "subject"])
    return None


@db_app.command("path")
def db_path(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Print where the database lives (the SQLite file, or the database URL)."""
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        path = store.db_path()
        data = {"url": store.url, "path": str(path) if path else None, "home": str(store.home)}
    if fmt is OutputFormat.json:
        return emit_json(data)
    typer.echo(data["path"] or data["url"])
    return None


@app.command()
def analyze(
    experiment: str = typer.Argument(..., help="Experiment name or id."),
    score: ScoreKind = typer.Option(ScoreKind.intent, "--score", help="intent: against what the image should show; prompt: against its own prompt."),
    effect_size: float = typer.Option(1.0, "--effect-size", help="The effect (score points) the seeds-needed column plans 80% power for."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Variants with mean score and 95% t-interval, and each term's and parameter's effect (paired by seed, adjusted for the other axes, starred after Holm)."""
    from promptlab.analysis import analyze as run_analysis
    from promptlab.analysis import format_report
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        frame = store.runs_frame(experiment, score.value)
    result = run_analysis(frame, score_kind=score.value, effect_size=effect_size, experiment=experiment)
    if fmt is OutputFormat.json:
        return emit_json(result.to_dict())
    for line in format_report(result):
        typer.echo(line)
    return None


@app.command()
def score(
    images: list[Path] = typer.Argument(..., help="PNG/JPEG/WebP files to score."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="The text to score against (default: each image's own prompt from its metadata)."),
    model: str = typer.Option("clip", "--model", help="'clip' (ViT-L-14-quickgelu, OpenAI weights), micro-clip, tiny-clip, or an open_clip model name with --pretrained."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Pretrained tag (e.g. laion2b_s32b_b79k) or local weights file for --model."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """CLIPScore (100 * max(cos, 0)) of each image against a prompt or its own recorded prompt."""
    from promptlab.scoring import load_scorer, score_files

    texts = [prompt if prompt is not None else _image_prompt(path) for path in images]
    scorer = load_scorer(f"{model}:{pretrained}" if pretrained else model)
    results = score_files(images, texts, scorer)
    if fmt is OutputFormat.json:
        return emit_json([r.to_dict() for r in results])
    for r in results:
        typer.echo(f"{r.value:6.2f}  {r.image}")
    return None


def _image_prompt(path: Path) -> str:
    """The plain prompt an image was made with, read from its metadata by the importer."""
    from promptlab.importer import import_image
    from promptlab.prompt import convert

    return convert(import_image(path).prompt, "compel", "plain")


class ExportFormat(str, Enum):
    json = "json"
    csv = "csv"
    markdown = "markdown"
    a1111_styles = "a1111-styles"
    fooocus_styles = "fooocus-styles"
    compel = "compel"
    a1111 = "a1111"


@app.command()
def export(
    experiment: str = typer.Argument(..., help="Experiment name or id."),
    to: ExportFormat = typer.Option(ExportFormat.json, "--to", help="Format of the best-prompts export."),
    top: int = typer.Option(5, "--top", help="How many of the best prompts."),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write (default: print; required for --grid/--zip)."),
    grid: bool = typer.Option(False, "--grid", help="Write a labelled X/Y grid image instead (with --x, --y, --out FILE.png)."),
    x: Optional[str] = typer.Option(None, "--x", help="Grid columns: an axis (e.g. style) or seed."),
    y: Optional[str] = typer.Option(None, "--y", help="Grid rows: an axis or seed."),
    zip_: bool = typer.Option(False, "--zip", help="Write a zip of the images (metadata intact) and the table."),
    score: ScoreKind = typer.Option(ScoreKind.intent, "--score", help="Rank by the intent or the own-prompt score."),
) -> None:
    """Export an experiment's best prompts (JSON, CSV, Markdown, A1111/Fooocus styles, prompt lists), a grid, or a zip."""
    from promptlab.errors import ExportError
    from promptlab.export import export_best, export_zip, grid_image, write_best
    from promptlab.store import open_store

    if (grid or zip_) and out is None:
        raise ExportError(f"--{'grid' if grid else 'zip'} needs --out FILE")
    with open_store(read_only=True) as store:
        frame = store.runs_frame(experiment, score.value)
        name = store.get_experiment(experiment).name
        if grid:
            if not x or not y:
                raise ExportError("--grid needs --x AXIS and --y AXIS (an axis name such as style, or seed)")
            grid_image(frame, x, y).save(out)
        elif zip_:
            export_zip(frame, out, top=top, experiment=name)
        elif out is not None:
            write_best(frame, to.value, out, experiment=name, top=top)
        else:
            typer.echo(export_best(frame, to.value, experiment=name, top=top), nl=False)
            return None
    typer.echo(str(out), err=True)
    return None


@app.command("import")
def import_(
    files: list[Path] = typer.Argument(..., help="Images (A1111, ComfyUI, InvokeAI, Fooocus, SwarmUI, NovelAI, promptlab) or styles.csv / Fooocus style JSON."),
    store_runs: bool = typer.Option(False, "--store", help="Add the images to the store as runs of the experiment 'imported'."),
    vocab_dir: Optional[Path] = typer.Option(None, "--vocab", help="Save imported styles as negative presets and templates into this vocabulary folder."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Read prompts and parameters from other tools' images and style files."""
    from promptlab.importer import import_paths, save_styles_as_vocab, store_imported
    from promptlab.store import open_store

    batch = import_paths(files)
    if store_runs and batch.prompts:
        with open_store() as store:
            for imported in batch.prompts:
                store_imported(store, imported)
    if vocab_dir is not None and batch.styles:
        save_styles_as_vocab(batch.styles, vocab_dir)
    if fmt is OutputFormat.json:
        return emit_json(batch.to_dict())
    for imported in batch.prompts:
        data = imported.to_dict()
        typer.echo(f"{data.get('file', '')}:")
        for key, value in data.items():
            if key == "file" or value in (None, "", [], {}):
                continue
            if isinstance(value, list):
                typer.echo(f"  {key}:")
                for item in value:
                    typer.echo(f"    - {_printable(str(item))}")
            else:
                typer.echo(f"  {key + ':':<22}{_printable(str(value))}")
    for style in batch.styles:
        typer.echo(_printable(f"style {style.name!r}: {style.prompt}  |  negative: {style.negative_prompt}"))
    return None


def _printable(text: str) -> str:
    """Text from a file as a terminal shows it safely: control characters (an escape sequence in a
    hostile prompt could rewrite the screen) written as ``\\xNN``; tabs and line breaks kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@app.command()
def dashboard(
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to bind; localhost unless you open it up."),
) -> None:
    """Open the Streamlit dashboard, listening on this machine only unless --address says otherwise."""
    import subprocess

    from promptlab.dashboard import dashboard_command

    raise typer.Exit(subprocess.call(dashboard_command(port, address)))


def main() -> None:
    """Console entry point: promptlab's errors become one red line and exit code 1."""
    try:
        app()
    except PromptlabError as error:
        if _DEBUG:
            import traceback

            traceback.print_exception(error, file=sys.stderr)
        # One line whatever the message holds: a quoted file's newlines and control characters are shown, not printed.
        message = _printable(" ".join(str(error).split("\n")))
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except SystemExit as done:
        # typer exits 2 on a command-line mistake; every user mistake exits 1 here.
        sys.exit(1 if done.code == 2 else done.code)


if __name__ == "__main__":
    main()
