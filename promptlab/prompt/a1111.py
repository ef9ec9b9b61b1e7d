"""AUTOMATIC1111's prompt syntax: read exactly as its ``parse_prompt_attention`` reads it, written so it reads back the same; the A1111 features promptlab cannot render, named."""

from __future__ import annotations

import re
from dataclasses import dataclass

from promptlab.errors import PromptSyntaxError
from promptlab.prompt.terms import FLOAT, WEIGHT_TOLERANCE, Fragment, Term, check_weight, format_weight, join_fragments

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
        "a LoRA tag loads a LoRA, which promptlab does for a prompt it renders (promptlab render --syntax a1111, "
        'an experiment with syntax = "a1111": the tag comes out of the text and its LoRA is loaded); here it would '
        "be text. Give the LoRA apart (--lora NAME:WEIGHT, loras = [...]) or remove the tag",
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


# AUTOMATIC1111 modules/extra_networks.py `re_extra_net`: <kind:arg:arg...>.
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")
_LORA_KINDS = ("lora", "lyco", "locon")


@dataclass(frozen=True)
class LoraTag:
    """A LoRA tag of an A1111 prompt, ``<lora:name:weight>``: the LoRA's name and its weight (1 when left out)."""

    name: str
    weight: float = 1.0
    tag: str = ""


def lora_tags(text: str) -> tuple[str, tuple[LoraTag, ...]]:
    """``text`` without its ``<lora:name:weight>`` tags, and the tags, as A1111 takes them out before encoding.

    A1111 (extensions-builtin/Lora) reads ``<lora:name:te:unet>``: one weight for both, or the
    text encoder's then the UNet's; promptlab applies one strength to the whole LoRA, so two
    different weights are refused, as are named arguments (``dyn=``). Other extra-network tags
    stay in the text (``a1111_parts`` names them).

        >>> lora_tags("a teal circle <lora:teal:0.8>, black background")
        ('a teal circle , black background', (LoraTag(name='teal', weight=0.8, tag='<lora:teal:0.8>'),))
    """
    found: list[LoraTag] = []

    def take(match: re.Match[str]) -> str:
        if match.group(1).lower() not in _LORA_KINDS:
            return match.group(0)
        name, *args = match.group(2).split(":")
        numbers = [arg for arg in args if "=" not in arg]
        if len(numbers) != len(args) or not name.strip() or not all(FLOAT.fullmatch(arg.strip()) for arg in numbers):
            raise PromptSyntaxError(
                f"A1111 prompt: {match.group(0)!r}: expected <lora:NAME> or <lora:NAME:WEIGHT> with a number as the "
                "weight (named arguments such as te=, unet=, dyn= are not read)",
                text=text,
                position=match.start(),
            )
        weights = {float(arg) for arg in numbers[:2]}
        if len(weights) > 1:
            raise PromptSyntaxError(
                f"A1111 prompt: {match.group(0)!r} weighs the text encoder and the UNet differently; promptlab "
                "applies one strength to the whole LoRA: write one weight, <lora:NAME:WEIGHT>",
                text=text,
                position=match.start(),
            )
        found.append(LoraTag(name.strip(), weights.pop() if weights else 1.0, match.group(0)))
        return ""

    return _EXTRA_NETWORK.sub(take, text), tuple(found)


def lora_tag(name: str, weight: float) -> str:
    """The tag A1111 writes for a LoRA at ``weight``: ``<lora:name:0.8>``."""
    return f"<lora:{name}:{format_weight(weight)}>"


# Text that only makes sense as A1111 syntax, which compel would read as literal words.
A1111_LOOKALIKES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\((?:[^()\\]|\\.)*:\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*\)"), "a (text:weight) group"),
    (re.compile(r"\[[^\[\]]*\]"), "square brackets: a weaker term, prompt editing or alternation"),
    (re.compile(r"<\w+:[^>]+>"), "an extra-network tag such as <lora:name:0.8>"),
    (re.compile(r"\bBREAK\b"), "BREAK starts a new 75-token chunk; in compel that is (\"a\", \"b\").and()"),
    (re.compile(r"\bAND\b"), "AND is composable diffusion"),
)


_A1111_ESCAPED = re.compile(r"([\\()\[\]])")


_A1111_ROUND = 1.1


_A1111_SQUARE = 1 / 1.1


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


def a1111_plain(text: str) -> str:
    match = re.search(r"\b(?:BREAK|AND)\b|<\w+:[^>]+>", text)
    if match:
        raise PromptSyntaxError(
            f"{text!r}: A1111 reads {match.group(0)!r} as syntax (a chunk break, composable diffusion or an "
            "extra-network tag) and has no escape for it; reword the text",
            text=text,
            position=match.start(),
        )
    return _A1111_ESCAPED.sub(r"\\\1", text)


def a1111_term(term: Term) -> str:
    check_weight(term)
    if term.fragments:
        return join_fragments(a1111_term(Term(text, weight)) for text, weight in term.pieces())
    escaped = a1111_plain(term.text)
    if abs(term.weight - 1.0) <= WEIGHT_TOLERANCE or not term.text.strip():
        return escaped
    return f"({escaped}:{format_weight(term.weight)})"


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
    if not FLOAT.fullmatch(weight):
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
