"""The ``promptlab`` app and its command groups, and what every command shares: --format, choices built from the library's own names, printing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from promptlab.prompt import SOURCE_SYNTAXES, SYNTAXES
from promptlab.render.params import LONG_PROMPT_POLICIES, TASKS

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
@dataclass
class Options:
    """What the app-wide options (before the command) set for this invocation."""

    debug: bool = False


OPTIONS = Options()


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="On an error, print its traceback and causes instead of one line."),
) -> None:
    OPTIONS.debug = debug


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def choices(name: str, values: Any) -> Any:
    """A typer choice type whose values are the library's own names (one source for each list)."""
    return Enum(name, {value: value for value in values}, type=str)


Syntax = choices("Syntax", SYNTAXES)


SourceSyntax = choices("SourceSyntax", SOURCE_SYNTAXES)


Task = choices("Task", TASKS)


LongPrompt = choices("LongPrompt", LONG_PROMPT_POLICIES)


FORMAT_OPTION = typer.Option(OutputFormat.text, "--format", help="text for people, json for scripts.")
#: Which of an experiment's scorers ranks (``Store.scorers``); the first its file names when not given.
SCORER_OPTION = typer.Option(
    None, "--scorer", help="Which of the experiment's scorers ranks (e.g. aesthetic); default: the first its file names."
)


VOCAB_OPTION = typer.Option(
    None, "--vocab", help="Your own vocabulary folder; adds to and overrides the bundled one (also PROMPTLAB_VOCAB)."
)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def load_vocabulary(vocab_dir: Optional[Path]) -> Any:
    from promptlab.vocab import load_vocab

    return load_vocab([vocab_dir] if vocab_dir else [])


class ScoreKind(str, Enum):
    intent = "intent"
    prompt = "prompt"


def print_rows(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table: one line per row, the given columns."""
    if not rows:
        typer.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        typer.echo("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


def printable(text: str) -> str:
    """Text from a file as a terminal shows it safely: control characters (an escape sequence in a
    hostile prompt could rewrite the screen) written as ``\\xNN``; tabs and line breaks kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
