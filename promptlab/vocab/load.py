"""Reading the vocabulary folders into a ``Vocabulary``, each problem named by file and line; cached per state of the files."""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlab.errors import VocabError
from promptlab.vocab.model import (
    BUNDLED_VOCAB_DIR,
    CATEGORY_KEYS,
    DEFAULT_ORDER,
    FORBIDDEN_TERM_CHARS,
    NAME_RE,
    NEGATIVE_FILE,
    PRESET_KEYS,
    SUBJECTS_FILE,
    SUBJECTS_KEYS,
    TERM_KEYS,
    Category,
    NegativePreset,
    VocabTerm,
    Vocabulary,
)
from promptlab.vocab.toml_lines import KeyLines

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def vocab_dirs(dirs: Sequence[Path | str] = (), *, use_env: bool = True) -> tuple[Path, ...]:
    """The folders ``load_vocab`` reads, in order: bundled, ``PROMPTLAB_VOCAB``, then ``dirs``.

    ``PROMPTLAB_VOCAB`` may name several folders separated by ``os.pathsep``. A folder that
    does not exist raises VocabError naming it.
    """
    folders: list[tuple[Path, str]] = [(BUNDLED_VOCAB_DIR, " (the bundled vocabulary)")]
    if use_env:
        for part in os.environ.get("PROMPTLAB_VOCAB", "").split(os.pathsep):
            if part.strip():
                folders.append((Path(part.strip()).expanduser(), " (from PROMPTLAB_VOCAB)"))
    folders.extend((Path(d).expanduser(), "") for d in dirs)
    for folder, origin in folders:
        if not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise VocabError(f"vocabulary folder '{folder}'{origin} {problem}")
    return tuple(folder for folder, _ in folders)


def load_vocab(dirs: Sequence[Path | str] = (), *, use_env: bool = True) -> Vocabulary:
    """Load the bundled vocabulary, then ``PROMPTLAB_VOCAB``'s folder, then ``dirs``; later ones override.

    Within a folder the ``*.toml`` files are read in name order. For the same category the
    terms are merged: a later file's description and weight win for the same term (matched
    ignoring case), its ``description`` and ``order`` win when given. Negative presets merge
    the same way by name; subjects are appended, repeats dropped. Any malformed file raises
    VocabError naming the file, the line where known, and the problem. Files unchanged since an
    earlier load (same paths, sizes and modification times) are not read again: the same
    ``Vocabulary`` comes back, so treat it as read-only.
    """
    # 1. Find the folders, in override order, and their files in name order.
    folders = vocab_dirs(dirs, use_env=use_env)
    files = tuple(
        path
        for folder in folders
        for path in sorted(folder.glob("*.toml"))
        if not path.name.startswith(".") and path.is_file()
    )
    # 2. Read and merge them, unless they are unchanged since an earlier load.
    return _load_files(folders, tuple((path, *_stamp(path)) for path in files))


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=16)
def _load_files(folders: tuple[Path, ...], files: tuple[tuple[Path, int, int], ...]) -> Vocabulary:
    """Read and merge ``files`` (path, mtime, size) in order: what ``load_vocab`` does once per state of them."""
    categories: dict[str, _CategoryBuilder] = {}
    presets: dict[str, NegativePreset] = {}
    subjects: dict[str, str] = {}
    for path, _, _ in files:
        doc = _read(path)
        if path.name == NEGATIVE_FILE:
            for preset in _parse_presets(doc):
                presets[preset.name] = _merge_preset(presets.get(preset.name), preset)
        elif path.name == SUBJECTS_FILE:
            for subject in _parse_subjects(doc):
                subjects.setdefault(subject.casefold(), subject)
        else:
            parsed = _parse_category(doc)
            categories.setdefault(parsed.name, _CategoryBuilder(parsed.name)).merge(parsed)
    # Freeze the categories in prompt order.
    built = sorted((builder.build() for builder in categories.values()), key=lambda c: (c.order, c.name))
    return Vocabulary(
        categories={category.name: category for category in built},
        negative_presets=presets,
        subjects=tuple(subjects.values()),
        dirs=folders,
    )


@dataclass
class _TermEntry:
    text: str
    description: str | None
    weight: float | None


@dataclass
class _CategoryFile:
    path: Path
    name: str
    description: str | None
    order: int | None
    terms: list[_TermEntry]


