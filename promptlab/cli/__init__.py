"""The ``promptlab`` command: a thin shell over the library.

Each command parses its input, calls one library function and prints the result, as text
or, with ``--format json``, as JSON for scripts. A ``PromptlabError`` becomes one red line on
stderr and exit code 1 (``promptlab --debug ...`` prints its traceback and causes instead).
Commands that only read open the store read-only. Heavy libraries are imported inside the
commands that need them, so ``promptlab --help`` starts fast.
"""

from __future__ import annotations

import sys

import typer

from promptlab.cli.base import OPTIONS, app, printable
from promptlab.errors import PromptlabError

# Each module adds its commands to ``app`` as it is imported, in the order --help lists them.
# isort: off
from promptlab.cli import prompts, models, runs, search, files, votes  # noqa: F401,E402
# isort: on


def main() -> None:
    """Console entry point: promptlab's errors become one red line and exit code 1."""
    try:
        app()
    except PromptlabError as error:
        if OPTIONS.debug:
            import traceback

            traceback.print_exception(error, file=sys.stderr)
        # One line whatever the message holds: a quoted file's newlines and control characters are shown, not printed.
        message = printable(" ".join(str(error).split("\n")))
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except SystemExit as done:
        # typer exits 2 on a command-line mistake; every user mistake exits 1 here.
        sys.exit(1 if done.code == 2 else done.code)


__all__ = ["app", "main"]
