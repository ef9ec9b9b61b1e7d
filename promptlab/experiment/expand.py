"""Expanding a validated experiment into variants (prompt + parameters + model) and cells (variant x seed).

The strategies, the prompt's term order and the variant key are described in the package docstring.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from promptlab.errors import ExperimentError
from promptlab.experiment.controlnet import controlnet_variant
from promptlab.experiment.embeddings import embedding_params, embedding_term
from promptlab.experiment.spec import KEY_VERSION, Cell, ExperimentSpec, Variant, term_spec
from promptlab.prompt import Prompt, Term
from promptlab.render.adapters import LoraSpec


def expand(spec: ExperimentSpec) -> list[Variant]:
    """The experiment's variants, in strategy order, each key once (see the module docstring)."""
    if spec.strategy == "ablation":
        variants = _ablation(spec)
    elif spec.strategy == "random":
        variants = _random(spec)
    else:
        variants = (_grid_variant(spec, levels) for levels in itertools.product(*(a.levels for a in spec.axes)))
    return list(_unique(variants))


def cells(spec: ExperimentSpec) -> list[Cell]:
    """Every variant with every seed, variant-major: a variant's seeds are rendered together."""
    return [Cell(variant, seed) for variant in expand(spec) for seed in spec.seeds]


def variant_key(
    *,
    prompt: Prompt,
    negative_prompt: str,
    model: str,
    task: str,
    params: Mapping[str, Any],
    long_prompt: str = "truncate",
    input_hashes: Mapping[str, str] | None = None,
    prompt_text: str | None = None,
    loras: Sequence[LoraSpec] = (),
) -> str:
    """A stable 16-hex-digit hash of what decides an image except the seed; the same on every machine.

    ``prompt_text`` is the compel text as rendered where it is the user's own rather than the
    prompt model's (``promptlab render``): two texts that render differently never share a key.
    """
    payload: dict[str, Any] = {
        "v": KEY_VERSION,
        "model": model,
        "task": task,
        "subject": prompt.subject,
        # A term's inner weights count; a term without them keeps the key it always had.
        "terms": [
            [term.text, float(term.weight), *([[list(f) for f in term.fragments]] if term.fragments else [])]
            for term in prompt.terms
        ],
        "negative_prompt": negative_prompt,
        "params": dict(sorted(_key_params(params).items())),
        "long_prompt": long_prompt,
        "inputs": dict(sorted((input_hashes or {}).items())),
    }
    if prompt_text is not None:
        payload["prompt_text"] = prompt_text
    if loras:
        # A LoRA counts by its file's content (or hub id) and strength; without LoRAs the key is as it always was.
        payload["loras"] = [[lora.identity, float(lora.strength)] for lora in loras]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _key_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as the key counts them: embeddings by token and file content, not by where the file is."""
    if not params.get("embeddings"):
        return dict(params)
    # A variant's are mappings (``Embedding.to_dict``); a render's recipe has them as [token, sha256] already.
    return {**params, "embeddings": [[e["token"], e["sha256"]] if isinstance(e, Mapping) else e for e in params["embeddings"]]}


def _build(
    spec: ExperimentSpec,
    choice: Mapping[str, Any],
    label: str,
    axis_values: dict[str, Any],
    drop: Term | None = None,
) -> Variant:
    """The variant for ``choice`` (axis name -> level; axes left out keep their base level)."""
    # 1. Fixed terms, with swept weights, less the dropped one; then the category axes' terms.
    weights = {axis.term: choice[axis.name] for axis in spec.axes if axis.kind == "weight" and axis.name in choice}
    terms = [replace(t, weight=weights.get(t.text, t.weight)) for t in spec.terms if t != drop]
    terms += [choice[a.name] for a in spec.axes if a.kind == "category" and choice.get(a.name) is not None]
    swept_embeddings = [choice[a.name] for a in spec.axes if a.kind == "embedding" and choice.get(a.name) is not None]
    # An embedding axis works like a term axis: its level's token is a term of the prompt.
    terms += [embedding_term(embedding) for embedding in swept_embeddings]
    # 2. Sort by category: the order axis's categories first, then vocabulary order.
    first = next((choice[a.name] for a in spec.axes if a.kind == "order" and a.name in choice), ())
    rank: dict[str, int] = {}
    for category in (*first, *spec.category_order):
        rank.setdefault(category, len(rank))
    # Terms of no vocabulary category (an embedding's token) go last.
    terms.sort(key=lambda t: rank.get(t.category, len(rank)))
    # 3. Parameters and model.
    params = dict(spec.params)
    params.update({a.name: choice[a.name] for a in spec.axes if a.kind == "param" and a.name in choice})
    params.update(embedding_params((*spec.embeddings, *swept_embeddings)))
    control_params, control_inputs, control_hashes = controlnet_variant(spec.controlnet, choice)
    params.update(control_params)
    model = next((choice[a.name] for a in spec.axes if a.kind == "model" and a.name in choice), spec.model)
    subject = next((choice[a.name] for a in spec.axes if a.kind == "subject" and a.name in choice), spec.subjects[0])
    prompt = Prompt(subject, tuple(terms), spec.negative, spec.negative_presets)
    loras = _loras(spec, choice, subject)
    key = variant_key(
        prompt=prompt,
        negative_prompt=spec.negative_prompt,
        model=model,
        task=spec.task,
        params=params,
        long_prompt=spec.long_prompt,
        input_hashes={**spec.input_hashes, **control_hashes},
        loras=loras,
    )
    return Variant(
        key=key,
        label=label,
        axis_values=axis_values,
        prompt=prompt,
        negative_prompt=spec.negative_prompt,
        intent=spec.intent_for(subject),
        model=model,
        task=spec.task,
        params=params,
        long_prompt=spec.long_prompt,
        inputs={**spec.inputs, **control_inputs},
        loras=loras,
    )


def _loras(spec: ExperimentSpec, choice: Mapping[str, Any], subject: str) -> tuple[LoraSpec, ...]:
    """The variant's LoRAs: the fixed ones (at the strength axis's level), the subject's tags', the LoRA axis's."""
    loras = list(spec.loras)
    for axis in spec.axes:
        if axis.kind == "lora_strength" and axis.name in choice:
            loras[0] = replace(loras[0], strength=choice[axis.name])
    loras += spec.subject_loras.get(subject, ())
    loras += [choice[a.name] for a in spec.axes if a.kind == "lora" and choice.get(a.name) is not None]
    return tuple(loras)


