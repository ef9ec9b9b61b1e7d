"""Scorer specs: the text a user writes to name a scorer (a CLIP model: built-in, open_clip name and tag, or weights file;
a published scorer such as ``aesthetic`` or ``pickscore``, or its local copy; or the micro-world judge), read and checked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from promptlab.errors import ScoringError
from promptlab.scoring.builtin_clip import BUILTIN_CLIP_MODELS, METADATA_MODEL
from promptlab.scoring.published import ALIASES, FAMILIES, PUBLISHED, local_weights

DEFAULT_SPEC = "clip"


DEFAULT_MODEL = "ViT-L-14-quickgelu"


DEFAULT_PRETRAINED = "openai"


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


#: Scorers that are no CLIP model, by spec: the spec is also their kind (``SCORERS``).
#: ``micro-judge`` reads micro-world pictures with the pixel judge (``scoring.micro_judge``).
JUDGE_SPECS: tuple[str, ...] = ("micro-judge",)


@dataclass(frozen=True)
class ScorerSpec:
    """A parsed scorer spec: the name its scores are stored under and what open_clip loads."""

    #: Stored as ``Score.scorer``: the spec in a canonical form (weights files as absolute paths).
    name: str
    #: An open_clip model name or a built-in's name.
    model: str
    #: A pretrained tag, an absolute weights file, or None for a built-in's own weights.
    pretrained: str | None
    #: The key of the scorer class in ``SCORERS``.
    kind: str = "clip"


def _spec_forms() -> str:
    builtins = ", ".join(f"'{name}'" for name in BUILTIN_CLIP_MODELS)
    return (
        "valid forms: 'clip' (ViT-L-14-quickgelu, OpenAI weights), 'NAME:PRETRAINED_TAG' "
        "(e.g. 'ViT-H-14:laion2b_s32b_b79k'), 'NAME:/path/to/weights.safetensors', "
        f"'/path/to/weights.safetensors' (a file that names its model), a built-in: {builtins}, "
        f"a published scorer: {', '.join(repr(name) for name in [*PUBLISHED, *ALIASES])} (or its local copy, "
        "'aesthetic:/path/to/head.pth'), or the micro-world's judge: "
        f"{', '.join(repr(name) for name in JUDGE_SPECS)}"
    )


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(WEIGHT_SUFFIXES) or "/" in text or os.sep in text or text.startswith("~")


def _weights_file(spec: str, text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ScoringError(f"scorer {spec!r}: weights file {path} does not exist")
    return path.resolve()


def file_model(path: Path) -> str | None:
    """The model a weights file names in its safetensors metadata, or None."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # noqa: BLE001 - safetensors raises its own untyped errors on bad headers
        raise ScoringError(f"cannot read weights file {path} as safetensors: {error}") from error
    return metadata.get(METADATA_MODEL)


def _activations(name: str, tag: str) -> tuple[bool, bool]:
    """Whether the tag's weights were trained with QuickGELU, and whether model ``name`` uses it."""
    import open_clip

    trained = bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))
    return trained, bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False))


def _same_activation(name: str, tag: str) -> bool:
    trained, built = _activations(name, tag)
    return trained == built


def _check_quick_gelu(spec: str, name: str, tag: str) -> None:
    trained, built = _activations(name, tag)
    if trained == built:
        return
    import open_clip

    twin = f"{name}-quickgelu" if trained else name.removesuffix("-quickgelu")
    fix = f"use '{twin}:{tag}'" if twin in open_clip.list_models() else "give a local file for a matching model"
    act = {True: "QuickGELU", False: "GELU"}
    raise ScoringError(
        f"scorer {spec!r}: the {tag!r} weights were trained with {act[trained]} but {name} uses "
        f"{act[built]}, which gives wrong embeddings (open_clip only warns); {fix}"
    )


def _published_spec(spec: str, text: str) -> ScorerSpec | None:
    """A published scorer's spec (``aesthetic``, ``hps``, ...) or its local copy (``aesthetic:/path``), else None."""
    name = ALIASES.get(text, text)
    if name in PUBLISHED:
        scorer = PUBLISHED[name]
        return ScorerSpec(scorer.name, scorer.model, None, kind=scorer.kind)
    family, sep, location = text.partition(":")
    if not sep or family not in FAMILIES:
        return None
    scorer = PUBLISHED[FAMILIES[family]]
    if not location.strip():
        raise ScoringError(f"scorer {spec!r}: nothing after ':'; use '{scorer.name}' or '{scorer.local}'")
    path = local_weights(spec, location.strip(), folder=scorer.local_folder)
    return ScorerSpec(f"{scorer.kind}:{path}", scorer.model, str(path), kind=scorer.kind)


def parse_scorer_spec(spec: str) -> ScorerSpec:
    """Read a scorer spec (forms in the module docstring); ScoringError names a bad one."""
    text = spec.strip()
    if not text:
        raise ScoringError(f"scorer spec is empty; {_spec_forms()}")
    published = _published_spec(spec, text)
    if published is not None:
        return published

    import open_clip
    if text == DEFAULT_SPEC:
        return ScorerSpec(DEFAULT_SPEC, DEFAULT_MODEL, DEFAULT_PRETRAINED)
    if text in BUILTIN_CLIP_MODELS:
        return ScorerSpec(text, text, None)
    if text in JUDGE_SPECS:
        return ScorerSpec(text, text, None, kind=text)
    name, sep, pretrained = text.partition(":")
    builtin = name in BUILTIN_CLIP_MODELS
    known = builtin or name in open_clip.list_models()
    if not known and _looks_like_path(text):
        path = _weights_file(spec, text)
        model = file_model(path)
        if model is None or not (model in BUILTIN_CLIP_MODELS or model in open_clip.list_models()):
            raise ScoringError(
                f"scorer {spec!r}: {path} does not name a known model in its safetensors metadata "
                f"({METADATA_MODEL}={model!r}); give the model too: 'NAME:{path}' with NAME from "
                "open_clip.list_models()"
            )
        return ScorerSpec(f"{model}:{path}", model, str(path))
    if not known:
        raise ScoringError(
            f"scorer {spec!r}: {name!r} is not an open_clip model (open_clip.list_models()) "
            f"nor a built-in; {_spec_forms()}"
        )
    tags = [tag for tag in open_clip.list_pretrained_tags_by_model(name) if _same_activation(name, tag)]
    if sep and not pretrained:
        raise ScoringError(f"scorer {spec!r}: nothing after ':'; {_spec_forms()}")
    if not pretrained:
        choices = f"'{name}:TAG' with one of its tags ({', '.join(tags)}) or " if tags else ""
        raise ScoringError(
            f"scorer {spec!r}: name {name}'s weights too: {choices}a local file, '{name}:/path/to/weights.safetensors'"
        )
    if _looks_like_path(pretrained):
        path = _weights_file(spec, pretrained)
        return ScorerSpec(f"{name}:{path}", name, str(path))
    if builtin:
        raise ScoringError(
            f"scorer {spec!r}: built-in {name} has no pretrained tags; use '{name}' or '{name}:/path/to/weights.safetensors'"
        )
    if pretrained not in open_clip.list_pretrained_tags_by_model(name):
        raise ScoringError(
            f"scorer {spec!r}: {name} has no pretrained tag {pretrained!r}; its tags: {', '.join(tags) or 'none'} "
            f"(or give a local file, '{name}:/path/to/weights.safetensors')"
        )
    _check_quick_gelu(spec, name, pretrained)
    return ScorerSpec(f"{name}:{pretrained}", name, pretrained)
