"""``promptlab search``: search the vocabulary for a better prompt within a budget of images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from promptlab.cli.base import FORMAT_OPTION, OutputFormat, app, emit_json, printable


@app.command()
def search(
    file: Path = typer.Argument(..., help="An experiment file with a search table (see examples/star-search.toml)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Search for the prompt that shows the intent best within a budget of images (resumable), then confirm it on fresh seeds."""
    from promptlab.search import format_search, load_search, run_search
    from promptlab.store import open_store

    spec = load_search(file)
    with open_store() as store:
        result = run_search(spec, store, progress=_progress_line)
    if fmt is OutputFormat.json:
        emit_json(result.to_dict())
        return
    for line in format_search(result):
        typer.echo(printable(line))
    typer.echo(f"Next: promptlab analyze {spec.name}   |   promptlab dashboard (Compare, Insights)")


def _progress_line(progress: Any) -> None:
    """One line on stderr per round: budget spent and the best so far."""
    typer.echo(
        f"{progress.phase} round {progress.round}: {progress.spent}/{progress.budget} images, "
        f"best {printable(progress.best_label)} ({progress.best_score:.2f})",
        err=True,
    )
    sys.stderr.flush()
