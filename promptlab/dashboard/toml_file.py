"""Write an experiment's parsed-TOML dict back as TOML text (tomllib only reads).

Belongs in promptlab.experiment (``experiment_toml``); kept here until it exists there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promptlab.vocab import toml_string


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def experiment_toml(raw: Mapping[str, Any]) -> str:
    """Top-level keys first, then one ``[table]`` per dict value (params, prompt, axes)."""
    lines = [f"{key} = {toml_value(v)}" for key, v in raw.items() if not isinstance(v, Mapping)]
    for key, table in raw.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{key}]"] + [f"{toml_string(str(k))} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