@dataclass
class _PresetEntry:
    name: str
    text: str
    description: str | None


@dataclass
class _CategoryBuilder:
    name: str
    description: str = ""
    order: int = DEFAULT_ORDER
    terms: dict[str, VocabTerm] = field(default_factory=dict)
    source: list[Path] = field(default_factory=list)

    def merge(self, parsed: _CategoryFile) -> None:
        if parsed.description is not None:
            self.description = parsed.description
        if parsed.order is not None:
            self.order = parsed.order
        self.source.append(parsed.path)
        for entry in parsed.terms:
            key = entry.text.casefold()
            old = self.terms.get(key)
            description = entry.description if entry.description is not None else (old.description if old else "")
            weight = entry.weight if entry.weight is not None else (old.weight if old else 1.0)
            self.terms[key] = VocabTerm(self.name, entry.text, description, weight)

    def build(self) -> Category:
        return Category(self.name, self.description, self.order, tuple(self.terms.values()), tuple(self.source))


def _merge_preset(old: NegativePreset | None, new: _PresetEntry) -> NegativePreset:
    description = new.description if new.description is not None else (old.description if old else "")
    return NegativePreset(new.name, new.text, description)


@dataclass
class _Doc:
    """A parsed TOML file with the line of each key, so errors can point at the line."""

    path: Path
    data: dict[str, Any]
    lines: KeyLines

    def error(self, problem: str, *key_path: str) -> VocabError:
        line = self.lines.line_of(key_path) if key_path else None
        return _error(self.path, line, problem)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _error(path: Path, line: int | None, problem: str) -> VocabError:
    where = _display(path) if line is None else f"{_display(path)} line {line}"
    return VocabError(f"{where}: {problem}")


