"""Other tools' prompt syntaxes as compel syntax, read the way each tool reads its own.

    >>> to_compel("a [red] (fox:1.2)", "a1111", Path("x.png"), "prompt")
    'a (red)0.909091 (fox)1.2'
    >>> to_compel("a [red] (fox:1.2)", "comfyui", Path("x.png"), "prompt")
    'a [red] (fox)1.2'

The choices, and why:

1. A1111's prompts go through ``prompt.convert`` from A1111 syntax. ComfyUI's (and those of
   the tools built on its code: Fooocus, RuinedFooocus, SwarmUI) the same way after escaping
   ``[`` ``]``: ComfyUI reads them as text, A1111 as a down-weight. InvokeAI's are compel
   already and are normalised. NovelAI's braces become A1111 weights (``novelai_to_a1111``).
   A prompt the model cannot hold (A1111's ``BREAK``) raises ``ImportMetadataError`` naming
   the file.
2. A1111's extra-network tags (``<lora:name:weight>``) are taken out before encoding, as
   A1111, Fooocus and SwarmUI take them out; the LoRAs among them are returned as (name, UNet
   weight), every other tag is named in a note.
"""

from __future__ import annotations

import re
from pathlib import Path

from promptlab.errors import ImportMetadataError, PromptSyntaxError
from promptlab.metadata import Source
from promptlab.prompt import convert

# NovelAI's emphasis: each {} multiplies a word's weight by this, each [] divides it.
NOVELAI_EMPHASIS = 1.05
# A1111's extra-network tag (extra_networks.re_extra_net): <kind:name:weight...>, taken out before encoding.
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")
# Tools whose prompts hold extra-network tags, taken out as A1111 takes them out.
_EXTRA_NETWORK_SOURCES: tuple[Source, ...] = ("a1111", "fooocus", "swarmui")
# Tools whose prompts are ComfyUI's syntax (A1111's, with [ ] as plain text): they encode with ComfyUI's code.
_COMFYUI_SYNTAX: tuple[Source, ...] = ("comfyui", "fooocus", "ruinedfooocus", "swarmui")


def to_compel(text: str, source: Source, path: Path, what: str) -> str:
    """``text``, a prompt as ``source`` writes it, in compel syntax; ``ImportMetadataError`` naming ``path`` and ``what`` if it cannot be read."""
    if not text.strip():
        return ""
    try:
        if source == "invokeai":
            return convert(text, "compel", "compel")
        if source in _COMFYUI_SYNTAX:
            # ComfyUI weighs only round brackets; its square brackets are text
            return convert(re.sub(r"(?<!\\)([\[\]])", r"\\\1", text), "a1111", "compel")
        if source == "novelai":
            return convert(novelai_to_a1111(text), "a1111", "compel")
        return convert(text, "a1111", "compel")
    except PromptSyntaxError as error:
        syntax = {"invokeai": "compel", "novelai": "NovelAI"}.get(source)
        syntax = syntax or ("ComfyUI" if source in _COMFYUI_SYNTAX else "A1111")
        shown = text if len(text) <= 120 else text[:117] + "..."
        raise ImportMetadataError(
            f"{path}: {source} {what} {shown!r} cannot be read as {syntax} syntax: {error}"
        ) from error


def novelai_to_a1111(text: str) -> str:
    r"""NovelAI's prompt in A1111 syntax: ``{word}`` is ``(word:1.05)``, ``[word]`` ``(word:0.952381)``, nested ones multiply.

    NovelAI reads ``(`` ``)`` and ``\`` as text, so they are escaped. Its newer numeric emphasis
    (``1.5::word::``) raises ``PromptSyntaxError``.

    >>> novelai_to_a1111("a {{cat}}, [dog] (hat)")
    'a (cat:1.1025), (dog:0.952380952) \\(hat\\)'
    """
    if "::" in text:
        raise PromptSyntaxError(
            "NovelAI's numeric emphasis ('1.5::word::') is not read by promptlab", text=text, position=text.index("::")
        )
    pieces: list[str] = []
    chunk: list[str] = []
    depth = {"{": 0, "[": 0}

    def flush() -> None:
        if chunk:
            piece = re.sub(r"([\\()\[\]])", r"\\\1", "".join(chunk))
            weight = round(NOVELAI_EMPHASIS ** (depth["{"] - depth["["]), 9)
            pieces.append(piece if weight == 1 else f"({piece}:{weight!r})")
            chunk.clear()

    for char in text:
        opener = {"}": "{", "]": "["}.get(char)
        if char in depth or (opener is not None and depth[opener] > 0):
            flush()
            if char in depth:
                depth[char] += 1
            else:
                depth[opener] -= 1  # type: ignore[index]
        else:
            chunk.append(char)
    flush()
    return "".join(pieces)


def extra_networks(text: str, source: Source) -> tuple[str, list[tuple[str, float]], list[str]]:
    """``text`` without A1111's ``<lora:name:weight>``-style tags (A1111 removes them before encoding, as
    Fooocus and SwarmUI do), the LoRAs among them as (name, UNet weight), and notes for the rest."""
    if source not in _EXTRA_NETWORK_SOURCES:
        return text, [], []
    loras: list[tuple[str, float]] = []
    notes: list[str] = []

    def take(match: re.Match[str]) -> str:
        kind, args = match.group(1), match.group(2).split(":")
        positional = [arg for arg in args[1:] if "=" not in arg]
        try:
            weights = [float(arg) for arg in positional[:2]] or [1.0]
        except ValueError:
            weights = []
        if kind.lower() in ("lora", "lyco") and weights and len(positional) == len(args) - 1:
            # A1111: the first number weighs the text encoder, a second the UNet (else the same)
            loras.append((args[0], weights[-1]))
            if len(weights) == 2 and weights[0] != weights[1]:
                notes.append(
                    f"{match.group(0)} weighs the text encoder {weights[0]:g} and the UNet {weights[1]:g}; "
                    "loras keeps the UNet's"
                )
        else:
            notes.append(
                f"{match.group(0)} is taken out of the prompt, as {source} takes it out; promptlab does not apply it"
            )
        return ""

    return _EXTRA_NETWORK.sub(take, text), loras, notes
