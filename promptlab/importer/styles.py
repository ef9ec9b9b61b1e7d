"""Style files: A1111's ``styles.csv`` and Fooocus's style files read, and kept in a vocabulary.

    >>> Style("Cinematic", "{prompt}, film grain", "cartoon", "a1111").apply("a red fox")
    'a red fox, film grain'
    >>> style_key("Cinematic Photo")
    'cinematic-photo'

The choices, and why:

1. Style files are read as their tools read them: ``styles.csv`` with ``utf-8-sig`` and
   ``csv.DictReader(skipinitialspace=True)``, rows whose name starts with ``#`` skipped, the
   old ``text`` column for ``prompt``; a Fooocus file is a JSON list of ``{name, prompt,
   negative_prompt}``. A name given twice keeps the later style, as both tools do.
2. A style applies as A1111's ``merge_prompts`` applies it: the user's prompt goes where
   ``STYLE_PLACEHOLDER`` (``{prompt}``) stands, else after the template and a comma.
3. ``save_styles_as_vocab`` adds each style's negative prompt as a preset to
   ``<vocab_dir>/negative.toml`` (what ``vocab.load_vocab`` reads) and its prompt template to
   ``<vocab_dir>/templates/styles.toml``: the loader reads every top-level ``*.toml`` other
   than ``negative.toml`` and ``subjects.toml`` as a category, so the templates live one
   folder down, where ``load_styles`` reads them. Names become preset names (lowercase,
   ``-``); a name already taken raises ``VocabError`` rather than overwrite it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from promptlab.errors import ImportMetadataError, PromptSyntaxError, VocabError
from promptlab.metadata import MAX_JSON_DEPTH, check_json
from promptlab.prompt import STYLE_PLACEHOLDER, convert
from promptlab.vocab import NAME_RE, NEGATIVE_FILE, toml_string, write_toml_files

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

STYLES_FILE = Path("templates") / "styles.toml"
# A1111's styles.csv and Fooocus's style files are kilobytes; one far larger is no style file.
MAX_STYLE_FILE_BYTES = 16 * 1024 * 1024
StyleSource = Literal["a1111", "fooocus", "promptlab"]
# File suffixes read as style files; anything else is read as an image.
STYLE_SUFFIXES: dict[str, StyleSource] = {".csv": "a1111", ".json": "fooocus"}


@dataclass(frozen=True)
class Style:
    """A style from A1111 or Fooocus: a prompt template and a negative prompt.

    ``{prompt}`` in the template marks where the user's prompt goes. ``prompt`` and
    ``negative_prompt`` are as the tool wrote them, in A1111 syntax.
    """

    name: str
    prompt: str
    negative_prompt: str
    source: StyleSource
    file: Path | None = None

    @property
    def key(self) -> str:
        """The name as a vocabulary preset name: lowercase letters, digits, ``-``."""
        return style_key(self.name)

    def apply(self, prompt: str) -> str:
        """``prompt`` with this style, as A1111 applies one: into ``{prompt}``, else appended after a comma."""
        return _merge(self.prompt, prompt)

    def apply_negative(self, negative_prompt: str) -> str:
        """``negative_prompt`` with this style's negative, by the same rule."""
        return _merge(self.negative_prompt, negative_prompt)

    def compel_prompt(self) -> str:
        """The template in compel syntax (``{prompt}`` kept), for promptlab's builder."""
        return self._compel(self.prompt, "prompt")

    def compel_negative_prompt(self) -> str:
        """The negative prompt in compel syntax."""
        return self._compel(self.negative_prompt, "negative_prompt")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "source": self.source,
            "file": None if self.file is None else str(self.file),
        }

    def _compel(self, text: str, what: str) -> str:
        if not text.strip():
            return ""
        try:
            return convert(text, "a1111", "compel")
        except PromptSyntaxError as error:
            where = f"{self.file}: " if self.file is not None else ""
            raise ImportMetadataError(
                f"{where}style {self.name!r}: its {what} {text!r} cannot be read: {error}"
            ) from error


@dataclass(frozen=True)
class SavedStyles:
    """What ``save_styles_as_vocab`` wrote: the files (None when nothing went there) and the names added."""

    negative_file: Path | None
    styles_file: Path | None
    presets: list[str]
    templates: list[str]


