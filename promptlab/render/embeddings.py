"""Textual-inversion embeddings: read a file, check it fits the model, load it with diffusers.

A file is one of (read without running any code: safetensors, or ``torch.load(weights_only=True)``):

- A1111 ``.pt`` (``string_to_param: {"*": vectors}``) or ``.safetensors`` (``emb_params``);
- diffusers ``learned_embeds.safetensors``/``.bin`` (``{token: vectors}``), or a folder holding one;
- SDXL (``clip_l`` and ``clip_g`` vectors, one set per text encoder).

The trigger token is the one given (``emb.safetensors:<my-style>``), else a diffusers file's own
key, else the file name without its suffix (A1111's rule). Loading goes through diffusers'
``load_textual_inversion`` into ``text_encoder``/``tokenizer``, and for SDXL also into
``text_encoder_2``/``tokenizer_2``, as diffusers documents for SDXL embeddings. A pipeline holds
exactly the embeddings of the render at hand: ``apply_embeddings`` unloads the others first, so a
sweep over embeddings reuses the loaded model.

What is an error (``RenderError``, naming the file and the fix), decided here:

- a missing, unreadable or corrupt file, or one that holds no embedding;
- an embedding for another base (an SDXL ``clip_l``/``clip_g`` file on SD 1.x, a 1024-wide SD 2
  vector on a 768-wide SD 1.x encoder): it would load into the wrong space, or not at all;
- a token that is already a word of the tokenizer's vocabulary (``cat``): every ``cat`` in every
  prompt would become the embedding;
- an embedding whose token no prompt of the render uses (``unused_embeddings``, checked by
  ``promptlab render`` and experiment files): it would be recorded on runs it never touched.

A trigger token in a prompt without its embedding loaded is not an error: it is just words.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.errors import RenderError
from promptlab.hashing import file_sha256
from promptlab.render.params import EmbeddingFile
from promptlab.render.quiet import quiet_libraries

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline

#: Files a diffusers textual-inversion folder holds, in the order diffusers looks for them.
DIFFUSERS_FILES = ("learned_embeds.safetensors", "learned_embeds.bin")
_PICKLE_SUFFIXES = (".pt", ".bin", ".pth", ".ckpt")
#: The text encoders (pipeline components) an embedding loads into, by family.
ENCODERS: dict[str, tuple[tuple[str, str], ...]] = {
    "sd1": (("text_encoder", "tokenizer"),),
    "sd2": (("text_encoder", "tokenizer"),),
    "sdxl": (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")),
}
# SDXL files keep one set of vectors per encoder under these keys (diffusers' and kohya's names).
_SDXL_KEYS = {"text_encoder": "clip_l", "text_encoder_2": "clip_g"}


@dataclass(frozen=True)
class Embedding:
    """An embedding as loaded and recorded: ``name`` (the file name without suffix), its file, sha256, token.

    ``format`` is ``a1111``, ``diffusers`` or ``sdxl``; ``vectors`` how many token vectors it has.
    """

    name: str
    path: str
    sha256: str
    token: str
    format: str
    vectors: int

    @property
    def shorthash(self) -> str:
        """A1111's short hash of an embedding file: its sha256, first 12 hex digits (``TI hashes``)."""
        return self.sha256[:12]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "token": self.token,
            "format": self.format,
            "vectors": self.vectors,
        }


@dataclass(frozen=True)
class _Read:
    embedding: Embedding
    #: Vectors (n, width) per text encoder component name ("text_encoder" alone for SD 1.x/2.x files).
    vectors: Mapping[str, torch.Tensor]


def _weights_file(file: EmbeddingFile) -> Path:
    path = Path(file.path).expanduser()
    if path.is_dir():
        for name in DIFFUSERS_FILES:
            if (path / name).is_file():
                return path / name
        raise RenderError(
            f"embedding {file.path}: the folder holds no {' or '.join(DIFFUSERS_FILES)}; "
            "give the embedding file itself (.safetensors or .pt)"
        )
    if not path.is_file():
        raise RenderError(f"embedding {file.path}: no such file; check the path (relative paths start from the current folder)")
    return path


def _load_state(path: Path, shown: str) -> Any:
    import torch

    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        if suffix in _PICKLE_SUFFIXES:
            # weights_only: tensors, dicts, strings and numbers, never arbitrary objects (no code runs).
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch.load raise many types for a corrupt file
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise RenderError(
            f"embedding {shown}: cannot be read as an embedding file ({reason}); the file is corrupt or not "
            "an embedding: download it again, or convert an old pickle to .safetensors"
        ) from error
    raise RenderError(
        f"embedding {shown}: a {suffix or 'suffix-less'} file; expected an embedding as .safetensors, .pt or .bin"
    )


def _vectors(value: Any, shown: str, key: str) -> torch.Tensor:
    import torch

    if not isinstance(value, torch.Tensor) or value.ndim not in (1, 2) or not value.is_floating_point() or value.numel() == 0:
        raise RenderError(
            f"embedding {shown}: {key} is not a vector or a (vectors, width) matrix of floats; the file is not an embedding"
        )
    value = value.detach().to(torch.float32)
    if not torch.isfinite(value).all():
        raise RenderError(f"embedding {shown}: {key} holds NaN or infinite values; the file is corrupt, download it again")
    return value.reshape(1, -1) if value.ndim == 1 else value


