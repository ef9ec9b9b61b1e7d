"""``promptlab vocab`` and ``promptlab prompt``: browse the vocabularies, build and convert prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from promptlab.cli.base import (
    FORMAT_OPTION,
    VOCAB_OPTION,
    OutputFormat,
    SourceSyntax,
    Syntax,
    emit_json,
    load_vocabulary,
    prompt_app,
    vocab_app,
)


@vocab_app.command("list")
def vocab_list(
    category: Optional[str] = typer.Argument(None, help="A category; omit to list the categories."),
    vocab_dir: Optional[Path] = VOCAB_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """List the categories, or one category's terms with what each does to an image."""
    vocab = load_vocabulary(vocab_dir)
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
        vocab=load_vocabulary(vocab_dir),
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