def import_styles(path: Path) -> list[Style]:
    """The styles in an A1111 ``styles.csv`` (``.csv``) or a Fooocus style file (``.json``), in file order."""
    path = Path(path)
    kind = STYLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ImportMetadataError(
            f"{path}: not a style file; promptlab reads A1111 styles.csv (.csv) and Fooocus styles (.json)"
        )
    try:
        if path.stat().st_size > MAX_STYLE_FILE_BYTES:
            raise ImportMetadataError(
                f"{path}: {path.stat().st_size:,} bytes, more than a style file holds (promptlab reads up to {MAX_STYLE_FILE_BYTES:,})"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportMetadataError(f"{path}: no such file") from None
    except OSError as error:
        raise ImportMetadataError(f"{path}: cannot be read ({error.strerror or error})") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportMetadataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    styles = _a1111_styles(text, path) if kind == "a1111" else _fooocus_styles(text, path)
    # a name given twice keeps its first place and its last definition, as a dict does in both tools
    by_name: dict[str, Style] = {}
    for style in styles:
        by_name[style.name] = style
    return list(by_name.values())


def _a1111_styles(text: str, path: Path) -> list[Style]:
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    fields = reader.fieldnames or []
    if "name" not in fields or not ({"prompt", "text"} & set(fields)):
        raise ImportMetadataError(
            f"{path}: A1111 styles.csv needs the columns name,prompt,negative_prompt (or the old name,text); "
            f"its header is {','.join(fields) or 'empty'}"
        )
    styles = []
    try:
        for row in reader:
            name = row.get("name") or ""
            if not name or name.startswith("#"):
                continue
            prompt = row.get("prompt") if "prompt" in fields else row.get("text")
            styles.append(Style(name, prompt or "", row.get("negative_prompt") or "", "a1111", path))
    except csv.Error as error:  # a field past csv's limit, which no style is
        raise ImportMetadataError(f"{path}: cannot be read as CSV ({error})") from None
    return styles


def _fooocus_styles(text: str, path: Path) -> list[Style]:
    try:
        data = check_json(json.loads(text), str(path))
    except RecursionError:
        raise ImportMetadataError(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels, which no style file is") from None
    except ValueError as error:
        raise ImportMetadataError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, list):
        raise ImportMetadataError(
            f"{path}: a Fooocus style file is a JSON list of {{name, prompt, negative_prompt}}, "
            f"got {type(data).__name__}"
        )
    styles = []
    for index, entry in enumerate(data):
        where = f"{path}: entry {index + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise ImportMetadataError(f"{where} is {entry!r}; expected an object with a non-empty \"name\"")
        values = {}
        for key in ("prompt", "negative_prompt"):
            value = entry.get(key, "")
            if not isinstance(value, str):
                raise ImportMetadataError(f"{where} ({entry['name']!r}): {key!r} is {value!r}; expected text")
            values[key] = value
        styles.append(Style(entry["name"], values["prompt"], values["negative_prompt"], "fooocus", path))
    return styles


def style_key(name: str) -> str:
    """A style name as a vocabulary name: ``"Cinematic Photo"`` -> ``cinematic-photo``; one without letters, a hash."""
    key = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")
    if not key:
        return "style-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return key if key[0].isalpha() else f"style-{key}"


def _merge(style_text: str, text: str) -> str:
    # modules/styles.py merge_prompts
    if STYLE_PLACEHOLDER in style_text:
        return style_text.replace(STYLE_PLACEHOLDER, text)
    return ", ".join(part for part in (text.strip(), style_text.strip()) if part)