def _read(path: Path) -> _Doc:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise _error(path, None, f"cannot be read ({exc.strerror})") from exc
    lines = KeyLines.scan(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(path, text, lines, exc) from exc
    return _Doc(path, data, lines)


_TOML_POSITION_RE = re.compile(r"\s*\(at line (\d+), column \d+\)|\s*\(at end of document\)")


def _toml_error(path: Path, text: str, lines: KeyLines, exc: tomllib.TOMLDecodeError) -> VocabError:
    message = str(exc.args[0]) if exc.args else str(exc)
    match = _TOML_POSITION_RE.search(message)
    line: int | None = getattr(exc, "lineno", None)
    if match:
        line = int(match.group(1)) if match.group(1) else text.count("\n") + 1
        message = message[: match.start()] + message[match.end() :]
    for key_path, first, again in lines.duplicates:
        if again == line:
            if len(key_path) == 2 and key_path[0] == "terms":
                return _error(path, line, f"duplicate term '{key_path[1]}' (first at line {first})")
            return _error(path, line, f"duplicate key '{'.'.join(key_path)}' (first at line {first})")
    return _error(path, line, f"invalid TOML: {message}")


def _parse_category(doc: _Doc) -> _CategoryFile:
    data = doc.data
    _check_keys(doc, data, CATEGORY_KEYS, ())
    name = data.get("category", doc.path.stem)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        problem = (
            f"category name {name!r} must be lowercase letters, digits, '_' or '-', starting with a letter; "
            "rename the file or set category = \"...\""
        )
        raise doc.error(problem, "category")
    description = _optional(doc, data, "description", str, ())
    order = _optional(doc, data, "order", int, ())
    terms = data.get("terms", {})
    if not isinstance(terms, dict):
        raise doc.error(f"'terms' must be a table of \"term\" = \"description\", got {_kind(terms)}", "terms")
    entries: list[_TermEntry] = []
    first_seen: dict[str, str] = {}
    for text, value in terms.items():
        where = ("terms", text)
        problem = _term_text_problem(text)
        if problem:
            raise doc.error(problem, *where)
        if text.casefold() in first_seen:
            first = first_seen[text.casefold()]
            first_line = doc.lines.line_of(("terms", first))
            raise doc.error(f"duplicate term '{text}' (first at line {first_line}, as '{first}')", *where)
        first_seen[text.casefold()] = text
        if isinstance(value, str):
            entries.append(_TermEntry(text, value, None))
        elif isinstance(value, dict):
            _check_keys(doc, value, TERM_KEYS, where, what=f"term '{text}'")
            entries.append(_TermEntry(text, _optional(doc, value, "description", str, where), _weight(doc, value, where)))
        else:
            problem = f"term '{text}' must be a description string or a table {{ description = ..., weight = ... }}"
            raise doc.error(f"{problem}, got {_kind(value)}", *where)
    return _CategoryFile(doc.path, name, description, order, entries)


def _parse_presets(doc: _Doc) -> list[_PresetEntry]:
    presets: list[_PresetEntry] = []
    for name, value in doc.data.items():
        where = (name,)
        if not isinstance(value, dict):
            problem = f"'{name}' must be a preset table [{name}] with text and description, got {_kind(value)}"
            raise doc.error(problem, *where)
        if not NAME_RE.fullmatch(name):
            problem = f"preset name '{name}' must be lowercase letters, digits, '_' or '-', starting with a letter"
            raise doc.error(problem, *where)
        _check_keys(doc, value, PRESET_KEYS, where, what=f"preset '{name}'")
        text = value.get("text")
        if not isinstance(text, str) or not text.strip():
            got = "nothing" if text is None else repr(text)
            raise doc.error(f"preset '{name}' needs a non-empty text = \"...\", got {got}", name, "text")
        presets.append(_PresetEntry(name, text, _optional(doc, value, "description", str, where)))
    return presets


def _parse_subjects(doc: _Doc) -> list[str]:
    _check_keys(doc, doc.data, SUBJECTS_KEYS, ())
    subjects = doc.data.get("subjects", [])
    if not isinstance(subjects, list):
        raise doc.error(f"'subjects' must be a list of strings, got {_kind(subjects)}", "subjects")
    item_lines = doc.lines.strings_after(("subjects",))
    seen: dict[str, int | None] = {}
    for i, subject in enumerate(subjects):
        line = item_lines[i] if i < len(item_lines) else doc.lines.line_of(("subjects",))
        if not isinstance(subject, str):
            raise _error(doc.path, line, f"subject {i + 1} must be a string, got {_kind(subject)}")
        if not subject.strip():
            raise _error(doc.path, line, f"subject {i + 1} is empty")
        if subject.casefold() in seen:
            raise _error(doc.path, line, f"duplicate subject '{subject}' (first at line {seen[subject.casefold()]})")
        seen[subject.casefold()] = line
    return list(subjects)


def _term_text_problem(text: str) -> str | None:
    if not text.strip():
        return "empty term: write the term text between the quotes"
    if text != text.strip():
        return f"term {text!r} has leading or trailing spaces"
    if any(char in text for char in "\n\r\t"):
        return f"term {text!r} contains a line break or tab"
    bad = sorted({char for char in text if char in FORBIDDEN_TERM_CHARS}, key=FORBIDDEN_TERM_CHARS.index)
    if bad:
        shown = " ".join(f"'{char}'" for char in bad)
        return (
            f"term '{text}' contains {shown}: commas separate terms in a prompt and "
            "brackets, parentheses and colons carry weights; remove them"
        )
    return None


def _check_keys(doc: _Doc, table: dict[str, Any], allowed: tuple[str, ...], where: tuple[str, ...], what: str = "") -> None:
    for key in table:
        if key not in allowed:
            place = f" in {what}" if what else ""
            raise doc.error(f"unknown key '{key}'{place}; allowed keys: {', '.join(allowed)}", *where, key)


def _optional(doc: _Doc, table: dict[str, Any], key: str, kind: type, where: tuple[str, ...]) -> Any:
    value = table.get(key)
    if value is None:
        return None
    # bool is an int subclass, but ``order = true`` is a mistake.
    if not isinstance(value, kind) or isinstance(value, bool):
        label = {str: "a string", int: "a whole number"}[kind]
        raise doc.error(f"'{key}' must be {label}, got {_kind(value)} {value!r}", *where, key)
    return value


def _weight(doc: _Doc, table: dict[str, Any], where: tuple[str, ...]) -> float | None:
    value = table.get("weight")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise doc.error(f"weight must be a number (1.0 = neutral), got {_kind(value)} {value!r}", *where, "weight")
    if not math.isfinite(value) or value < 0:
        raise doc.error(f"weight must be a finite number >= 0 (1.0 = neutral), got {value!r}", *where, "weight")
    return float(value)


def _kind(value: Any) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
