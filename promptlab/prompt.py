"""The prompt model: a subject, an ordered list of weighted terms, and a negative prompt.

A prompt renders to three syntaxes and reads back from two:

- ``compel``: ``(oil painting)++``, ``pop+``, ``(term)1.3``; read with compel's own parser.
- ``a1111``: ``(oil painting:1.21)``; read exactly as AUTOMATIC1111's ``parse_prompt_attention``.
- ``plain``: the text without weights, which is what the CLIP text encoder reads.

Pure Python: this module never imports torch (compel's parser is loaded without compel's
package, whose ``__init__`` imports torch).

    >>> p = Prompt("fat cat lies on the couch", [Term("oil painting", 1.21, "medium")])
    >>> p.to_compel()
    'fat cat lies on the couch, (oil painting)++'
    >>> p.to_a1111()
    'fat cat lies on the couch, (oil painting:1.21)'
    >>> convert("a cat, (pop-art:1.1), [blurry]", "a1111", "compel")
    'a cat, (pop-art)+, (blurry)0.909091'
    >>> parse_a1111("maine coon (cat:1.2) in the park").to_compel()
    'maine coon (cat)1.2 in the park'

``convert`` does not go through the model: it rewrites the text fragment for fragment, so
even a weighted comma or a ``BREAK`` (which terms cannot hold) reaches the other syntax intact.

Reading prompt text into the model (``parse_compel``, ``parse_a1111``):

1. The syntax's own reader turns the text into (text, weight) chunks.
2. The chunks' text is split on commas; each segment's whitespace is collapsed to single spaces;
   empty segments are skipped.
3. A segment whose chunks carry different weights (``a (red) car``) is one term whose
   ``fragments`` keep each chunk's text and weight: no weight is ever dropped or averaged.
4. The first segment is the subject when it has one weight, 1.0; a weighted first segment is a
   term and the subject is empty (the subject carries no weight, and a weight is never dropped).
5. Weights are rounded to 9 decimals, dropping the float noise of nested multipliers
   (1.1 * 1.1 = 1.2100000000000002).

Known limits of compel (documented, not worked around):

- Only ``(``, ``)`` and ``"`` can be escaped: compel's parser also accepts ``\\,`` ``\\.``
  ``\\+`` ``\\-`` ``\\=``, but passes their backslash on to the text encoder.
- Inside a weighted group compel reads ``.`` as a word of its own: ``(x.y)+`` reaches the
  encoder as ``x . y``, and reads back so. CLIP's tokenizer splits punctuation from letters
  anyway, so the tokens are the same (runs like ``..`` aside).
- A ``+`` or ``-`` that ends a word is a weight operator to compel (``c++`` is ``c`` at 1.21),
  and inside a weighted group so is a free-standing one (``a - b``); a ``=`` or a trailing
  backslash breaks a weighted group; a backslash before ``(`` ``)`` ``"`` is taken for an
  escape. ``to_compel`` raises ``PromptSyntaxError`` for such text rather than let compel
  silently change it.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from dataclasses import dataclass, field, replace
from functools import cache, cached_property, lru_cache
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Protocol

from promptlab.errors import PromptSyntaxError

SYNTAXES: tuple[str, ...] = ("compel", "a1111", "plain")
#: The syntaxes prompt text is read from (plain text is only written: it has no weights to read).
SOURCE_SYNTAXES: tuple[str, ...] = ("compel", "a1111")
#: Where a style's prompt template (A1111's styles.csv, Fooocus's style files) takes the user's prompt.
STYLE_PLACEHOLDER = "{prompt}"

_WEIGHT_TOLERANCE = 1e-9
_WEIGHT_DECIMALS = 9

# compel's shorthand: weight 1.1**n is n '+', 0.9**n is n '-' (compel's attention_plus/minus_base).
_COMPEL_SHORTHAND: tuple[tuple[float, str], ...] = tuple(
    (base**n, sign * n) for base, sign in ((1.1, "+"), (0.9, "-")) for n in (1, 2, 3)
)
# The characters compel's grammar treats as syntax (prompt_parser.build_parser_syntax).
_COMPEL_SYNTAX_CHARS = '()",.+-='
# A term that compel reads as one word, so its weight can follow it bare: `pop+`.
_COMPEL_BARE_WORD = re.compile(r'[^\s()",.+\-=\\]+')
_COMPEL_KEEPS_BACKSLASH = "(its \\+ \\- \\= escapes reach the text encoder with the backslash)"
_COMPEL_UNSUPPORTED = re.compile(r"\.(?:swap|blend|and|add)\(|\b(?:with|use)Lora\(")

# AUTOMATIC1111 modules/prompt_parser.py `re_attention`, token for token.
_A1111_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]?                        # escaped bracket or backslash; a lone backslash is dropped
    | \(
    | \[
    | :\s*(?P<weight>[+-]?[.\d]+)\s*\)   # closes a round bracket with an explicit weight
    | \)
    | \]
    | [^\\()\[\]:]+
    | :
    """,
    re.X,
)
_A1111_BREAK = re.compile(r"\s*\b(BREAK)\b\s*", re.S)
# A1111 reads these before its weights (prompt_parser.py's schedule grammar, extra_networks.py),
# and diffusers' pipelines and compel have no way to render them.
_A1111_NOT_RENDERED = "diffusers' pipelines and compel cannot render it, so promptlab refuses it rather than pass it on as text"
_A1111_FEATURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\bAND\b"),
        "AND is composable diffusion (one noise prediction per sub-prompt, added with weights); "
        f"{_A1111_NOT_RENDERED}. Render the sub-prompts as variants, or join them with BREAK",
    ),
    (
        re.compile(r"(?<!\\)\[(?:[^\[\]\\]|\\.)*:\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*\]"),
        f"[from:to:when] is prompt editing (the prompt changes during sampling); {_A1111_NOT_RENDERED}. "
        "Render the two prompts as separate variants",
    ),
    (
        re.compile(r"(?<!\\)\[(?:[^\[\]\\]|\\.)*\|(?:[^\[\]\\]|\\.)*\]"),
        f"[a|b] is alternation (the prompt switches every step); {_A1111_NOT_RENDERED}. "
        "Render each alternative as a variant",
    ),
    (
        re.compile(r"<(?:lora|lyco|locon):[^>]+>", re.I),
        f"a LoRA tag loads a LoRA in A1111; promptlab cannot load LoRAs yet and {_A1111_NOT_RENDERED}. Remove the tag",
    ),
    (
        re.compile(r"<hypernet:[^>]+>", re.I),
        f"a hypernetwork tag; hypernetworks are an A1111-only format and {_A1111_NOT_RENDERED}. Remove the tag",
    ),
    (
        re.compile(r"<\w+:[^>]+>"),
        f"A1111 reads <name:...> as an extra-network tag (an extension's); {_A1111_NOT_RENDERED}. Remove the tag",
    ),
)
# Text that only makes sense as A1111 syntax, which compel would read as literal words.
_A1111_LOOKALIKES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\((?:[^()\\]|\\.)*:\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*\)"), "a (text:weight) group"),
    (re.compile(r"\[[^\[\]]*\]"), "square brackets: a weaker term, prompt editing or alternation"),
    (re.compile(r"<\w+:[^>]+>"), "an extra-network tag such as <lora:name:0.8>"),
    (re.compile(r"\bBREAK\b"), "BREAK starts a new 75-token chunk; in compel that is (\"a\", \"b\").and()"),
    (re.compile(r"\bAND\b"), "AND is composable diffusion"),
)
_A1111_ESCAPED = re.compile(r"([\\()\[\]])")
_A1111_ROUND = 1.1
_A1111_SQUARE = 1 / 1.1
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


