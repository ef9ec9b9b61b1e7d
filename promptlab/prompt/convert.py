"""Prompt text from one syntax to another, fragment for fragment, and the one reader every entry point renders through."""

from __future__ import annotations

from typing import Callable

from promptlab.errors import PromptSyntaxError
from promptlab.prompt.a1111 import A1111_LOOKALIKES, a1111_parts, a1111_term
from promptlab.prompt.compel import compel_misread, compel_parts, compel_term
from promptlab.prompt.terms import SYNTAXES, Fragment, Term, join_fragments


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
    for pattern, what in A1111_LOOKALIKES:
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


def write_parts(parts: list[list[Fragment]], syntax: str) -> str:
    """Prompt text in ``syntax`` for fragments in chunks (``a1111_parts``, ``compel_parts``)."""
    if syntax not in SYNTAXES:
        raise PromptSyntaxError(f"unknown prompt syntax {syntax!r}: choose one of {', '.join(SYNTAXES)}")
    writers: dict[str, Callable[[Term], str]] = {"compel": compel_term, "a1111": a1111_term, "plain": lambda t: t.text}
    texts = [join_fragments(writers[syntax](Term(" ".join(t.split()), w)) for t, w in part) for part in parts]
    if len(texts) == 1 or syntax == "plain":
        return " ".join(text for text in texts if text)
    if syntax == "a1111":
        return " BREAK ".join(texts)
    for text in texts:
        if text.endswith("\\"):
            raise compel_misread(text, "\\", len(text) - 1, "as escaping the quote that closes this BREAK chunk")
    return "(" + ", ".join(f'"{text}"' for text in texts) + ").and()"
