"""Writing vocabulary TOML: strings escaped as TOML needs, files written all or nothing and read back to check."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptlab.errors import VocabError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


# TOML basic strings hold every character raw but these: the quote, the backslash, and the control
# characters other than tab (U+0000-U+001F, U+007F), which must be escaped.
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


_TOML_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def toml_string(text: str, what: str = "text") -> str:
    r"""``text`` as a TOML basic string, with every character TOML cannot hold raw escaped.

    >>> print(toml_string('say "hi"\x7f\tbye'))
    "say \"hi\"\u007F\tbye"

    A lone surrogate (half of a UTF-16 pair, as a broken JSON file can hold) is no character at
    all: no TOML or UTF-8 file can hold it, so ``what`` is named in a VocabError.
    """
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            raise VocabError(
                f"{what}: character {index + 1} is a lone surrogate (\\u{ord(char):04X}), which no text file can hold; "
                "fix the source file's text"
            )
    escaped = _TOML_NEEDS_ESCAPE.sub(lambda m: _TOML_ESCAPES.get(m.group(), f"\\u{ord(m.group()):04X}"), text)
    return f'"{escaped}"'


def write_toml_files(files: Mapping[Path, str], expected: Mapping[Path, Mapping[str, Any]]) -> None:
    """Write every file whole, or none: each text is read back first, then written beside its target and renamed.

    Each text must parse as TOML with the tables ``expected[path]`` holds, value for value, so a
    file that would read back differently (or not at all) is never written; VocabError names it.
    """
    # 1. Read every text back before anything touches the disk.
    for path, text in files.items():
        try:
            parsed = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise VocabError(f"{path}: the new text would not read back as TOML ({exc}); nothing was written") from exc
        for key, table in expected.get(path, {}).items():
            if parsed.get(key) != table:
                raise VocabError(f"{path}: [{key}] would read back as {parsed.get(key)!r}; nothing was written")
    # 2. Temporary files, fsynced, then each renamed over its target.
    temps: dict[Path, Path] = {}
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
            temps[path] = Path(name)
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        for path, temp in temps.items():
            os.replace(temp, path)
    except OSError as exc:
        raise VocabError(f"cannot write {exc.filename or 'the vocabulary'}: {exc.strerror or exc}") from exc
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
