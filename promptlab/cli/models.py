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


@micro_app.command("train-lora")
def micro_train_lora(
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the LoRA (default: the package's own, promptlab/micro/weights/micro-teal-lora)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the scenes, captions, the LoRA's initial weights and batches."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: torch's choice)."),
    seeds: int = typer.Option(16, "--seeds", min=2, help="Seeds of the strength sweep measured on the new LoRA and kept in its record."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Retrain micro's teal LoRA from seeds (minutes on a CPU): teal is a colour micro's palette lacks."""
    import shlex

    import torch
    from tqdm import tqdm

    from promptlab.builtin import MICRO_TEAL_LORA
    from promptlab.micro.lora import LoraConfig, train_and_save

    if threads is not None:
        torch.set_num_threads(threads)
    bar = tqdm(desc="lora", unit="step", file=sys.stderr, dynamic_ncols=True)

    def progress(stage: str, step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    command = shlex.join(["promptlab", *sys.argv[1:]])
    try:
        report = train_and_save(out or MICRO_TEAL_LORA, LoraConfig(seed=seed), command, progress, seeds)
    finally:
        bar.close()
    if fmt is OutputFormat.json:
        return emit_json(report.to_dict())
    minutes = ", ".join(f"{stage} {seconds / 60:.1f}" for stage, seconds in report.seconds.items())
    typer.echo(f"lora: {report.folder}\nminutes: {minutes}")
    return None


@micro_app.command("lora-sweep")
def micro_lora_sweep(
    lora: Optional[Path] = typer.Option(None, "--lora", help="A LoRA folder train-lora wrote (default: the shipped teal LoRA)."),
    seeds: int = typer.Option(16, "--seeds", min=2, help="Seeds per strength, paired across strengths."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Also write the teal pictures as a PNG grid: strength across, the first 4 seeds down."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Measure micro's teal LoRA: teal read by the judge at strengths 0 to 1, the paired effect of 1 against 0 with its 95% CI, and how little prompts without teal change."""
    from promptlab.builtin import MICRO_TEAL_LORA
    from promptlab.micro.lora_sweep import measure, sweep_grid

    sweep = measure(lora or MICRO_TEAL_LORA, tuple(range(seeds)))
    if grid is not None:
        sweep_grid(sweep).save(grid)
    if fmt is OutputFormat.json:
        return emit_json(sweep.to_dict())
    typer.echo(f"{sweep.prompt!r}, {len(sweep.seeds)} seeds:")
    levels = [
        {"strength": f"{v.strength:g}", "judged_teal": f"{v.judged_teal:.2f}", "teal_match": f"{v.teal_match:.2f}", "judge_score": f"{v.judge_score:.1f}"}
        for v in sweep.levels
    ]
    print_rows(levels, ["strength", "judged_teal", "teal_match", "judge_score"])
    for name, effect in (("teal match", sweep.teal_effect), ("judge score", sweep.score_effect)):
        typer.echo(f"strength 1 - 0, {name}: {effect.mean:+.2f} (95% CI {effect.low:+.2f}..{effect.high:+.2f}, d_z {effect.dz:.1f})")
    typer.echo(f"Prompts without teal, strength 1 against 0 (the teal prompt's pixels move {sweep.teal_pixel_difference:.1f}):")
    rows = [
        {"prompt": u.prompt, "pixels": f"{u.pixel_difference:.1f}", "score_0": f"{u.score_without:.1f}", "score_1": f"{u.score_with:.1f}", "named_changed": u.judgement_changed}
        for u in sweep.unchanged
    ]
    print_rows(rows, ["prompt", "pixels", "score_0", "score_1", "named_changed"])
    return None