Fragment = tuple[str, float]
"""A piece of prompt text and its weight, as A1111's ``parse_prompt_attention`` and compel's parser give them."""


@dataclass(frozen=True)
class Term:
    """One prompt term: its text, its weight (1.0 = neutral) and the vocabulary category it came from.

    A term whose parts carry different weights (``a (red)1.5 circle``) keeps them in
    ``fragments``: each piece's text and weight, relative to ``weight``; ``text`` is then the
    pieces joined by spaces. A term with one weight throughout has no fragments.

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
        return tuple((text, round(weight * self.weight, _WEIGHT_DECIMALS)) for text, weight in self.fragments)


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
        return _join([self.subject, *(term.text for term in self.terms)])

    @cached_property
    def _compel(self) -> str:
        return _join([_compel_plain(self.subject), *(_compel_term(term) for term in self.terms)])

    @cached_property
    def _a1111(self) -> str:
        return _join([_a1111_plain(self.subject), *(_a1111_term(term) for term in self.terms)])

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
    chunks = _one_part(a1111_parts(text), text, "A1111 prompt: BREAK", re.compile(r"\bBREAK\b"))
    return _prompt_from_chunks(chunks, vocab)


def parse_a1111_attention(text: str) -> list[tuple[str, float]]:
    """A1111's (text, weight) chunks for ``text``, as its ``parse_prompt_attention`` returns them.

    ``(a)`` multiplies by 1.1, ``[a]`` divides by 1.1, ``(a:1.3)`` multiplies by 1.3, nesting
    multiplies; ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are literal characters and a lone backslash
    is dropped; an unclosed bracket applies its multiplier to the rest of the prompt; a stray
    closing bracket is literal text; neighbouring chunks of equal weight merge. ``BREAK`` is
    the chunk ``("BREAK", -1.0)``, as in A1111. A1111's prompt editing (``[a:b:0.5]``),
    alternation (``[a|b]``) and ``AND`` are handled before this step in A1111 and are plain
    text here.

    Raises ``PromptSyntaxError`` where A1111 would crash on a weight that is not a number
    (``(a:1.2.3)``), and for a negative weight (``(a:-1)``).
    """
    return [(chunk.text, chunk.weight) for chunk in _scan_a1111(text)]


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
        return _prompt_from_chunks(_compel_chunks(text), vocab)
    parts = compel_parts(text)
    chunks = [chunk for index, part in enumerate(parts) for chunk in ([(",", 1.0)] if index else []) + part]
    return _prompt_from_chunks(chunks, vocab)


def convert(text: str, from_syntax: str, to_syntax: str) -> str:
    """Rewrite prompt text from one syntax to another, weighted fragment for weighted fragment.

    ``from_syntax`` is "a1111" or "compel", ``to_syntax`` one of ``SYNTAXES``. The text is read
    into the (text, weight) fragments its own parser gives (A1111's ``parse_prompt_attention``,
    compel's parser) and each fragment is written with its weight, so the other syntax's parser
    reads back the same fragments, whitespace aside; nesting comes out multiplied through.
    A1111's ``BREAK`` and compel's ``("a", "b").and()`` (both: encode each part in its own
    75-token chunk, then concatenate) convert into each other. A1111 features that diffusers
    and compel cannot render (``AND``, ``[a:b:0.5]``, ``[a|b]``, ``<lora:...>``) and text the
    target syntax cannot hold raise ``PromptSyntaxError`` naming the construct.

        >>> convert("maine coon (cat:1.2) in the park", "a1111", "compel")
        'maine coon (cat)1.2 in the park'
        >>> convert("a (red)1.5 circle, blurry-", "compel", "a1111")
        'a (red:1.5) circle, (blurry:0.9)'
        >>> convert("a cat BREAK oil painting", "a1111", "compel")
        '("a cat", "oil painting").and()'
    """
    readers: dict[str, Callable[[str], list[list[Fragment]]]] = {"a1111": a1111_parts, "compel": compel_parts}
    if from_syntax not in readers:
        raise PromptSyntaxError(f"cannot read prompt syntax {from_syntax!r}: choose one of {', '.join(readers)}")
    if to_syntax not in SYNTAXES:
        raise PromptSyntaxError(f"unknown prompt syntax {to_syntax!r}: choose one of {', '.join(SYNTAXES)}")
    return write_parts(readers[from_syntax](text), to_syntax)


def compel_prompt(text: str, syntax: str = "compel") -> str:
    """The compel text to render for ``text`` written in ``syntax`` ("compel" or "a1111").

    Every entry point (``promptlab render``, experiment files, the dashboard) reads prompts
    through this one function. A1111 text is converted exactly (``convert``). Compel text is
    returned as written, after two checks: compel can parse it into what promptlab renders,
    and it holds no text that only makes sense as A1111 syntax (``(word:1.3)``, ``[word]``,
    ``<lora:...>``, ``BREAK``, ``AND``), which compel would pass to the encoder as literal words.

        >>> compel_prompt("a (red:1.3) circle", "a1111")
        'a (red)1.3 circle'
        >>> compel_prompt("a (red)1.3 circle")
        'a (red)1.3 circle'
    """
    if syntax == "a1111":
        return convert(text, "a1111", "compel")
    if syntax != "compel":
        raise PromptSyntaxError(f"cannot read prompt syntax {syntax!r}: choose compel or a1111")
    for pattern, what in _A1111_LOOKALIKES:
        found = pattern.search(text)
        if found:
            raise PromptSyntaxError(
                f"compel prompt: {found.group(0).strip()!r} is A1111 syntax ({what}), which compel would render as "
                "literal text; read the prompt as A1111 (--syntax a1111, or syntax = \"a1111\" in an experiment "
                "file) or rewrite it with: promptlab prompt convert --from a1111 --to compel",
                text=text,
                position=found.start(),
            )
    compel_parts(text)
    return text


def a1111_parts(text: str) -> list[list[Fragment]]:
    """A1111's (text, weight) fragments for ``text``, one list per ``BREAK``-separated chunk.

    Raises ``PromptSyntaxError`` for the A1111 features promptlab cannot render (see
    ``_A1111_FEATURES``), naming the construct; never passes them on as text.
    """
    for pattern, what in _A1111_FEATURES:
        found = pattern.search(text)
        if found:
            raise PromptSyntaxError(f"A1111 prompt: {found.group(0).strip()!r}: {what}", text=text, position=found.start())
    parts: list[list[Fragment]] = [[]]
    for chunk in _scan_a1111(text):
        if chunk.is_break:
            parts.append([])
        else:
            parts[-1].append((chunk.text, chunk.weight))
    # A1111 starts no chunk after a final BREAK.
    while len(parts) > 1 and not "".join(t for t, _ in parts[-1]).strip():
        parts.pop()
    return parts


def compel_parts(text: str) -> list[list[Fragment]]:
    """compel's (text, weight) fragments for ``text``, one list per part of a ``.and()`` conjunction."""
    return [list(part) for part in _compel_parts(text)]


# compel's pyparsing grammar takes ~20 ms a prompt; a run writes each variant's prompt and the
# shared negative prompt into every image's metadata, so each distinct text is parsed once.
@lru_cache(maxsize=1024)
def _compel_parts(text: str) -> tuple[tuple[Fragment, ...], ...]:
    _check_compel_groups(text)
    _check_compel_weights(text)
    module = _compel_prompt_parser_module()
    try:
        conjunction = _compel_parser().parse_conjunction(text)  # type: ignore[attr-defined]
    except Exception as error:  # pyparsing.ParseException, or compel's own ParsingException
        raise PromptSyntaxError(
            f"compel cannot parse the prompt: {error}", text=text, position=min(getattr(error, "loc", 0), len(text))
        ) from error
    unsupported = PromptSyntaxError(
        "compel prompt: .swap(), .blend(), weighted .and() and withLora() have no equivalent in promptlab",
        text=text,
        position=_first_match_position(_COMPEL_UNSUPPORTED, text),
    )
    if conjunction.lora_weights or any(abs(w - 1.0) > _WEIGHT_TOLERANCE for w in conjunction.weights):
        raise unsupported
    parts: list[tuple[Fragment, ...]] = []
    for flattened in conjunction.prompts:
        if not isinstance(flattened, module.FlattenedPrompt):
            raise unsupported
        part: list[Fragment] = []
        for fragment in flattened.children:
            if not isinstance(fragment, module.Fragment):
                raise unsupported
            if fragment.weight < 0:
                raise PromptSyntaxError(
                    f"compel prompt: {fragment.text!r} has negative weight {fragment.weight}; weights must be >= 0",
                    text=text,
                    position=_first_match_position(re.compile(r"-\s*\.?\d"), text),
                )
            part.append((fragment.text, fragment.weight))
        parts.append(tuple(part))
    return tuple(parts)


def write_parts(parts: list[list[Fragment]], syntax: str) -> str:
    """Prompt text in ``syntax`` for fragments in chunks (``a1111_parts``, ``compel_parts``)."""
    if syntax not in SYNTAXES:
        raise PromptSyntaxError(f"unknown prompt syntax {syntax!r}: choose one of {', '.join(SYNTAXES)}")
    writers: dict[str, Callable[[Term], str]] = {"compel": _compel_term, "a1111": _a1111_term, "plain": lambda t: t.text}
    texts = [_join_fragments(writers[syntax](Term(" ".join(t.split()), w)) for t, w in part) for part in parts]
    if len(texts) == 1 or syntax == "plain":
        return " ".join(text for text in texts if text)
    if syntax == "a1111":
        return " BREAK ".join(texts)
    for text in texts:
        if text.endswith("\\"):
            raise _compel_misread(text, "\\", len(text) - 1, "as escaping the quote that closes this BREAK chunk")
    return "(" + ", ".join(f'"{text}"' for text in texts) + ").and()"


def _join(parts: Iterable[str]) -> str:
    return ", ".join(part for part in parts if part.strip())


def _join_fragments(parts: Iterable[str]) -> str:
    """Written fragments, a space apart (none before a comma): each syntax reads fragments whitespace aside."""
    joined = ""
    for part in parts:
        if part.strip():
            joined += part if not joined or part.startswith(",") else " " + part
    return joined


def _format_weight(weight: float) -> str:
    return f"{weight:.6f}".rstrip("0").rstrip(".")


def _check_weight(term: Term) -> None:
    if not math.isfinite(term.weight) or term.weight < 0:
        raise PromptSyntaxError(
            f"term {term.text!r}: weight {term.weight} is not a finite number >= 0; "
            "use a weight like 0.8 (weaker) or 1.3 (stronger)"
        )


def _a1111_plain(text: str) -> str:
    match = re.search(r"\b(?:BREAK|AND)\b|<\w+:[^>]+>", text)
    if match:
        raise PromptSyntaxError(
            f"{text!r}: A1111 reads {match.group(0)!r} as syntax (a chunk break, composable diffusion or an "
            "extra-network tag) and has no escape for it; reword the text",
            text=text,
            position=match.start(),
        )
    return _A1111_ESCAPED.sub(r"\\\1", text)


def _a1111_term(term: Term) -> str:
    _check_weight(term)
    if term.fragments:
        return _join_fragments(_a1111_term(Term(text, weight)) for text, weight in term.pieces())
    escaped = _a1111_plain(term.text)
    if abs(term.weight - 1.0) <= _WEIGHT_TOLERANCE or not term.text.strip():
        return escaped
    return f"({escaped}:{_format_weight(term.weight)})"


def _compel_escape(text: str) -> tuple[str, list[int]]:
    """``text`` with ( ) " escaped for compel, and each escaped character's index in ``text``."""
    escaped: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char == "\\" and text[index + 1 : index + 2] in ("(", ")", '"'):
            # compel unescapes a fragment's text once per copy it makes, a varying number of times.
            raise _compel_misread(text, char, index, f"before {text[index + 1]!r} as an escape and drop it")
        if char in '()"':
            escaped.append("\\")
            origin.append(index)
        escaped.append(char)
        origin.append(index)
    return "".join(escaped), origin


def _compel_word_char(escaped: str, index: int) -> bool:
    return index < len(escaped) and not escaped[index].isspace() and escaped[index] not in _COMPEL_SYNTAX_CHARS


def _compel_misread(text: str, char: str, position: int, rule: str) -> PromptSyntaxError:
    return PromptSyntaxError(
        f"{text!r}: compel would read the {char!r} {rule}; reword the text",
        text=text,
        position=position,
    )


def _compel_plain(text: str) -> str:
    """Unweighted text for compel: no word may start with a word followed by a + or - run."""
    escaped, origin = _compel_escape(text)
    for token in re.finditer(r"\S+", escaped):
        end = _compel_leading_word_end(escaped, token.start())
        if token.start() < end < token.end() and escaped[end] in "+-":
            rule = f"after a word as a weight operator {_COMPEL_KEEPS_BACKSLASH}"
            raise _compel_misread(text, escaped[end], origin[end], rule)
    return escaped


def _compel_leading_word_end(escaped: str, start: int) -> int:
    """Where compel's `non_syntax_word` starting at ``start`` ends (its grammar, char by char)."""
    index = start
    while index < len(escaped):
        char = escaped[index]
        if char == "\\" and index + 1 < len(escaped) and escaped[index + 1] in _COMPEL_SYNTAX_CHARS:
            index += 2
        elif char in "+-" and _compel_word_char(escaped, index + 1):
            index += 1
        elif char.isspace() or char in _COMPEL_SYNTAX_CHARS:
            break
        else:
            index += 1
    return index


def _compel_group_body(text: str) -> str:
    """Text for inside a compel weight group: every + and - inside a word, no =, no trailing backslash."""
    escaped, origin = _compel_escape(text)
    index = 0
    while index < len(escaped):
        char = escaped[index]
        if char == "\\" and index + 1 < len(escaped) and escaped[index + 1] in _COMPEL_SYNTAX_CHARS:
            index += 2
            continue
        if char in "+-" and not _compel_word_char(escaped, index + 1):
            rule = f"inside a weighted group as a weight operator {_COMPEL_KEEPS_BACKSLASH}"
            raise _compel_misread(text, char, origin[index], rule)
        if char == "=":
            rule = f"inside a weighted group as an option sign {_COMPEL_KEEPS_BACKSLASH}"
            raise _compel_misread(text, char, origin[index], rule)
        index += 1
    if escaped.endswith("\\"):
        raise _compel_misread(text, "\\", len(text) - 1, "as escaping the group's closing parenthesis")
    return escaped


def _compel_term(term: Term) -> str:
    _check_weight(term)
    if term.fragments:
        return _join_fragments(_compel_term(Term(text, weight)) for text, weight in term.pieces())
    if abs(term.weight - 1.0) <= _WEIGHT_TOLERANCE or not term.text.strip():
        return _compel_plain(term.text)
    body = _compel_group_body(term.text)
    for weight, operators in _COMPEL_SHORTHAND:
        if abs(term.weight - weight) <= _WEIGHT_TOLERANCE:
            return f"{body}{operators}" if _COMPEL_BARE_WORD.fullmatch(term.text) else f"({body}){operators}"
    return f"({body}){_format_weight(term.weight)}"


@dataclass
class _Chunk:
    text: str
    weight: float
    position: int
    is_break: bool = False


def _scan_a1111(text: str) -> list[_Chunk]:
    """AUTOMATIC1111's parse_prompt_attention, with each chunk's position kept for error messages."""
    chunks: list[_Chunk] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, multiplier: float) -> None:
        for chunk in chunks[start:]:
            chunk.weight *= multiplier

    for match in _A1111_TOKEN.finditer(text):
        token = match.group(0)
        weight = match.group("weight")
        if token.startswith("\\"):
            chunks.append(_Chunk(token[1:], 1.0, match.start()))
        elif token == "(":
            round_brackets.append(len(chunks))
        elif token == "[":
            square_brackets.append(len(chunks))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), _a1111_weight(weight, text, match.start("weight")))
        elif token == ")" and round_brackets:
            multiply_range(round_brackets.pop(), _A1111_ROUND)
        elif token == "]" and square_brackets:
            multiply_range(square_brackets.pop(), _A1111_SQUARE)
        else:
            start = 0
            for brk in _A1111_BREAK.finditer(token):
                chunks.append(_Chunk(token[start : brk.start()], 1.0, match.start() + start))
                chunks.append(_Chunk("BREAK", -1.0, match.start() + brk.start(1), is_break=True))
                start = brk.end()
            chunks.append(_Chunk(token[start:], 1.0, match.start() + start))

    for start in round_brackets:
        multiply_range(start, _A1111_ROUND)
    for start in square_brackets:
        multiply_range(start, _A1111_SQUARE)
    if not chunks:
        chunks = [_Chunk("", 1.0, 0)]

    merged = [chunks[0]]
    for chunk in chunks[1:]:
        if chunk.weight == merged[-1].weight:
            merged[-1].text += chunk.text
            merged[-1].is_break = merged[-1].is_break or chunk.is_break
        else:
            merged.append(chunk)
    return merged