def save_styles_as_vocab(styles: Sequence[Style], vocab_dir: Path) -> SavedStyles:
    """Add the styles' negative prompts as presets and their templates to ``vocab_dir`` (see point 3).

    Both files are appended to, their comments kept, and written all or nothing: every string is
    escaped as TOML needs, and each new file is read back before it replaces the old one
    (``vocab.write_toml_files``), so an imported style never makes a vocabulary unreadable.
    Raises ``VocabError`` before writing anything if two styles share a key, a key is already
    in the file, or a text holds what no file can (a lone surrogate).
    """
    vocab_dir = Path(vocab_dir)
    # 1. names and texts, all checked before anything is written
    seen: dict[str, str] = {}
    for style in styles:
        if not NAME_RE.fullmatch(style.key):
            raise VocabError(f"style {style.name!r}: key {style.key!r} is not a valid vocabulary name")
        if style.key in seen:
            raise VocabError(
                f"styles {seen[style.key]!r} and {style.name!r} both become the name {style.key!r}; rename one"
            )
        seen[style.key] = style.name
    presets = [(style, style.compel_negative_prompt()) for style in styles if style.negative_prompt.strip()]
    templates = [(style, style.compel_prompt()) for style in styles if style.prompt.strip()]
    negative_file = vocab_dir / NEGATIVE_FILE
    styles_file = vocab_dir / STYLES_FILE
    _check_free(negative_file, [style.key for style, _ in presets])
    _check_free(styles_file, [style.key for style, _ in templates])
    # 2. the tables, as they must read back
    preset_tables = {style.key: {"description": _described(style), "text": text} for style, text in presets}
    template_tables = {
        style.key: {
            "name": style.name,
            "prompt": style.prompt,
            "prompt_compel": compel,
            "negative_prompt": style.negative_prompt,
            **({"negative_preset": style.key} if style.negative_prompt.strip() else {}),
            "source": style.source,
        }
        for style, compel in templates
    }
    names = {style.key: style.name for style in styles}
    # 3. append, both files or neither
    files: dict[Path, str] = {}
    expected: dict[Path, dict[str, dict[str, str]]] = {}
    if presets:
        header = "# Negative-prompt presets imported from style files.\n"
        files[negative_file] = _appended(negative_file, _toml_tables(preset_tables, names), header)
        expected[negative_file] = preset_tables
    if templates:
        header = f"# Prompt templates imported from style files; {STYLE_PLACEHOLDER} marks the user's prompt.\n"
        files[styles_file] = _appended(styles_file, _toml_tables(template_tables, names), header)
        expected[styles_file] = template_tables
    write_toml_files(files, expected)
    return SavedStyles(
        negative_file=negative_file if presets else None,
        styles_file=styles_file if templates else None,
        presets=[style.key for style, _ in presets],
        templates=[style.key for style, _ in templates],
    )


def load_styles(vocab_dir: Path) -> list[Style]:
    """The prompt templates ``save_styles_as_vocab`` wrote to ``<vocab_dir>/templates/styles.toml``; none if absent."""
    path = Path(vocab_dir) / STYLES_FILE
    if not path.is_file():
        return []
    data = _read_toml(path)
    styles = []
    for key, table in data.items():
        if not isinstance(table, dict) or not isinstance(table.get("prompt"), str):
            raise VocabError(f"{path}: [{key}] must be a table with prompt = \"...\"")
        styles.append(
            Style(
                name=str(table.get("name", key)),
                prompt=table["prompt"],
                negative_prompt=str(table.get("negative_prompt", "")),
                source="promptlab",
                file=path,
            )
        )
    return styles


def _described(style: Style) -> str:
    origin = {"a1111": "A1111", "fooocus": "Fooocus", "promptlab": "promptlab"}[style.source]
    where = f" ({style.file.name})" if style.file is not None else ""
    return f"Imported from {origin} style {style.name!r}{where}"


def _check_free(path: Path, keys: Iterable[str]) -> None:
    keys = list(keys)
    if not keys or not path.is_file():
        return
    taken = [key for key in keys if key in _read_toml(path)]
    if taken:
        raise VocabError(f"{path}: already has {', '.join(taken)}; remove those tables or rename the styles first")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise VocabError(f"{path}: cannot be read as TOML ({error})") from error


def _appended(path: Path, text: str, header: str) -> str:
    """The file's text with ``text`` appended (or ``header`` and ``text`` for a new file)."""
    try:
        existing = path.read_text(encoding="utf-8") if path.is_file() else header
    except (OSError, UnicodeDecodeError) as error:
        raise VocabError(f"{path}: cannot be read ({error})") from error
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return existing + text


def _toml_tables(tables: dict[str, dict[str, str]], names: dict[str, str]) -> str:
    return "".join(
        f"\n[{key}]\n" + "".join(f"{field} = {toml_string(value, f'style {names[key]!r} {field}')}\n" for field, value in table.items())
        for key, table in tables.items()
    )
