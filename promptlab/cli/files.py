"""Files in and out: export, import, and the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from promptlab.cli.base import FORMAT_OPTION, SCORER_OPTION, OutputFormat, ScoreKind, app, choices, emit_json, printable
from promptlab.export.names import EXPORT_FORMAT_NAMES

ExportFormat = choices("ExportFormat", EXPORT_FORMAT_NAMES)


@app.command()
def export(
    experiment: str = typer.Argument(..., help="Experiment name or id."),
    to: ExportFormat = typer.Option(ExportFormat("json"), "--to", help="Format of the best-prompts export."),
    top: int = typer.Option(5, "--top", help="How many of the best prompts."),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write (default: print; required for --grid/--zip)."),
    grid: bool = typer.Option(False, "--grid", help="Write a labelled X/Y grid image instead (with --x, --y, --out FILE.png)."),
    x: Optional[str] = typer.Option(None, "--x", help="Grid columns: an axis (e.g. style) or seed."),
    y: Optional[str] = typer.Option(None, "--y", help="Grid rows: an axis or seed."),
    zip_: bool = typer.Option(False, "--zip", help="Write a zip of the images (metadata intact) and the table."),
    score: ScoreKind = typer.Option(ScoreKind.intent, "--score", help="Rank by the intent or the own-prompt score."),
    scorer: Optional[str] = SCORER_OPTION,
) -> None:
    """Export an experiment's best prompts (JSON, CSV, Markdown, A1111/Fooocus styles, prompt lists), a grid, or a zip."""
    from promptlab.errors import ExportError
    from promptlab.export import export_best, export_zip, grid_image, write_best
    from promptlab.store import open_store

    if (grid or zip_) and out is None:
        raise ExportError(f"--{'grid' if grid else 'zip'} needs --out FILE")
    with open_store(read_only=True) as store:
        frame = store.runs_frame(experiment, score.value, scorer)
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
    from promptlab.importer import ALIASES, import_paths, save_styles_as_vocab, store_imported
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
        shown = {key: value for key, value in data.items() if key not in ("file", *ALIASES) and value not in (None, "", [], {})}
        width = max((len(key) for key in shown), default=0) + 2
        for key, value in shown.items():
            if isinstance(value, list):
                typer.echo(f"  {key}:")
                for item in value:
                    typer.echo(f"    - {printable(str(item))}")
            else:
                typer.echo(f"  {key + ':':<{width}}{printable(str(value))}")
    for style in batch.styles:
        typer.echo(printable(f"style {style.name!r}: {style.prompt}  |  negative: {style.negative_prompt}"))
    return None


@app.command()
def dashboard(
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to bind; localhost unless you open it up."),
) -> None:
    """Open the Streamlit dashboard, listening on this machine only unless --address says otherwise."""
    import os
    import subprocess

    from promptlab.dashboard import dashboard_command

    command = dashboard_command(port, address)
    if os.name == "posix":
        # Streamlit takes this process's place, so a signal meant for promptlab (a service
        # manager's SIGTERM) reaches the server instead of leaving it running as an orphan.
        os.execv(command[0], command)
    raise typer.Exit(subprocess.call(command))
