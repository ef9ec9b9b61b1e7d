"""``promptlab votes``: people's votes between two images (the dashboard's Judge page), what they say, and their export."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from promptlab.cli.base import FORMAT_OPTION, OutputFormat, app, emit_json, printable

votes_app = typer.Typer(help="People's votes between two images (the dashboard's Judge page): strengths, scorer agreement, export.", no_args_is_help=True)
app.add_typer(votes_app, name="votes")


@votes_app.command("list")
def list_votes(
    experiment: str = typer.Argument(..., help="Experiment name or id."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Each variant's strength from the votes (Bradley-Terry, 95% CI), each pair's record, and how often each scorer agrees with the votes."""
    from promptlab.analysis.votes import analyze_votes, format_votes
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        votes = store.list_votes(experiment)
        scores = store.vote_scores(experiment)
    result = analyze_votes(votes, scores, experiment=experiment)
    if fmt is OutputFormat.json:
        emit_json(result.to_dict())
        return
    for line in format_votes(result):
        typer.echo(printable(line))


@votes_app.command("export")
def export(
    experiment: str = typer.Argument(..., help="Experiment name or id."),
    out: Path = typer.Option(..., "--out", help="The file to write: .csv (a row a vote) or .json (a list)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Write every vote (both runs and their variants, seed, choice, voter, time) to a CSV or JSON file."""
    from promptlab.analysis.votes import export_votes
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        votes = store.list_votes(experiment)
    path = export_votes(votes, out)
    if fmt is OutputFormat.json:
        emit_json({"path": str(path), "votes": len(votes)})
        return
    typer.echo(f"wrote {len(votes)} votes to {printable(str(path))}")


@votes_app.command("add")
def add(
    left: int = typer.Argument(..., help="The run shown on the left (its id)."),
    right: int = typer.Argument(..., help="The run shown on the right (its id)."),
    choice: str = typer.Argument(..., help="left, right or tie."),
    voter: Optional[str] = typer.Option(None, "--voter", help="Who voted (default: your user name)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Record a vote between two runs of one seed from two variants, as they were shown (for scripts; people use the Judge page)."""
    from promptlab.store import open_store

    with open_store() as store:
        vote = store.record_vote(left, right, choice, voter=voter)
    if fmt is OutputFormat.json:
        emit_json(vote.to_dict())
        return
    typer.echo(f"vote {vote.id}: {printable(vote.choice)} ({printable(vote.left_label)} left, {printable(vote.right_label)} right, seed {vote.seed})")
