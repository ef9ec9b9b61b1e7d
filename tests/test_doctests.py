"""Every example in a promptlab docstring runs, and prints what it says.

The modules are found by their text (a ``>>>`` line), so a new module's examples are run
without anyone adding it here.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "promptlab"


def modules_with_examples() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_data" in path.relative_to(PACKAGE).parts or ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(".".join(parts))
    return found


def test_the_examples_are_found() -> None:
    assert {"promptlab.prompt", "promptlab.vocab", "promptlab.render.schedulers"} <= set(modules_with_examples())


# Their examples build or load models (seconds each): left out of the quick suite.
SLOW = {"promptlab.render.engine", "promptlab.compose", "promptlab.scoring"}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in modules_with_examples()]
)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name}: a '>>>' line that doctest does not collect (inside a string, or in code?)"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (doctest output above)"
