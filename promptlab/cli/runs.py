"""Rendering and running experiments, and reading what the store recorded: render, run, demo, runs, experiments, db, analyze, score."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from promptlab.cli.base import (
    FORMAT_OPTION,
    OPTIONS,
    SCORER_OPTION,
    LongPrompt,
    OutputFormat,
    ScoreKind,
    SourceSyntax,
    Task,
    app,
    db_app,
    emit_json,
    experiments_app,
    print_rows,
    runs_app,
)
from promptlab.render.params import RENDER_PARAM_NAMES


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
    embedding: Optional[list[str]] = typer.Option(None, "--embedding", help="A textual-inversion embedding FILE[:TOKEN] (A1111 .pt/.safetensors or diffusers); its token must be in the prompt. Repeatable."),
    controlnet: Optional[str] = typer.Option(None, "--controlnet", help="A ControlNet: hub id, folder or .safetensors file; needs --control-image."),
    control_image: Optional[Path] = typer.Option(None, "--control-image", help="The ControlNet's conditioning image (RGB or grayscale; its size is the render's unless --size)."),
    control_scale: Optional[float] = typer.Option(None, "--control-scale", help="controlnet_conditioning_scale (default 1.0; 0: no ControlNet effect)."),
    lora: Optional[list[str]] = typer.Option(None, "--lora", help="A LoRA FILE[:STRENGTH] (.safetensors, diffusers or kohya format), a name in PROMPTLAB_LORA_DIR, or a hub id; strength 1 if left out. Repeatable."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Render a prompt to PNG files (with A1111-readable metadata) and log the runs in the store."""
    from promptlab.render import ModelSpec, RenderParams, RenderRequest, parse_size
    from promptlab.render.adapters import parse_lora
    from promptlab.render.params import parse_embedding
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
        embeddings=tuple(parse_embedding(text) for text in embedding or ()),
        controlnet=controlnet,
        control_image=str(control_image) if control_image else None,
        controlnet_conditioning_scale=control_scale,
        loras=tuple(parse_lora(text) for text in lora or ()),
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
    processes: int = typer.Option(1, "--processes", help="Split the run between this many processes, started with accelerate launch: one per GPU, or CPU processes sharing the cores."),
    restarts: int = typer.Option(1, "--restarts", help="With --processes: when a process dies, start them all again this many times to render what is missing (0: stop)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Run an experiment: render, score and record every cell not yet in the store (resumable)."""
    from contextlib import nullcontext

    from promptlab.experiment import load_experiment
    from promptlab.runner import distributed, run_experiment
    from promptlab.store import open_store

    if processes != 1 and not distributed.launched():
        args = [*(["--debug"] if OPTIONS.debug else []), "run", str(experiment), "--format", fmt.value]
        args += ["--batch-size", str(batch_size)] if batch_size else []
        raise typer.Exit(distributed.launch_run(args, distributed.Launch(processes, restarts=restarts), show=_write_stderr))
    spec = load_experiment(experiment)
    main = distributed.is_main_process()
    with open_store() as store, (_progress_bar(spec.name) if main else nullcontext()) as progress:
        if distributed.launched():
            summary = distributed.run_distributed(spec, store, batch_size=batch_size, progress=progress)
        else:
            summary = run_experiment(spec, store, batch_size=batch_size, progress=progress)
    if main:
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


def _write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


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
    print_rows(rows, ["id", "experiment", "seed", "status", "score", "prompt"])
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
    print_rows(rows, ["id", "name", "runs", "ok", "failed", "subject"])
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
    scorer: Optional[str] = SCORER_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Variants with mean score and 95% t-interval, and each term's and parameter's effect (paired by seed, adjusted for the other axes, starred after Holm)."""
    from promptlab.analysis import analyze as run_analysis
    from promptlab.analysis import format_report, planned_cells
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        frame = store.runs_frame(experiment, score.value, scorer)
        row = store.get_experiment(experiment)
    planned = planned_cells(row.spec, row.source_path)
    result = run_analysis(frame, score_kind=score.value, effect_size=effect_size, experiment=experiment, planned=planned)
    if fmt is OutputFormat.json:
        return emit_json(result.to_dict())
    for line in format_report(result):
        typer.echo(line)
    return None


@app.command()
def score(
    images: Optional[list[Path]] = typer.Argument(None, help="PNG/JPEG/WebP files to score (or --experiment)."),
    scorer: Optional[str] = typer.Option(
        None, "--scorer", help="clip, aesthetic, pickscore, hps, micro-clip, micro-judge, NAME:TAG, or a weights file (default: clip)."
    ),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="Score the stored images of this experiment that the scorer has not scored yet."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="The text to score files against (default: each image's own prompt from its metadata)."),
    model: Optional[str] = typer.Option(None, "--model", help="An open_clip model name, with --pretrained (or use --scorer NAME:TAG)."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Pretrained tag (e.g. laion2b_s32b_b79k) or local weights file for --model."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Score image files against a prompt or their own recorded prompt, or give an experiment's stored images a scorer's scores."""
    from promptlab.errors import ScoringError
    from promptlab.scoring import load_scorer

    if pretrained and not model:
        raise ScoringError(f"--pretrained {pretrained} needs --model NAME (or use --scorer NAME:{pretrained})")
    if scorer and model:
        raise ScoringError(f"--scorer {scorer} and --model {model}: give one (--scorer NAME:TAG names an open_clip model too)")
    spec = scorer or (f"{model}:{pretrained}" if model and pretrained else model) or "clip"
    if experiment is not None:
        if images or prompt is not None:
            raise ScoringError("--experiment scores the experiment's stored images against their own texts: give no image files or --prompt")
        return _score_experiment(experiment, spec, fmt)
    if not images:
        raise ScoringError("nothing to score: give image files, or --experiment NAME")
    from promptlab.importer import image_prompt
    from promptlab.scoring import score_files, scorer_traits

    # A scorer that reads no text (aesthetic) needs no prompt, recorded or given.
    reads = scorer_traits(spec).reads_text
    texts = [prompt if prompt is not None else image_prompt(path) if reads else "" for path in images]
    results = score_files(images, texts, load_scorer(spec))
    if fmt is OutputFormat.json:
        return emit_json([r.to_dict() for r in results])
    for r in results:
        typer.echo(f"{r.value:6.2f}  {r.image}")
    return None


def _score_experiment(experiment: str, spec: str, fmt: OutputFormat) -> None:
    from tqdm import tqdm

    from promptlab.runner.rescore import score_runs
    from promptlab.scoring import load_scorer
    from promptlab.store import open_store

    with open_store() as store:
        store.get_experiment(experiment)  # an unknown name fails before the scorer loads
        loaded = load_scorer(spec)
        with tqdm(desc=f"{spec}", unit="img", disable=fmt is OutputFormat.json or not sys.stderr.isatty()) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = score_runs(store, experiment, loaded, progress=progress)
    if fmt is OutputFormat.json:
        return emit_json(result.to_dict())
    typer.echo(
        f"{result.experiment}: {result.scored} images scored by {result.scorer} in {result.seconds:.1f}s"
        + ("" if result.missing else " (every image had its scores already)")
    )
    return None