def _a1111_weight(weight: str, text: str, position: int) -> float:
    if not _FLOAT.fullmatch(weight):
        raise PromptSyntaxError(
            f"A1111 prompt: weight {weight!r} is not a number; write it like (term:1.3)",
            text=text,
            position=position,
        )
    value = float(weight)
    if value < 0:
        raise PromptSyntaxError(
            f"A1111 prompt: weight {weight!r} is negative; weights must be >= 0 "
            "(use [term] or (term:0.5) to weaken a term, the negative prompt to avoid it)",
            text=text,
            position=position,
        )
    return value


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

    if parsed and not parsed[0].fragments and abs(parsed[0].weight - 1.0) <= _WEIGHT_TOLERANCE:
        return Prompt(parsed[0].text, tuple(parsed[1:]))
    return Prompt("", tuple(parsed))


def _segment_term(segment: list[Fragment]) -> Term | None:
    """The term for one comma-separated segment: one weight, or its weighted fragments (rule 3)."""
    pieces: list[Fragment] = []
    for text, weight in segment:
        text = " ".join(text.split())
        if not text:
            continue
        weight = round(weight, _WEIGHT_DECIMALS)
        if pieces and abs(pieces[-1][1] - weight) <= _WEIGHT_TOLERANCE:
            pieces[-1] = (f"{pieces[-1][0]} {text}", pieces[-1][1])
        else:
            pieces.append((text, weight))
    if not pieces:
        return None
    if len(pieces) == 1:
        return Term(*pieces[0])
    return Term(" ".join(piece for piece, _ in pieces), 1.0, fragments=tuple(pieces))


