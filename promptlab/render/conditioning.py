"""Prompt embeddings through compel, so weighted prompts (``(word)1.3``, ``word++``) work.

SD 1.x/2.x use one encoder and its normalised last hidden states, as diffusers does. SDXL runs
both encoders on their penultimate hidden states, unnormalised, concatenated, with the second
encoder's pooled embedding, again as diffusers does. Each encoder gets its own ``Compel``
(compel's list-of-encoders form is deprecated and prints a warning). Positive and negative
prompts of a batch are encoded in one call, so compel pads them to a common length (this
matters for the "chunk" long-prompt policy). Compel runs the encoder once per text, so each
distinct text of a batch is encoded once (a sweep repeats prompts across seeds, and usually
one negative prompt across everything). On SD 1.x/2.x with the "truncate" policy, texts
without weight syntax skip compel and go through the pipeline's own ``encode_prompt`` in one
batched call: compel gives the same embeddings for them (tested), one encoder call per text.

Compel's general parser (pyparsing) takes some 20 ms a prompt on a CPU, ten times what the
tiny models take to encode it. The prompts promptlab writes are mostly plain words and
``(words)weight`` groups separated by ", "; ``simple_fragments`` reads exactly those into the
fragments compel's parser gives (a property test holds it to that parser), and compel's parser
reads everything else.

An empty negative prompt on an SDXL model whose config has ``force_zeros_for_empty_prompt``
gives zero negative embeddings, exactly what diffusers does when no negative prompt is passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from promptlab.errors import RenderError

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline


# Characters and word endings that compel reads as syntax: groups, quotes, escapes, word+ / word-.
_COMPEL_SYNTAX = re.compile(r'[()"\\]|[+-](?=\s|,|$)')
# A word holds no compel syntax character; inner hyphens are part of it (pop-art), trailing ones are not.
_SIMPLE_WORD = r'[^\s()",.+\-=\\]+(?:-[^\s()",.+\-=\\]+)*'
_SIMPLE_PHRASE = rf"{_SIMPLE_WORD}(?: {_SIMPLE_WORD})*"
_SIMPLE_GROUP_PATTERN = rf"\(({_SIMPLE_PHRASE})\)([0-9]+(?:\.[0-9]+)?)"
_SIMPLE_GROUP = re.compile(_SIMPLE_GROUP_PATTERN)
# An item between commas: words and groups, single spaces apart ("a (red)1.5 circle").
_SIMPLE_PART = rf"(?:{_SIMPLE_WORD}|{_SIMPLE_GROUP_PATTERN})"
_SIMPLE_ITEM = rf"{_SIMPLE_PART}(?: {_SIMPLE_PART})*"
_SIMPLE_PROMPT = re.compile(rf"{_SIMPLE_ITEM}(?:, {_SIMPLE_ITEM})*")


def has_weight_syntax(text: str) -> bool:
    """Whether compel would read anything in ``text`` other than plain words."""
    return _COMPEL_SYNTAX.search(text) is not None


def without_weights(text: str) -> str:
    """``text`` with each ``(words)weight`` group written as its plain words: ``a (red)0.6 circle`` -> ``a red circle``."""
    return _SIMPLE_GROUP.sub(r"\1", text)


def simple_fragments(text: str) -> list[tuple[str, float]] | None:
    """compel's (text, weight) fragments for a prompt of plain words and ``(words)weight`` groups.

    The items are separated by ", ", and words and groups by single spaces; a group's weight
    is a plain number other than 1. Any other text (nesting, ``word+``, escapes, quotes,
    ``.and()``, odd spacing) gives None: it is compel's parser's to read.

        >>> simple_fragments("a cat, (oil painting)1.2, pop-art")
        [('a cat,', 1.0), ('oil painting', 1.2), (', pop-art', 1.0)]
        >>> simple_fragments("a (red)0.6 circle")
        [('a', 1.0), ('red', 0.6), ('circle', 1.0)]
    """
    if not _SIMPLE_PROMPT.fullmatch(text):
        return None
    fragments: list[tuple[str, float]] = []
    end = 0
    for group in _SIMPLE_GROUP.finditer(text):
        weight = float(group[2])
        if weight == 1.0 or (end and not text[end : group.start()].strip()):
            # compel merges a weight-1 group into the plain text around it, and side-by-side groups
            # of one weight into one.
            return None
        fragments += [(text[end : group.start()].strip(), 1.0), (group[1], weight)]
        end = group.end()
    fragments.append((text[end:].strip(), 1.0))
    # Plain text between groups keeps its commas; an empty run is no fragment.
    return [(part, weight) for part, weight in fragments if part]


@cache
def _compel_class() -> type:
    """compel's ``Compel``, reading ``simple_fragments`` prompts without its general parser."""
    from compel import Compel
    from compel.prompt_parser import Conjunction, FlattenedPrompt

    class SimpleFirstCompel(Compel):  # type: ignore[misc]
        @classmethod
        def parse_prompt_string(cls, prompt_string: str) -> Conjunction:
            fragments = simple_fragments(prompt_string)
            if fragments is None:
                return super().parse_prompt_string(prompt_string)
            return Conjunction([FlattenedPrompt(fragments)])

    return SimpleFirstCompel


