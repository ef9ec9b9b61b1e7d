"""The line of each key in a TOML text (tomllib gives values, not lines), so an error names the line it is on."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


_BARE_KEY = r"[A-Za-z0-9_-]+"


_BASIC_STRING = r'"(?:[^"\\\n]|\\.)*"'


_LITERAL_STRING = r"'[^'\n]*'"


_KEY = rf"(?:{_BARE_KEY}|{_BASIC_STRING}|{_LITERAL_STRING})"


_DOTTED_KEY = rf"{_KEY}(?:\s*\.\s*{_KEY})*"


_HEADER_RE = re.compile(rf"\s*\[\[?\s*({_DOTTED_KEY})\s*\]\]?\s*(?:#.*)?$")


_KEYVAL_RE = re.compile(rf"\s*({_DOTTED_KEY})\s*=")


_KEY_PART_RE = re.compile(_KEY)


_STRING_OR_COMMENT_RE = re.compile(rf"{_BASIC_STRING}|{_LITERAL_STRING}|#.*")


def _unquote(part: str) -> str:
    if part[0] in "\"'":
        return str(tomllib.loads(f"k = {part}")["k"])
    return part


def _key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(_unquote(part) for part in _KEY_PART_RE.findall(dotted))


@dataclass
class KeyLines:
    """Where each key of a TOML text is defined, found by scanning lines (tomllib keeps no positions)."""

    first: dict[tuple[str, ...], int] = field(default_factory=dict)
    duplicates: list[tuple[tuple[str, ...], int, int]] = field(default_factory=list)
    # Each string value (not key) with its line, in file order, and the key path it follows.
    strings: list[tuple[tuple[str, ...], int]] = field(default_factory=list)

    @classmethod
    def scan(cls, text: str) -> KeyLines:
        found = cls()
        table: tuple[str, ...] = ()
        current: tuple[str, ...] = ()
        open_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if open_multiline is not None:
                if line.count(open_multiline) % 2 == 1:
                    open_multiline = None
                continue
            rest = line
            header = _HEADER_RE.match(line)
            keyval = _KEYVAL_RE.match(line)
            if header:
                table = current = _key_parts(header.group(1))
                # An array of tables ([[x]]) may repeat its header; a plain table may not.
                if not line.lstrip().startswith("[["):
                    found.define(table, number)
                continue
            if keyval:
                current = table + _key_parts(keyval.group(1))
                found.define(current, number)
                rest = line[keyval.end() :]
            for token in _STRING_OR_COMMENT_RE.findall(rest):
                if not token.startswith("#"):
                    found.strings.append((current, number))
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    open_multiline = quote
        return found

    def define(self, key_path: tuple[str, ...], line: int) -> None:
        if key_path in self.first:
            self.duplicates.append((key_path, self.first[key_path], line))
        else:
            self.first[key_path] = line

    def line_of(self, key_path: tuple[str, ...]) -> int | None:
        """The line defining ``key_path``, or its nearest defined parent (an inline table's keys share its line)."""
        for end in range(len(key_path), 0, -1):
            if key_path[:end] in self.first:
                return self.first[key_path[:end]]
        return None

    def strings_after(self, key_path: tuple[str, ...]) -> list[int]:
        """The lines of the string values under ``key_path``, in order (one per array item)."""
        return [line for path, line in self.strings if path == key_path]
