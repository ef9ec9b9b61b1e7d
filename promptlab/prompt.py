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

Reading prompt text into the model (``parse_compel``, ``parse_a1111``):

1. The syntax's own reader turns the text into (text, weight) chunks.
2. The chunks' text is split on commas; each segment's whitespace is collapsed to single spaces;
   empty segments are skipped.
3. A segment whose chunks carry different weights (``a (red) car``) takes the weight of its
   chunk with the most non-space characters (the earliest on a tie): the model has one weight
   per term.
4. The first segment is the subject when its weight is 1.0; a weighted first segment is a term
   and the subject is empty (the subject carries no weight, and a weight is never dropped).
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
from functools import cache, cached_property
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Protocol

from promptlab.errors import PromptSyntaxError

SYNTAXES: tuple[str, ...] = ("compel", "a1111", "plain")

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
_A1111_ESCAPED = re.compile(r"([\\()\[\]])")
_A1111_ROUND = 1.1
_A1111_SQUARE = 1 / 1.1
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


@dataclass(frozen=True)
class Term:
    """One prompt term: its text, its weight (1.0 = neutral) and the vocabulary category it came from."""

    text: str
    weight: float = 1.0
    category: str | None = None


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
    keyword has no place in the model and raises ``PromptSyntaxError``.
    """
    chunks = _scan_a1111(text)
    for chunk in chunks:
        if chunk.is_break:
            raise PromptSyntaxError(
                "A1111 prompt: BREAK (start a new 75-token chunk) has no equivalent in promptlab's "
                "prompt model; remove it or replace it with a comma",
                text=text,
                position=chunk.position,
            )
    return _prompt_from_chunks([(chunk.text, chunk.weight) for chunk in chunks], vocab, joiner="")


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


def parse_compel(text: str, vocab: TermLookup | None = None) -> Prompt:
    """Read compel prompt text into a Prompt, with compel's own parser for the weights.

    Raises ``PromptSyntaxError`` for an unbalanced group (compel would silently read its
    parentheses as text), a weight that is not a number (``(a)1.2.3``), a negative weight
    (``(a)-1.5``), and for compel features the model cannot hold (``.swap()``, ``.blend()``,
    ``.and()``, ``withLora()``).
    """
    _check_compel_groups(text)
    _check_compel_weights(text)
    chunks = _compel_chunks(text)
    for chunk_text, weight in chunks:
        if weight < 0:
            raise PromptSyntaxError(
                f"compel prompt: {chunk_text!r} has negative weight {weight}; weights must be >= 0",
                text=text,
                position=_first_match_position(re.compile(r"-\s*\.?\d"), text),
            )
    return _prompt_from_chunks(chunks, vocab, joiner=" ")


def convert(text: str, from_syntax: str, to_syntax: str) -> str:
    """Rewrite prompt text from one syntax to another through the Prompt model.

    ``from_syntax`` is "a1111" or "compel", ``to_syntax`` one of ``SYNTAXES``. A1111 to compel
    is the useful direction: compel cannot read A1111's ``(a:1.3)``.
    """
    parsers: dict[str, Callable[[str], Prompt]] = {"a1111": parse_a1111, "compel": parse_compel}
    if from_syntax not in parsers:
        raise PromptSyntaxError(f"cannot read prompt syntax {from_syntax!r}: choose one of {', '.join(parsers)}")
    if to_syntax not in SYNTAXES:
        raise PromptSyntaxError(f"unknown prompt syntax {to_syntax!r}: choose one of {', '.join(SYNTAXES)}")
    return parsers[from_syntax](text).render(to_syntax)


def _join(parts: Iterable[str]) -> str:
    return ", ".join(part for part in parts if part.strip())


def _format_weight(weight: float) -> str:
    return f"{weight:.6f}".rstrip("0").rstrip(".")


def _check_weight(term: Term) -> None:
    if not math.isfinite(term.weight) or term.weight < 0:
        raise PromptSyntaxError(
            f"term {term.text!r}: weight {term.weight} is not a finite number >= 0; "
            "use a weight like 0.8 (weaker) or 1.3 (stronger)"
        )


def _a1111_plain(text: str) -> str:
    match = re.search(r"\bBREAK\b", text)
    if match:
        raise PromptSyntaxError(
            f"{text!r}: A1111 reads the word BREAK as a chunk break and has no escape for it",
            text=text,
            position=match.start(),
        )
    return _A1111_ESCAPED.sub(r"\\\1", text)


def _a1111_term(term: Term) -> str:
    _check_weight(term)
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


def _prompt_from_chunks(chunks: Iterable[tuple[str, float]], vocab: TermLookup | None, joiner: str) -> Prompt:
    segments: list[list[tuple[str, float]]] = [[]]
    for chunk_text, weight in chunks:
        first, *rest = chunk_text.split(",")
        segments[-1].append((first, weight))
        segments.extend([(piece, weight)] for piece in rest)

    parsed: list[Term] = []
    for segment in segments:
        segment_text = " ".join(joiner.join(piece for piece, _ in segment).split())
        if not segment_text:
            continue
        # max() keeps the earliest of equally long chunks.
        _, weight = max(segment, key=lambda piece: len("".join(piece[0].split())))
        category = None
        if vocab is not None:
            entry = vocab.find(segment_text)
            category = entry.category if entry is not None else None
        parsed.append(Term(segment_text, round(weight, _WEIGHT_DECIMALS), category))

    if parsed and abs(parsed[0].weight - 1.0) <= _WEIGHT_TOLERANCE:
        return Prompt(parsed[0].text, tuple(parsed[1:]))
    return Prompt("", tuple(parsed))


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


def _compel_chunks(text: str) -> list[tuple[str, float]]:
    """compel's flattened (text, weight) fragments for ``text``."""
    module = _compel_prompt_parser_module()
    try:
        conjunction = _compel_parser().parse_conjunction(text)  # type: ignore[attr-defined]
    except Exception as error:  # pyparsing.ParseException, or compel's own ParsingException
        raise PromptSyntaxError(
            f"compel cannot parse the prompt: {error}", text=text, position=min(getattr(error, "loc", 0), len(text))
        ) from error
    unsupported = PromptSyntaxError(
        "compel prompt: .swap(), .blend(), .and() and withLora() have no equivalent in promptlab's prompt model",
        text=text,
        position=_first_match_position(_COMPEL_UNSUPPORTED, text),
    )
    if conjunction.lora_weights or len(conjunction.prompts) > 1:
        raise unsupported
    chunks: list[tuple[str, float]] = []
    for flattened in conjunction.prompts:
        if not isinstance(flattened, module.FlattenedPrompt):
            raise unsupported
        for fragment in flattened.children:
            if not isinstance(fragment, module.Fragment):
                raise unsupported
            chunks.append((fragment.text, fragment.weight))
    return chunks


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