@dataclass
class Conditioning:
    """Embeddings for one batch, named as diffusers' pipeline arguments."""

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor | None = None
    negative_pooled_prompt_embeds: torch.Tensor | None = None

    def pipeline_kwargs(self) -> dict[str, Any]:
        kwargs = {"prompt_embeds": self.prompt_embeds, "negative_prompt_embeds": self.negative_prompt_embeds}
        if self.pooled_prompt_embeds is not None:
            kwargs["pooled_prompt_embeds"] = self.pooled_prompt_embeds
            kwargs["negative_pooled_prompt_embeds"] = self.negative_pooled_prompt_embeds
        return kwargs


def compel_encoder(
    tokenizer: Any, text_encoder: Any, *, truncate: bool, sdxl: bool, pooled: bool = False, embeddings: bool = False
) -> Any:
    """A compel ``Compel`` over one tokenizer and text encoder, reading prompts as promptlab renders them.

    ``truncate``: drop tokens past the 75-token window (else encode in chunks); ``sdxl``: SDXL's
    penultimate hidden states (else the last, normalised); ``pooled``: also return the pooled output.
    Building one is cheap: it caches the empty prompt's embedding, so build a new one for an
    encoder whose weights change (training). ``embeddings``: expand the multi-vector textual-inversion
    tokens the encoder holds (``render.embeddings``).
    """
    from compel import ReturnedEmbeddingsType

    from promptlab.render.embeddings import textual_inversion_manager

    embeddings = (
        ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
        if sdxl
        else ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED
    )
    return _compel_class()(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        truncate_long_prompts=truncate,
        returned_embeddings_type=embeddings,
        requires_pooled=pooled,
        textual_inversion_manager=textual_inversion_manager(text_encoder) if embeddings else None,
        # Build weights in the encoder's dtype, not compel's float32 default.
        dtype_for_device_getter=lambda device: text_encoder.dtype,
    )


def encode_prompts(
    pipe: DiffusionPipeline,
    family: str,
    prompts: list[str],
    negative_prompts: list[str],
    long_prompt: str = "truncate",
) -> Conditioning:
    """Encode ``prompts`` and their ``negative_prompts`` (same length) for ``pipe``."""
    import torch

    if len(prompts) != len(negative_prompts):
        raise RenderError(f"{len(prompts)} prompts but {len(negative_prompts)} negative prompts; give one each")
    truncate = long_prompt == "truncate"
    texts = list(prompts) + list(negative_prompts)
    distinct = list(dict.fromkeys(texts))
    index = torch.tensor([distinct.index(text) for text in texts])
    count = len(prompts)
    dtype = pipe.unet.dtype
    if family != "sdxl":
        embeds = _encode_sd(pipe, distinct, truncate).to(dtype)
        embeds = embeds[index.to(embeds.device)]
        return Conditioning(prompt_embeds=embeds[:count], negative_prompt_embeds=embeds[count:])

    second = compel_encoder(
        pipe.tokenizer_2, pipe.text_encoder_2, truncate=truncate, sdxl=True, pooled=True, embeddings=True
    )
    embeds, pooled = second(distinct)
    # The SDXL refiner has only the second encoder.
    if pipe.text_encoder is not None:
        first = compel_encoder(pipe.tokenizer, pipe.text_encoder, truncate=truncate, sdxl=True, embeddings=True)(distinct)
        if first.shape[1] != embeds.shape[1]:
            raise RenderError(
                f"the two SDXL tokenizers split a prompt into different chunk counts ({first.shape[1]} vs "
                f"{embeds.shape[1]} tokens); use long_prompt 'truncate'"
            )
        embeds = torch.cat([first, embeds], dim=-1)
    index = index.to(embeds.device)
    embeds, pooled = embeds.to(dtype)[index], pooled.to(dtype)[index]
    negative, negative_pooled = embeds[count:].clone(), pooled[count:].clone()
    if pipe.config.get("force_zeros_for_empty_prompt", False):
        empty = torch.tensor([text == "" for text in negative_prompts], device=embeds.device)
        negative[empty] = 0
        negative_pooled[empty] = 0
    return Conditioning(
        prompt_embeds=embeds[:count],
        negative_prompt_embeds=negative,
        pooled_prompt_embeds=pooled[:count],
        negative_pooled_prompt_embeds=negative_pooled,
    )


def _encode_sd(pipe: DiffusionPipeline, texts: list[str], truncate: bool) -> torch.Tensor:
    """SD 1.x/2.x embeddings of ``texts``: plain ones batched through diffusers, the rest through compel."""
    import torch

    from promptlab.render.embeddings import textual_inversion_manager

    # diffusers' own encoding misses multi-vector embedding tokens written in capitals: compel reads all.
    everything = not truncate or textual_inversion_manager(pipe.text_encoder) is not None
    weighted = list(texts) if everything else [t for t in texts if has_weight_syntax(t)]
    plain = [t for t in texts if t not in set(weighted)]
    parts: dict[str, torch.Tensor] = {}
    if weighted:
        compel = compel_encoder(pipe.tokenizer, pipe.text_encoder, truncate=truncate, sdxl=False, embeddings=True)
        encoded = compel(weighted)
        if plain and encoded.shape[1] != pipe.tokenizer.model_max_length:
            # A BREAK (compel's .and()) makes chunks of 77 tokens each: compel pads every text to match.
            weighted, plain = list(texts), []
            encoded = compel(weighted)
        parts.update(zip(weighted, encoded))
    if plain:
        encoded = pipe.encode_prompt(plain, pipe.text_encoder.device, 1, do_classifier_free_guidance=False)[0]
        parts.update(zip(plain, encoded))
    return torch.stack([parts[t] for t in texts])
