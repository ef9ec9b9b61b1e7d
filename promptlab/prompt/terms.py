"""Weighted terms and fragments: the values every prompt syntax reads into and writes from, and the syntaxes' names."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from promptlab.errors import PromptSyntaxError

SYNTAXES: tuple[str, ...] = ("compel", "a1111", "plain")


#: The syntaxes prompt text is read from (plain text is only written: it has no weights to read).
SOURCE_SYNTAXES: tuple[str, ...] = ("compel", "a1111")


#: Where a style's prompt template (A1111's styles.csv, Fooocus's style files) takes the user's prompt.
STYLE_PLACEHOLDER = "{prompt}"


WEIGHT_TOLERANCE = 1e-9


WEIGHT_DECIMALS = 9


FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


Fragment = tuple[str, float]
"""A piece of prompt text and its weight, as A1111's ``parse_prompt_attention`` and compel's parser give them."""


@dataclass(frozen=True)
class Term:
    """One prompt term: its text, its weight (1.0 = neutral) and the vocabulary category it came from.

    A term whose parts carry different weights (``a (red)1.5 circle``) keeps them in
    ``fragments``: each piece's text and weight, relative to ``weight``; ``text`` is then the
    pieces joined by spaces. A term with one weight throughout has no fragments.

        >>> from promptlab.prompt import Prompt
        >>> term = Term("a red circle", fragments=(("a", 1.0), ("red", 1.5), ("circle", 1.0)))
        >>> Prompt("", (term,)).to_a1111()
        'a (red:1.5) circle'
    """

    text: str
    weight: float = 1.0
    category: str | None = None
    fragments: tuple[Fragment, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fragments", tuple((str(t), float(w)) for t, w in self.fragments))

    def pieces(self) -> tuple[Fragment, ...]:
        """The term's (text, absolute weight) pieces: its fragments times its weight, or the whole term."""
        if not self.fragments:
            return ((self.text, self.weight),)
        return tuple((text, round(weight * self.weight, WEIGHT_DECIMALS)) for text, weight in self.fragments)


def join_terms(parts: Iterable[str]) -> str:
    return ", ".join(part for part in parts if part.strip())


def join_fragments(parts: Iterable[str]) -> str:
    """Written fragments, a space apart (none before a comma): each syntax reads fragments whitespace aside."""
    joined = ""
    for part in parts:
        if part.strip():
            joined += part if not joined or part.startswith(",") else " " + part
    return joined


def format_weight(weight: float) -> str:
    return f"{weight:.6f}".rstrip("0").rstrip(".")


def check_weight(term: Term) -> None:
    if not math.isfinite(term.weight) or term.weight < 0:
        raise PromptSyntaxError(
            f"term {term.text!r}: weight {term.weight} is not a finite number >= 0; "
            "use a weight like 0.8 (weaker) or 1.3 (stronger)"
        )


def one_part(parts: list[list[Fragment]], text: str, construct: str, pattern: re.Pattern[str]) -> list[Fragment]:
    """The fragments of a prompt in one chunk; a chunk break has no place among the model's terms."""
    if len(parts) > 1:
        raise PromptSyntaxError(
            f"{construct} (a new 75-token chunk) has no place in promptlab's prompt model of terms; "
            "render the text as it is, or join its parts with a comma",
            text=text,
            position=first_match_position(pattern, text),
        )
    return parts[0]


def first_match_position(pattern: re.Pattern[str], text: str) -> int:
    match = pattern.search(text)
    return match.start() if match else 0
