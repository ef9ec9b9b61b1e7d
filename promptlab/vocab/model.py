"""The vocabulary's values: terms, categories, negative presets, and the file and key names they are read from."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from promptlab.errors import VocabError
from promptlab.paths import bundled_vocab_dir


class NegativeParts(Protocol):
    """What a negative prompt is made of (``prompt.Prompt`` has both): vocab reads prompts, never imports them."""

    @property
    def negative_presets(self) -> Sequence[str]: ...

    @property
    def negative(self) -> str: ...


BUNDLED_VOCAB_DIR = bundled_vocab_dir()


NEGATIVE_FILE = "negative.toml"


SUBJECTS_FILE = "subjects.toml"


# Categories without an ``order`` key sort after the bundled ones (10..70), then by name.
DEFAULT_ORDER = 1000


CATEGORY_KEYS = ("category", "description", "order", "terms")


TERM_KEYS = ("description", "weight")


PRESET_KEYS = ("text", "description")


SUBJECTS_KEYS = ("subjects",)


# Commas separate prompt terms; brackets, parentheses and colons carry weights in compel/A1111 syntax.
FORBIDDEN_TERM_CHARS = ",()[]{}<>:"


NAME_RE = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class VocabTerm:
    """One vocabulary term: its category, its text as written in a prompt, what it does, its default weight."""

    category: str
    text: str
    description: str
    weight: float = 1.0


@dataclass(frozen=True)
class Category:
    """A category of terms (medium, style, ...), its place in the prompt and the files it came from."""

    name: str
    description: str
    order: int
    terms: tuple[VocabTerm, ...]
    source: tuple[Path, ...]

    def find(self, text: str) -> VocabTerm | None:
        """The term whose text matches ``text`` case-insensitively, or None."""
        key = text.strip().casefold()
        return next((term for term in self.terms if term.text.casefold() == key), None)


@dataclass(frozen=True)
class NegativePreset:
    """A named negative prompt, e.g. ``universal``."""

    name: str
    text: str
    description: str


@dataclass(frozen=True)
class Vocabulary:
    """Every category (in prompt order), the negative presets and the subject templates."""

    categories: dict[str, Category]
    negative_presets: dict[str, NegativePreset]
    subjects: tuple[str, ...]
    dirs: tuple[Path, ...] = ()
    _index: dict[str, VocabTerm] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, VocabTerm] = {}
        for category in self.categories.values():
            for term in category.terms:
                # Prompt order decides when two categories share a term.
                index.setdefault(term.text.casefold(), term)
        object.__setattr__(self, "_index", index)

    def category(self, name: str) -> Category:
        """The category called ``name``; VocabError listing the known ones if there is none."""
        if name not in self.categories:
            known = ", ".join(self.categories)
            raise VocabError(f"unknown vocabulary category '{name}'; known categories: {known}")
        return self.categories[name]

    def find(self, text: str) -> VocabTerm | None:
        """The term whose text matches ``text`` case-insensitively, in any category, or None."""
        return self._index.get(text.strip().casefold())

    def negative_preset(self, name: str) -> NegativePreset:
        """The negative preset called ``name``; VocabError listing the known ones if there is none."""
        if name not in self.negative_presets:
            known = ", ".join(self.negative_presets)
            raise VocabError(f"unknown negative preset '{name}'; known presets: {known}")
        return self.negative_presets[name]

    def negative_text(self, prompt: NegativeParts) -> str:
        """The prompt's presets' texts then its free negative text, joined with ", ", repeats dropped.

        Items are the comma-separated parts (commas inside brackets do not split); a repeat is
        an item equal to an earlier one ignoring case, and the first spelling and place are kept.
        """
        parts = [self.negative_preset(name).text for name in prompt.negative_presets]
        parts.append(prompt.negative)
        items: list[str] = []
        seen: set[str] = set()
        for part in parts:
            for item in split_items(part):
                if item.casefold() not in seen:
                    seen.add(item.casefold())
                    items.append(item)
        return ", ".join(items)

    def category_order(self, name: str) -> int:
        """The place of category ``name`` in the prompt (smaller comes first)."""
        return self.category(name).order


def split_items(text: str) -> list[str]:
    """``text`` split on commas outside brackets, each item stripped, empty items left out."""
    items: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]
