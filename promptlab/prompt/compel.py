"""compel's prompt syntax: read with compel's own parser (loaded without torch), written so compel reads back the same fragments."""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType

from promptlab.errors import PromptSyntaxError
from promptlab.prompt.terms import (
    WEIGHT_TOLERANCE,
    Fragment,
    Term,
    check_weight,
    first_match_position,
    format_weight,
    join_fragments,
    one_part,
)

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
        position=first_match_position(_COMPEL_UNSUPPORTED, text),
    )
    if conjunction.lora_weights or any(abs(w - 1.0) > WEIGHT_TOLERANCE for w in conjunction.weights):
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
                    position=first_match_position(re.compile(r"-\s*\.?\d"), text),
                )
            part.append((fragment.text, fragment.weight))
        parts.append(tuple(part))
    return tuple(parts)


def _compel_escape(text: str) -> tuple[str, list[int]]:
    """``text`` with ( ) " escaped for compel, and each escaped character's index in ``text``."""
    escaped: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char == "\\" and text[index + 1 : index + 2] in ("(", ")", '"'):
            # compel unescapes a fragment's text once per copy it makes, a varying number of times.
            raise compel_misread(text, char, index, f"before {text[index + 1]!r} as an escape and drop it")
        if char in '()"':
            escaped.append("\\")
            origin.append(index)
        escaped.append(char)
        origin.append(index)
    return "".join(escaped), origin


def _compel_word_char(escaped: str, index: int) -> bool:
    return index < len(escaped) and not escaped[index].isspace() and escaped[index] not in _COMPEL_SYNTAX_CHARS


def compel_misread(text: str, char: str, position: int, rule: str) -> PromptSyntaxError:
    return PromptSyntaxError(
        f"{text!r}: compel would read the {char!r} {rule}; reword the text",
        text=text,
        position=position,
    )


def compel_plain(text: str) -> str:
    """Unweighted text for compel: no word may start with a word followed by a + or - run."""
    escaped, origin = _compel_escape(text)
    for token in re.finditer(r"\S+", escaped):
        end = _compel_leading_word_end(escaped, token.start())
        if token.start() < end < token.end() and escaped[end] in "+-":
            rule = f"after a word as a weight operator {_COMPEL_KEEPS_BACKSLASH}"
            raise compel_misread(text, escaped[end], origin[end], rule)
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
            raise compel_misread(text, char, origin[index], rule)
        if char == "=":
            rule = f"inside a weighted group as an option sign {_COMPEL_KEEPS_BACKSLASH}"
            raise compel_misread(text, char, origin[index], rule)
        index += 1
    if escaped.endswith("\\"):
        raise compel_misread(text, "\\", len(text) - 1, "as escaping the group's closing parenthesis")
    return escaped


def compel_term(term: Term) -> str:
    check_weight(term)
    if term.fragments:
        return join_fragments(compel_term(Term(text, weight)) for text, weight in term.pieces())
    if abs(term.weight - 1.0) <= WEIGHT_TOLERANCE or not term.text.strip():
        return compel_plain(term.text)
    body = _compel_group_body(term.text)
    for weight, operators in _COMPEL_SHORTHAND:
        if abs(term.weight - weight) <= WEIGHT_TOLERANCE:
            return f"{body}{operators}" if _COMPEL_BARE_WORD.fullmatch(term.text) else f"({body}){operators}"
    return f"({body}){format_weight(term.weight)}"


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


def compel_chunks(text: str) -> list[Fragment]:
    """compel's flattened (text, weight) fragments for ``text``, which must be a single prompt."""
    return one_part(compel_parts(text), text, "compel prompt: .and() (A1111's BREAK)", _COMPEL_UNSUPPORTED)


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
