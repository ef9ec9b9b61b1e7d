"""An experiment's textual-inversion embeddings: the fixed ones (``embeddings``) and an axis of them
(``[axes] embedding``), which works like a term axis: each level loads its embedding and adds its token
to the prompt as a term.

    embeddings = ["negative-style.pt:<neg>"]      # loaded for every variant: FILE[:TOKEN], relative to this file

    [prompt]
    negative = "<neg>"                            # a fixed embedding's token goes where it should act

    [axes]
    embedding = ["none", "styles/ink.safetensors:<ink>", "styles/clay.pt:<clay>"]

Every file is read, checked and hashed here, so a missing or corrupt one fails before anything
renders; whether it fits the model's text encoder (SD 1.x, SDXL) is checked when the run loads it.
A fixed embedding whose token no prompt of the experiment uses is refused: it would be recorded on
every run and change none; so is a token that is also a term of the vocabulary (the analysis could
not tell the embedding from the term).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from promptlab.errors import ExperimentError, RenderError
from promptlab.experiment.check import Checker
from promptlab.experiment.spec import NO_EMBEDDING, Axis, show_value
from promptlab.prompt import Term, TermLookup
from promptlab.render.embeddings import Embedding, read_embedding, unused_embeddings
from promptlab.render.params import parse_embedding

#: The ``[axes]`` key that sweeps embeddings.
EMBEDDING_AXES = ("embedding",)
#: The category of the term an embedding axis's level adds to the prompt.
EMBEDDING_CATEGORY = "embedding"


def read_embedding_spec(check: Checker, where: str, text: Any, base_dir: Path) -> Embedding:
    """The embedding ``FILE[:TOKEN]`` names (relative to the experiment file), read and hashed."""
    if not isinstance(text, str) or not text.strip():
        check.fail(where, text, 'an embedding: FILE[:TOKEN], e.g. "styles/ink.safetensors:<ink>"')
    try:
        file = parse_embedding(text)
        path = (base_dir / Path(file.path).expanduser()).resolve()
        return read_embedding(type(file)(str(path), file.token))[0]
    except RenderError as exc:
        raise ExperimentError(f"{check.source}: {where} = {show_value(text)}: {exc}") from None


def fixed_embeddings(check: Checker, raw: Mapping[str, Any], base_dir: Path) -> tuple[Embedding, ...]:
    """The ``embeddings`` list: embeddings every variant loads."""
    if "embeddings" not in raw:
        return ()
    value = raw["embeddings"]
    if not isinstance(value, list):
        check.fail("embeddings", value, 'a list of embeddings, e.g. embeddings = ["ink.safetensors:<ink>"]')
    embeddings = tuple(read_embedding_spec(check, "embeddings", text, base_dir) for text in value)
    _check_distinct_tokens(check, "embeddings", value, embeddings)
    return embeddings


def embedding_axis(check: Checker, value: list[Any], fixed: Sequence[Embedding], base_dir: Path) -> Axis:
    """``[axes] embedding``: an embedding or ``"none"`` per level."""
    where = "[axes] embedding"
    levels: list[Embedding | None] = []
    for level in value:
        if level == NO_EMBEDDING:
            levels.append(None)
            continue
        embedding = read_embedding_spec(check, where, level, base_dir)
        if any(e.token.lower() == embedding.token.lower() for e in fixed):
            check.fail(where, level, "an embedding whose token is not also a fixed embedding's (those load for every variant)")
        levels.append(embedding)
    _check_distinct_tokens(check, where, value, [e for e in levels if e is not None])
    return Axis("embedding", "embedding", tuple(levels))


def _check_distinct_tokens(check: Checker, where: str, value: Any, embeddings: Sequence[Embedding]) -> None:
    tokens = [e.token.lower() for e in embeddings]
    if len(set(tokens)) != len(tokens):
        check.fail(where, value, "each embedding once, each with its own token (FILE:TOKEN gives one)")


def check_tokens_used(check: Checker, fixed: Sequence[Embedding], texts: Iterable[str]) -> None:
    """ExperimentError if a fixed embedding's token is in no subject, term or negative prompt of the experiment."""
    unused = unused_embeddings(fixed, texts)
    if unused:
        embedding = next(e for e in fixed if e.token == unused[0])
        raise ExperimentError(
            f"{check.source}: embeddings: the token {embedding.token!r} of {embedding.path} is in no subject, term or "
            "negative prompt, so it would change nothing; write it where the embedding should act (e.g. in [prompt] "
            "negative for a negative embedding), or sweep it with [axes] embedding"
        )


def check_tokens_are_not_terms(check: Checker, embeddings: Iterable[Embedding], vocab: TermLookup) -> None:
    """ExperimentError if an embedding's token is a term of the vocabulary: the analysis could not tell them apart."""
    for embedding in embeddings:
        term = vocab.find(embedding.token)
        if term is not None:
            raise ExperimentError(
                f"{check.source}: embedding {embedding.path}: its token {embedding.token!r} is also a term of the vocabulary "
                f"(category {term.category}), so a run could not tell the embedding from the term; give it a token of "
                f"its own with FILE:TOKEN, e.g. <{embedding.token}>"
            )


def embedding_term(embedding: Embedding) -> Term:
    """The term an embedding axis's level adds to the prompt: its token."""
    return Term(embedding.token, 1.0, EMBEDDING_CATEGORY)


def embedding_params(embeddings: Sequence[Embedding]) -> dict[str, Any]:
    """A variant's ``params`` entry for its embeddings (none: nothing, so its key is as it always was)."""
    return {"embeddings": [e.to_dict() for e in embeddings]} if embeddings else {}
