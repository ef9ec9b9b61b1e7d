"""The prompt model: a subject, an ordered list of weighted terms, a negative prompt; read from compel or A1111 text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Callable, Iterable, Protocol

from promptlab.errors import PromptSyntaxError
from promptlab.prompt.a1111 import a1111_parts, a1111_plain, a1111_term
from promptlab.prompt.compel import compel_chunks, compel_parts, compel_plain, compel_term
from promptlab.prompt.terms import SYNTAXES, WEIGHT_DECIMALS, WEIGHT_TOLERANCE, Fragment, Term, join_terms, one_part


@dataclass(frozen=True)
class Prompt:
    """A subject, terms in prompt order (earlier weighs more), and a negative prompt.

    ``negative`` is free text; ``negative_presets`` names presets from the vocabulary's
    negative presets, expanded by ``Vocabulary.negative_text``.
    """

    subject: str
    terms: tuple[Term, ...] = field(default_factory=tuple)
    negative: str = ""
    negative_presets: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple(self.terms))
        object.__setattr__(self, "negative_presets", tuple(self.negative_presets))

    def with_terms(self, *terms: Term) -> Prompt:
        """A copy with ``terms`` appended after the existing ones."""
        return replace(self, terms=self.terms + terms)

    def to_plain(self) -> str:
        """The positive prompt without weights: subject, then the terms, joined with ", "."""
        return self._plain

    def to_compel(self) -> str:
        """The positive prompt in compel's syntax: ``cat, (oil painting)++, (pop-art)1.3``."""
        return self._compel

    def to_a1111(self) -> str:
        """The positive prompt in AUTOMATIC1111's syntax: ``cat, (oil painting:1.21)``."""
        return self._a1111

    # Each text is made once per prompt (the prompt is immutable): a sweep writes every variant's
    # prompt for each of its seeds, three ways.

    @cached_property
    def _plain(self) -> str:
        return join_terms([self.subject, *(term.text for term in self.terms)])

    @cached_property
    def _compel(self) -> str:
        return join_terms([compel_plain(self.subject), *(compel_term(term) for term in self.terms)])

    @cached_property
    def _a1111(self) -> str:
        return join_terms([a1111_plain(self.subject), *(a1111_term(term) for term in self.terms)])

    def render(self, syntax: str) -> str:
        """The positive prompt in ``syntax``, one of ``SYNTAXES``."""
        renderers: dict[str, Callable[[], str]] = {
            "compel": self.to_compel,
            "a1111": self.to_a1111,
            "plain": self.to_plain,
        }
        if syntax not in renderers:
            raise PromptSyntaxError(f"unknown prompt syntax {syntax!r}: choose one of {', '.join(SYNTAXES)}")
        return renderers[syntax]()


class Categorized(Protocol):
    """A vocabulary entry: anything with a ``category``."""

    @property
    def category(self) -> str | None: ...


class TermLookup(Protocol):
    """What the parsers need from a vocabulary (``promptlab.vocab.Vocabulary``) to fill ``Term.category``."""

    def find(self, text: str) -> Categorized | None: ...


def parse_a1111(text: str, vocab: TermLookup | None = None) -> Prompt:
    """Read AUTOMATIC1111 prompt text into a Prompt (see the module docstring for the rules).

    Weights are read exactly as A1111 reads them (``parse_a1111_attention``). A1111's ``BREAK``
    keyword has no place in the model of terms and raises ``PromptSyntaxError`` (``convert``
    and rendering keep it); so do the features ``a1111_parts`` refuses.
    """
    chunks = one_part(a1111_parts(text), text, "A1111 prompt: BREAK", re.compile(r"\bBREAK\b"))
    return _prompt_from_chunks(chunks, vocab)


def parse_compel(text: str, vocab: TermLookup | None = None, *, join_parts: bool = False) -> Prompt:
    """Read compel prompt text into a Prompt, with compel's own parser for the weights.

    Raises ``PromptSyntaxError`` for an unbalanced group (compel would silently read its
    parentheses as text), a weight that is not a number (``(a)1.2.3``), a negative weight
    (``(a)-1.5``), and for compel features the model cannot hold (``.swap()``, ``.blend()``,
    ``withLora()``, and ``.and()`` unless ``join_parts``). With ``join_parts`` the parts of an
    ``.and()`` (A1111's ``BREAK`` chunks) are read as terms one after another: for the terms a
    run record keeps beside the text itself.
    """
    if not join_parts:
        return _prompt_from_chunks(compel_chunks(text), vocab)
    parts = compel_parts(text)
    chunks = [chunk for index, part in enumerate(parts) for chunk in ([(",", 1.0)] if index else []) + part]
    return _prompt_from_chunks(chunks, vocab)


def _prompt_from_chunks(chunks: Iterable[Fragment], vocab: TermLookup | None) -> Prompt:
    segments: list[list[Fragment]] = [[]]
    for chunk_text, weight in chunks:
        first, *rest = chunk_text.split(",")
        segments[-1].append((first, weight))
        segments.extend([(piece, weight)] for piece in rest)

    parsed: list[Term] = []
    for segment in segments:
        term = _segment_term(segment)
        if term is None:
            continue
        if vocab is not None:
            entry = vocab.find(term.text)
            term = replace(term, category=entry.category if entry is not None else None)
        parsed.append(term)

    if parsed and not parsed[0].fragments and abs(parsed[0].weight - 1.0) <= WEIGHT_TOLERANCE:
        return Prompt(parsed[0].text, tuple(parsed[1:]))
    return Prompt("", tuple(parsed))


def _segment_term(segment: list[Fragment]) -> Term | None:
    """The term for one comma-separated segment: one weight, or its weighted fragments (rule 3)."""
    pieces: list[Fragment] = []
    for text, weight in segment:
        text = " ".join(text.split())
        if not text:
            continue
        weight = round(weight, WEIGHT_DECIMALS)
        if pieces and abs(pieces[-1][1] - weight) <= WEIGHT_TOLERANCE:
            pieces[-1] = (f"{pieces[-1][0]} {text}", pieces[-1][1])
        else:
            pieces.append((text, weight))
    if not pieces:
        return None
    if len(pieces) == 1:
        return Term(*pieces[0])
    return Term(" ".join(piece for piece, _ in pieces), 1.0, fragments=tuple(pieces))