def _parse_state(state: Any, shown: str) -> tuple[str, dict[str, torch.Tensor], str | None]:
    """(format, vectors per encoder, the file's own token or None) of a loaded state dict."""
    import torch

    if isinstance(state, torch.Tensor):
        return "a1111", {"text_encoder": _vectors(state, shown, "the tensor")}, None
    if not isinstance(state, Mapping) or not state:
        raise RenderError(f"embedding {shown}: holds {type(state).__name__}, not an embedding's tensors")
    if any(key in state for key in _SDXL_KEYS.values()):
        missing = [key for key in _SDXL_KEYS.values() if key not in state]
        if missing:
            raise RenderError(f"embedding {shown}: an SDXL embedding needs both clip_l and clip_g vectors; {missing[0]} is missing")
        vectors = {encoder: _vectors(state[key], shown, key) for encoder, key in _SDXL_KEYS.items()}
        return "sdxl", vectors, None
    if "string_to_param" in state:
        params = state["string_to_param"]
        if not isinstance(params, Mapping) or len(params) != 1:
            raise RenderError(f"embedding {shown}: A1111 string_to_param must hold one set of vectors")
        return "a1111", {"text_encoder": _vectors(next(iter(params.values())), shown, "string_to_param")}, None
    if "emb_params" in state:
        return "a1111", {"text_encoder": _vectors(state["emb_params"], shown, "emb_params")}, None
    if len(state) == 1:
        token, value = next(iter(state.items()))
        return "diffusers", {"text_encoder": _vectors(value, shown, repr(token))}, str(token)
    keys = ", ".join(sorted(map(str, state))[:6])
    raise RenderError(
        f"embedding {shown}: not a textual-inversion file (keys: {keys}); expected A1111's string_to_param or "
        "emb_params, diffusers' {token: vectors}, or SDXL's clip_l and clip_g (a LoRA goes under loras, not embeddings)"
    )


def read_embedding(file: EmbeddingFile) -> tuple[Embedding, dict[str, torch.Tensor]]:
    """Read ``file``: the embedding as recorded, and its vectors per text encoder; RenderError if it is none."""
    path = _weights_file(file)
    fmt, vectors, own_token = _parse_state(_load_state(path, file.path), file.path)
    stem = Path(file.path).expanduser()
    name = stem.name if stem.is_dir() else stem.stem
    token = file.token or own_token or name
    # Checked as EmbeddingFile checks a given token: a file name may hold spaces or commas.
    EmbeddingFile(file.path, token)
    embedding = Embedding(
        name=name,
        path=str(path.resolve()),
        sha256=file_sha256(path),
        token=token,
        format=fmt,
        vectors=next(iter(vectors.values())).shape[0],
    )
    return embedding, vectors


def _family_words(family: str) -> str:
    return {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}.get(family, family)


def check_fits(embedding: Embedding, vectors: Mapping[str, torch.Tensor], pipe: DiffusionPipeline, family: str) -> None:
    """RenderError unless every encoder of ``pipe`` gets vectors of its width (the embedding is for this base)."""
    encoders = [name for name, _ in ENCODERS.get(family, ENCODERS["sd1"]) if getattr(pipe, name, None) is not None]
    shown = embedding.path
    if embedding.format == "sdxl" and family != "sdxl":
        raise RenderError(
            f"embedding {shown} is an SDXL embedding (clip_l and clip_g vectors) but the model is {_family_words(family)}; "
            f"use an embedding trained for {_family_words(family)}"
        )
    if embedding.format != "sdxl" and len(encoders) > 1:
        raise RenderError(
            f"embedding {shown} has one set of vectors ({vectors['text_encoder'].shape[1]} wide, an SD 1.x/2.x embedding) but "
            "the model is SDXL, whose two text encoders need clip_l and clip_g vectors; use an SDXL embedding"
        )
    for name in encoders:
        # An SDXL refiner has only the second encoder: its clip_g vectors.
        key = name if name in vectors else "text_encoder"
        width = getattr(pipe, name).get_input_embeddings().weight.shape[1]
        given = vectors[key].shape[1]
        if given != width:
            raise RenderError(
                f"embedding {shown} has {given}-wide vectors but this {_family_words(family)} model's {name} takes "
                f"{width}-wide ones (SD 1.x: 768, SD 2.x: 1024, SDXL: 768 + 1280): it was made for another base; "
                f"use an embedding trained for {_family_words(family)}"
            )


def _check_token(embedding: Embedding, tokenizer: Any) -> None:
    vocab = tokenizer.get_vocab()
    added = tokenizer.added_tokens_decoder
    word = embedding.token.lower()
    # Tokens added by earlier embeddings do not count: they are unloaded first.
    if any(form in vocab and vocab[form] not in added for form in (word, f"{word}</w>")):
        raise RenderError(
            f"embedding {embedding.path}: its token {embedding.token!r} is a word the text encoder already knows, so every "
            f"{embedding.token!r} in a prompt would become the embedding; give it a token of its own, e.g. "
            f"{embedding.path}:<{embedding.token}>"
        )


