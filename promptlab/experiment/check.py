"""Reading values out of a parsed experiment file: each error names the file, the key, the value and the rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from promptlab.errors import ExperimentError
from promptlab.experiment.spec import show_value
from promptlab.render.params import MAX_PROMPT_CHARS


class Checker:
    """Reads values out of the parsed TOML, raising ExperimentError that names key, value and rule."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, value: Any, expected: str) -> NoReturn:
        raise ExperimentError(f"{self.source}: {where} = {show_value(value)}: expected {expected}")

    def missing(self, where: str, expected: str) -> NoReturn:
        raise ExperimentError(f"{self.source}: missing key {where}: expected {expected}")

    def keys(self, table: Mapping[str, Any], known: Iterable[str], section: str) -> None:
        known = tuple(known)
        for key in table:
            if key not in known:
                place = f" in {section}" if section else ""
                raise ExperimentError(f"{self.source}: unknown key {key!r}{place}; known keys: {', '.join(known)}")

    def not_allowed(self, table: Mapping[str, Any], key: str, needs: str, section: str = "") -> None:
        if key in table:
            raise ExperimentError(f"{self.source}: {self.where(section, key)} = {show_value(table[key])}: only allowed with {needs}")

    def short(self, text: str, where: str) -> None:
        """Refuse prompt text longer than any prompt, before a parser spends time on it."""
        if len(text) > MAX_PROMPT_CHARS:
            raise ExperimentError(
                f"{self.source}: {where} = {show_value(text[:40])[:-1]}...\" ({len(text):,} characters): "
                f"expected at most {MAX_PROMPT_CHARS:,} characters"
            )

    def where(self, section: str, key: str) -> str:
        return f"{section} {key}" if section else key

    def table(self, raw: Mapping[str, Any], key: str, required: bool = False) -> dict[str, Any]:
        if key not in raw:
            return self.missing(f"[{key}]", f"a [{key}] table") if required else {}
        if not isinstance(raw[key], dict):
            self.fail(key, raw[key], f"a table: write [{key}] on its own line")
        return raw[key]

    def string(
        self,
        table: Mapping[str, Any],
        key: str,
        section: str,
        *,
        required: bool = False,
        nonempty: bool = False,
        expected: str = "a string",
    ) -> Any:
        if key not in table:
            return self.missing(self.where(section, key), expected) if required else None
        value = table[key]
        if not isinstance(value, str) or (nonempty and not value.strip()):
            self.fail(self.where(section, key), value, "a non-empty string" if nonempty else "a string")
        return value.strip()

    def string_list(self, table: Mapping[str, Any], key: str, section: str) -> list[str] | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(self.where(section, key), value, "a list of non-empty strings")
        return [v.strip() for v in value]

    def integer(
        self, table: Mapping[str, Any], key: str, section: str, *, minimum: int, required: bool = False
    ) -> Any:
        if key not in table:
            return self.missing(self.where(section, key), f"an integer >= {minimum}") if required else None
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(self.where(section, key), value, f"an integer >= {minimum}")
        return value

    def choice(self, table: Mapping[str, Any], key: str, choices: tuple[str, ...], section: str, *, default: str) -> str:
        value = table.get(key, default)
        if value not in choices:
            self.fail(self.where(section, key), value, f"one of {', '.join(choices)}")
        return value