@cache
def _compel_prompt_parser_module() -> ModuleType:
    """compel's prompt_parser module, loaded from its file so that compel's torch-importing __init__ never runs."""
    if "compel.prompt_parser" in sys.modules:
        return sys.modules["compel.prompt_parser"]
    package = importlib.util.find_spec("compel")
    if package is None or not package.submodule_search_locations:
        raise ImportError("compel is not installed; promptlab needs it to read compel prompts")
    path = Path(list(package.submodule_search_locations)[0]) / "prompt_parser.py"
    spec = importlib.util.spec_from_file_location("promptlab._compel_prompt_parser", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load compel's prompt parser from {path}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the defining module up in sys.modules while building compel's LoraWeight.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def _compel_parser() -> object:
    return _compel_prompt_parser_module().PromptParser()


def _compel_chunks(text: str) -> list[Fragment]:
    """compel's flattened (text, weight) fragments for ``text``, which must be a single prompt."""
    return _one_part(compel_parts(text), text, "compel prompt: .and() (A1111's BREAK)", _COMPEL_UNSUPPORTED)


def _one_part(parts: list[list[Fragment]], text: str, construct: str, pattern: re.Pattern[str]) -> list[Fragment]:
    """The fragments of a prompt in one chunk; a chunk break has no place among the model's terms."""
    if len(parts) > 1:
        raise PromptSyntaxError(
            f"{construct} (a new 75-token chunk) has no place in promptlab's prompt model of terms; "
            "render the text as it is, or join its parts with a comma",
            text=text,
            position=_first_match_position(pattern, text),
        )
    return parts[0]


def _first_match_position(pattern: re.Pattern[str], text: str) -> int:
    match = pattern.search(text)
    return match.start() if match else 0


def _check_compel_groups(text: str) -> None:
    """Raise for an unbalanced parenthesis: compel would silently read it as text."""
    open_positions: list[int] = []
    for index, char in enumerate(text):
        if index > 0 and text[index - 1] == "\\":
            continue
        if char == "(":
            open_positions.append(index)
        elif char == ")":
            if not open_positions:
                raise PromptSyntaxError(
                    "compel prompt: ')' closes no group; remove it or escape it as \\)", text=text, position=index
                )
            open_positions.pop()
    if open_positions:
        raise PromptSyntaxError(
            "compel prompt: '(' opens a group that is never closed; close it or escape it as \\(",
            text=text,
            position=open_positions[0],
        )


def _check_compel_weights(text: str) -> None:
    """Raise for a negative or malformed number after a group, which compel would read as other text."""
    for close in re.finditer(r"(?<!\\)\)", text):
        after = close.end()
        negative = re.match(r"-\.?\d[\d.]*", text[after:])
        if negative:
            raise PromptSyntaxError(
                f"compel prompt: weight {negative.group()!r} after a group is negative; weights must be >= 0 "
                "(write (term)0.5 or (term)- to weaken a term)",
                text=text,
                position=after,
            )
        number = re.match(r"[\d.]*\d[\d.]*", text[after:])
        if number and not re.fullmatch(r"(?:\d+\.?\d*|\.\d+)\.?", number.group()):
            raise PromptSyntaxError(
                f"compel prompt: weight {number.group()!r} is not a number; write it like (term)1.3",
                text=text,
                position=after,
            )
    attend = re.search(r"\.attend\(\s*(-)", text)
    if attend:
        raise PromptSyntaxError(
            "compel prompt: a negative .attend() weight; weights must be >= 0", text=text, position=attend.start(1)
        )