@dataclass(frozen=True)
class _Loaded:
    key: tuple[tuple[str, str], ...]
    #: First token id -> the ids of all the embedding's vectors (multi-vector embeddings).
    expansions: Mapping[int, tuple[int, ...]]
    #: Every token added (``<t>``, ``<t>_1``, ...): unloading removes these and no other.
    added: tuple[str, ...] = ()


# What each text encoder holds now (encoders are shared by the task pipelines of one model).
_STATE: weakref.WeakKeyDictionary[Any, _Loaded] = weakref.WeakKeyDictionary()


def apply_embeddings(pipe: DiffusionPipeline, family: str, files: Sequence[EmbeddingFile]) -> tuple[Embedding, ...]:
    """Make ``pipe``'s text encoders hold exactly the embeddings of ``files`` (none: the model's own); return them.

    Every file is read and checked before any is loaded, so a bad one leaves the pipeline as it was.
    """
    import torch

    # 1. Read and check every file.
    read = [read_embedding(file) for file in files]
    tokens = [embedding.token.lower() for embedding, _ in read]
    if len(set(tokens)) < len(tokens):
        raise RenderError(
            f"embeddings {', '.join(e.path for e, _ in read)}: two have the token "
            f"{next(t for t in tokens if tokens.count(t) > 1)!r}; give each its own with FILE:TOKEN"
        )
    encoders = [(e, t) for e, t in ENCODERS.get(family, ENCODERS["sd1"]) if getattr(pipe, e, None) is not None]
    for embedding, vectors in read:
        check_fits(embedding, vectors, pipe, family)
        for _, tokenizer_name in encoders:
            _check_token(embedding, getattr(pipe, tokenizer_name))
    key = tuple((embedding.sha256, embedding.token) for embedding, _ in read)
    # 2. Unload what the encoders hold, unless it is exactly this set; then load this one.
    with torch.no_grad(), quiet_libraries():
        for encoder_name, tokenizer_name in encoders:
            encoder, tokenizer = getattr(pipe, encoder_name), getattr(pipe, tokenizer_name)
            held = _STATE.get(encoder)
            if held is not None and held.key == key:
                continue
            if held is not None and held.added:
                # Only what was loaded here: a model's own added tokens stay.
                pipe.unload_textual_inversion(list(held.added), tokenizer=tokenizer, text_encoder=encoder)
            _STATE[encoder] = _Loaded((), {})
            expansions: dict[int, tuple[int, ...]] = {}
            added: list[str] = []
            for embedding, vectors in read:
                matrix = vectors[encoder_name if encoder_name in vectors else "text_encoder"]
                pipe.load_textual_inversion(
                    matrix.to(encoder.dtype), token=embedding.token, tokenizer=tokenizer, text_encoder=encoder
                )
                names = [embedding.token, *(f"{embedding.token}_{i}" for i in range(1, matrix.shape[0]))]
                ids = tuple(tokenizer.convert_tokens_to_ids(name) for name in names)
                expansions[ids[0]] = ids
                added += names
            _STATE[encoder] = _Loaded(key, expansions, tuple(added))
    return tuple(embedding for embedding, _ in read)


def textual_inversion_manager(text_encoder: Any) -> Any | None:
    """compel's textual-inversion manager for ``text_encoder``'s loaded multi-vector embeddings; None if it holds none.

    compel tokenizes a prompt itself: each multi-vector token must become all its vectors' tokens,
    which diffusers' ``maybe_convert_prompt`` does by text (and misses tokens written in capitals).
    This expands the token ids instead.
    """
    held = _STATE.get(text_encoder)
    if held is None or not held.key:
        return None
    from compel.embeddings_provider import BaseTextualInversionManager

    expansions = dict(held.expansions)

    class _Expander(BaseTextualInversionManager):  # type: ignore[misc]
        def expand_textual_inversion_token_ids_if_necessary(self, token_ids: list[int]) -> list[int]:
            return [i for token_id in token_ids for i in expansions.get(token_id, (token_id,))]

    return _Expander()


def unused_embeddings(files: Iterable[EmbeddingFile | Embedding], texts: Iterable[str]) -> list[str]:
    """The tokens of ``files`` that none of ``texts`` (prompts and negative prompts) uses, case-insensitively.

    A given token is known without reading the file; otherwise the file is read for it.

        >>> unused_embeddings([EmbeddingFile("a.pt", "<shiny>"), EmbeddingFile("b.pt", "<dull>")], ["a <SHINY> fox"])
        ['<dull>']
    """
    words = [text.lower() for text in texts]
    unused = []
    for file in files:
        token = file.token if isinstance(file, Embedding) or file.token is not None else read_embedding(file)[0].token
        if not any(token.lower() in text for text in words):
            unused.append(token)
    return unused
