"""The vocabularies: prompt terms by category, negative-prompt presets and subject templates.

Pure Python: this module never imports torch. The data lives in TOML files, one per
category, in the repository's ``vocab/`` folder. A user's own folder (``PROMPTLAB_VOCAB``,
or ``dirs`` here, which the CLI's ``--vocab DIR`` passes) adds terms and categories and
overrides the bundled ones; a user adds a category by adding a file, no code change.

    >>> vocab = load_vocab(use_env=False)
    >>> list(vocab.categories)[:3]
    ['medium', 'style', 'artist']
    >>> vocab.find("Pop-Art").category
    'style'
    >>> vocab.negative_preset("minimal").text
    'ugly, bad anatomy'

A category file (any ``NAME.toml`` other than ``negative.toml`` and ``subjects.toml``)::

    category = "style"          # optional: defaults to the file name without .toml
    description = "The art movement or visual style"
    order = 20                  # place in the prompt; categories without one go last
    [terms]
    "pop-art" = "Bold flat colours and comic-book outlines"
    "steampunk" = { description = "Victorian brass machinery", weight = 1.1 }

``negative.toml`` holds one table per preset (``[photo]`` with ``text`` and
``description``); ``subjects.toml`` holds ``subjects = ["a squirrel", ...]``.
"""

from __future__ import annotations

from promptlab.vocab.load import load_vocab, vocab_dirs
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
    NegativeParts,
    NegativePreset,
    VocabTerm,
    Vocabulary,
    split_items,
)
from promptlab.vocab.write import toml_string, write_toml_files

__all__ = [
    "BUNDLED_VOCAB_DIR",
    "CATEGORY_KEYS",
    "Category",
    "DEFAULT_ORDER",
    "FORBIDDEN_TERM_CHARS",
    "NAME_RE",
    "NEGATIVE_FILE",
    "NegativeParts",
    "NegativePreset",
    "PRESET_KEYS",
    "SUBJECTS_FILE",
    "SUBJECTS_KEYS",
    "TERM_KEYS",
    "VocabTerm",
    "Vocabulary",
    "load_vocab",
    "split_items",
    "toml_string",
    "vocab_dirs",
    "write_toml_files",
]
