"""``promptlab model`` (a model's pipeline and schedulers) and ``promptlab micro`` (the micro-world's scenes, judge and training)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from promptlab.cli.base import FORMAT_OPTION, OutputFormat, emit_json, micro_app, model_app, print_rows


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
    print_rows([dataclasses.asdict(c) for c in info.components], ["name", "class_name", "library"])
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
    print_rows(rows, ["label", "name", "class_name"])
    return None


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
    print_rows(rows, ["image", "color", "shape", "background", "size", "position"])
    return None
