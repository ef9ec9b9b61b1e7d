"""Package names that load their module on first use (PEP 562), so importing a package stays cheap.

    __getattr__, __dir__ = lazy_names(__name__, {"render": "promptlab.render.engine"}, globals())

``promptlab.render`` and ``promptlab.export`` use it: the CLI reads their light modules
(``render.params``, ``export.names``) at startup without loading torch, diffusers or pandas.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for ``homes`` (each name: the module it lives in).

    A name is imported from its module on first use and kept in ``namespace`` (the package's
    globals), so the next use is a plain lookup.
    """

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *homes])

    return __getattr__, __dir__