def _grid_variant(spec: ExperimentSpec, levels: tuple[Any, ...]) -> Variant:
    choice = {axis.name: level for axis, level in zip(spec.axes, levels)}
    values = {axis.name: axis.value(level) for axis, level in zip(spec.axes, levels)}
    label = ", ".join(f"{axis.name}={axis.describe(level)}" for axis, level in zip(spec.axes, levels))
    return _build(spec, choice, label or "base", values)


def _ablation(spec: ExperimentSpec) -> Iterable[Variant]:
    subject_axis = next((a for a in spec.axes if a.kind == "subject"), None)
    for subject in subject_axis.levels if subject_axis else (None,):
        choice = {"subject": subject} if subject_axis else {}

        def variant(change: str, extra: Mapping[str, Any] | None = None, drop: Term | None = None) -> Variant:
            values = {"subject": subject, "ablation": change} if subject_axis else {"ablation": change}
            label = f"subject={subject}, {change}" if subject_axis else change
            return _build(spec, {**choice, **(extra or {})}, label, values, drop)

        yield variant("base")
        for term in spec.terms:
            yield variant(f"-{term_spec(term)}", drop=term)
        for axis in spec.axes:
            if axis.kind == "subject":
                continue
            for level in axis.levels:
                if axis.kind == "category" and level is None:
                    continue
                change = f"+{axis.describe(level)}" if axis.kind == "category" else f"{axis.name}={axis.describe(level)}"
                yield variant(change, {axis.name: level})


def _random(spec: ExperimentSpec) -> list[Variant]:
    # Draw grid indices without replacement until ``samples`` distinct variants are found.
    assert spec.samples is not None
    sizes = [len(axis.levels) for axis in spec.axes]
    total = math.prod(sizes)
    rng = random.Random(spec.random_seed)
    tried: set[int] = set()
    found: dict[str, tuple[int, Variant]] = {}
    while len(found) < spec.samples and len(tried) < total:
        index = rng.randrange(total)
        if index in tried:
            continue
        tried.add(index)
        levels = []
        rest = index
        for axis, size in zip(reversed(spec.axes), reversed(sizes)):
            rest, digit = divmod(rest, size)
            levels.append(axis.levels[digit])
        variant = _grid_variant(spec, tuple(reversed(levels)))
        found.setdefault(variant.key, (index, variant))
    if len(found) < spec.samples:
        raise ExperimentError(
            f"{spec.source}: samples = {spec.samples}: expected at most {len(found)}, "
            "the number of distinct variants the axes build"
        )
    return [variant for _, variant in sorted(found.values(), key=lambda pair: pair[0])]


def _unique(variants: Iterable[Variant]) -> Iterable[Variant]:
    seen: set[str] = set()
    for variant in variants:
        if variant.key not in seen:
            seen.add(variant.key)
            yield variant

