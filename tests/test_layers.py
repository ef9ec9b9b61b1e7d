"""The shape of the house: imports point downstream only, with no cycles and no private names.

Every module's imports are read with ``ast`` (imports inside functions and under
``TYPE_CHECKING`` too: a lazy or type-only import is still a dependency), so an import against
the flow fails here rather than as a cycle at run time. A new module falls into its layer by the
prefix of its dotted name (``promptlab.store.schema`` is in ``promptlab.store``'s layer).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The layers of the flow, first to last: a module imports only from its own layer or earlier ones.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Facts every layer reads: the exception tree, where files live, the built-in models' names and
    # weights, device choice, file hashes, the bounded model cache. They import nothing above.
    (
        "base",
        (
            "promptlab",
            "promptlab.errors",
            "promptlab.paths",
            "promptlab.builtin",
            "promptlab.device",
            "promptlab.hashing",
            "promptlab.model_cache",
            "promptlab.lazy",
        ),
    ),
    ("vocab", ("promptlab.vocab",)),
    # tokens (CLIP token counts) and compose (prompts built from the vocabulary) read prompts.
    ("prompt", ("promptlab.prompt", "promptlab.tokens", "promptlab.compose")),
    # The micro-world's scenes and their judge: pictures drawn and read from tables, no model; the
    # micro-judge scorer reads pictures with it, and micro's training draws its scenes.
    ("micro-world", ("promptlab.micro.world",)),
    ("render and scoring", ("promptlab.render", "promptlab.scoring")),
    # micro makes the built-in micro models: it trains through render's conditioning and writes
    # scoring's weight format, so it comes after them; rendering and scoring read its weights through
    # promptlab.builtin, never by importing it.
    ("micro", ("promptlab.micro",)),
    # An experiment expands prompts into render cells; the store keeps their results without knowing it.
    ("experiment", ("promptlab.experiment",)),
    ("store", ("promptlab.store",)),
    # metadata writes a stored run's parameters as PNG text and reads them back (the runner and the
    # importer use it); the store takes finished PNG bytes and never imports it.
    ("metadata", ("promptlab.metadata",)),
    ("runner", ("promptlab.runner",)),
    (
        "analysis, export and import",
        ("promptlab.analysis", "promptlab.simulate", "promptlab.export", "promptlab.importer", "promptlab.demo"),
    ),
    # The shells: they call everything and nothing calls them.
    ("search", ("promptlab.search",)),
    ("shells", ("promptlab.cli", "promptlab.__main__", "promptlab.dashboard", "promptlab._data", "app")),
)


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of ``module``'s layer: its longest listed prefix decides."""
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise LookupError(f"{module} is in no layer of tests/test_layers.py's LAYERS; add its prefix there")
    return found


@dataclass(frozen=True)
class Import:
    """One import of a promptlab module: where it is, and the names it takes (None for ``import x``)."""

    source: str
    line: int
    module: str
    names: tuple[str, ...] | None


def module_files() -> dict[str, Path]:
    """Every promptlab module and the top-level ``app.py``, by dotted name."""
    files = {}
    for path in sorted((ROOT / "promptlab").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    app = ROOT / "app.py"
    if app.is_file():
        files["app"] = app
    return files


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a promptlab module in the tree, lazy ones included."""
    found = []
    for module, path in module_files().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        source = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [Import(source, node.lineno, a.name, None) for a in node.names if _ours(a.name)]
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(module, node, path.name == "__init__.py")
                if _ours(target):
                    found.append(Import(source, node.lineno, target, tuple(a.name for a in node.names)))
    return tuple(found)


def _ours(module: str) -> bool:
    return module == "promptlab" or module.startswith("promptlab.")


def _module_of(source: str) -> str:
    return next(name for name, path in module_files().items() if str(path.relative_to(ROOT)) == source)


def _targets(item: Import) -> list[str]:
    """The modules an import loads: ``from promptlab.render import models`` loads promptlab.render.models too."""
    files = module_files()
    targets = [item.module]
    for name in item.names or ():
        if f"{item.module}.{name}" in files:
            targets.append(f"{item.module}.{name}")
    return targets


def test_every_module_has_a_layer() -> None:
    for module in module_files():
        layer_of(module)


def test_imports_point_downstream_only() -> None:
    against = []
    for item in imports():
        here = layer_of(_module_of(item.source))
        there = layer_of(item.module)
        if there > here:
            against.append(
                f"{item.source}:{item.line}: {LAYERS[here][0]} imports {item.module} ({LAYERS[there][0]})"
            )
    assert not against, "imports against the flow:\n" + "\n".join(against)


def test_no_import_cycles() -> None:
    """No module reaches itself through imports (a package's ``__init__`` counts as a module)."""
    graph: dict[str, set[str]] = {module: set() for module in module_files()}
    for item in imports():
        source = _module_of(item.source)
        graph[source].update(t for t in _targets(item) if t in graph and t != source)
    cycles = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_names_cross_modules() -> None:
    """A module uses another's public names only: ``from m import _x`` and ``m._x`` both fail.

    No exception, not even within a package: a name two files share is part of the package's
    own interface and gets a public name (the package's ``__init__`` decides what it exports).
    """
    files = module_files()
    found = []
    for item in imports():
        found += [f"{item.source}:{item.line}: from {item.module} import {n}" for n in item.names or () if _private(n)]
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _ours(a.name) and a.asname:
                        aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(module, node, path.name == "__init__.py")
                for a in node.names:
                    if f"{target}.{a.name}" in files:
                        aliases[a.asname or a.name] = f"{target}.{a.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    assert not found, "private names used across modules:\n" + "\n".join(sorted(set(found)))


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("promptlab.store.schema", "store"),
        ("promptlab.metadata.a1111", "metadata"),
        ("promptlab.importer.images", "analysis, export and import"),
        ("promptlab.export.grid", "analysis, export and import"),
        ("promptlab.experiment.parse", "experiment"),
        ("promptlab.render.params", "render and scoring"),
        ("promptlab.dashboard.history", "shells"),
        ("promptlab", "base"),
    ],
)
def test_new_modules_fall_in_by_prefix(module: str, layer: str) -> None:
    assert LAYERS[layer_of(module)][0] == layer


def test_the_flow_itself() -> None:
    """vocab, then prompt (prompt may import vocab, never the reverse), render, store, runner, shells."""
    order = [layer_of(m) for m in ("promptlab.errors", "promptlab.vocab", "promptlab.prompt", "promptlab.render",
                                   "promptlab.store", "promptlab.runner", "promptlab.export", "promptlab.cli")]
    assert order == sorted(order) and len(set(order)) == len(order)
