"""The ``promptlab`` command: a thin shell over the library.

Each command parses its input, calls one library function and prints the result, as text
or, with ``--format json``, as JSON for scripts. A ``PromptlabError`` becomes one red line on
stderr and exit code 1. Heavy libraries are imported inside the commands that need them, so
``promptlab --help`` starts fast.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from promptlab.errors import PromptlabError

app = typer.Typer(
    name="promptlab",
    help="Measured prompt experiments for Stable Diffusion: build, render, score, track, compare, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
vocab_app = typer.Typer(help="Browse the prompt vocabularies.", no_args_is_help=True)
prompt_app = typer.Typer(help="Build, count and convert prompts.", no_args_is_help=True)
app.add_typer(vocab_app, name="vocab")
app.add_typer(prompt_app, name="prompt")


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class Syntax(str, Enum):
    compel = "compel"
    a1111 = "a1111"
    plain = "plain"


class SourceSyntax(str, Enum):
    compel = "compel"
    a1111 = "a1111"


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


def main() -> None:
    """Console entry point: promptlab's errors become one red line and exit code 1."""
    try:
        app()
    except PromptlabError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except SystemExit as done:
        # typer exits 2 on a command-line mistake; every user mistake exits 1 here.
        sys.exit(1 if done.code == 2 else done.code)


if __name__ == "__main__":
    main()
