"""README documents every CLI command with its help; this test keeps them in sync.

Run ``python tests/test_docs.py`` to rewrite README's command reference after changing a command.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- commands -->", "<!-- /commands -->"


def _leaves(command: object, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], object]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [(path, command)]
    found = []
    for name in sorted(subcommands):
        found += _leaves(subcommands[name], (*path, name))
    return found


def _param_line(param: object) -> str:
    opts = getattr(param, "opts", [])
    if getattr(param, "param_type_name", "") == "argument":
        name = f"`{getattr(param, 'name', '').upper()}`"
    else:
        name = ", ".join(f"`{o}`" for o in opts)
    help_text = " ".join((getattr(param, "help", None) or "").split())
    return f"- {name}: {help_text}".rstrip(": ")


def command_reference() -> str:
    """The Markdown command reference, built from the real CLI's help texts."""
    import typer.main

    from promptlab.cli import app

    root = typer.main.get_command(app)
    blocks = []
    for path, command in _leaves(root, ("promptlab",)):
        doc = " ".join((getattr(command, "help", None) or "").split())
        params = [p for p in getattr(command, "params", []) if getattr(p, "name", "") != "help"]
        lines = [f"### `{' '.join(path)}`", "", doc, ""]
        lines += [_param_line(p) for p in params]
        blocks.append("\n".join(lines).rstrip())
    return "\n\n".join(blocks)


def readme_section(text: str) -> str:
    match = re.search(re.escape(START) + r"\n(.*?)\n?" + re.escape(END), text, re.S)
    assert match, f"README.md lacks the {START} ... {END} markers"
    return match.group(1).strip()


def test_readme_documents_every_command() -> None:
    assert readme_section(README.read_text()) == command_reference(), (
        "README's command reference is stale: run `python tests/test_docs.py` to rewrite it"
    )


def test_readme_quick_start_has_two_commands_and_ci_uses_them() -> None:
    text = README.read_text()
    block = text.split("<!-- quickstart -->")[1].split("<!-- /quickstart -->")[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("```")]
    assert len(commands) == 2
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- quickstart -->" in ci, ".ci/run must read its commands from README's Quick start"


if __name__ == "__main__":
    text = README.read_text()
    new = re.sub(
        re.escape(START) + r".*?" + re.escape(END),
        lambda _: f"{START}\n{command_reference()}\n{END}",
        text,
        flags=re.S,
    )
    README.write_text(new)
    sys.stdout.write("README.md command reference rewritten\n")
