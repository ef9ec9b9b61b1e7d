"""An experiment's LoRAs: the fixed ones (``loras``), an axis of LoRAs (``[axes] lora``), an axis of the fixed
LoRA's strength (``[axes] lora_strength``), and the ``<lora:name:w>`` tags of an A1111-syntax subject.

    lora_dir = "loras"                      # where LoRAs are found by name (else PROMPTLAB_LORA_DIR)
    loras = ["detail:0.6"]                  # applied to every variant: NAME_OR_FILE_OR_HUB_ID[:STRENGTH]

    [axes]
    lora = ["none", "style:0.5", "style:1.0"]   # one more LoRA per level; "none" adds none
    lora_strength = [0, 0.5, 1.0]               # the strengths of the one LoRA in loras

Every LoRA file is found and hashed here, so a missing one fails before anything renders; a
hub id is checked when the run starts (``runner.offline``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptlab.errors import ExperimentError, ModelError, PromptSyntaxError
from promptlab.experiment.check import Checker
from promptlab.experiment.spec import Axis, show_value
from promptlab.prompt.a1111 import lora_tags
from promptlab.render.adapters import (
    MAX_LORA_STRENGTH,
    NO_LORA,
    LoraSpec,
    check_strength,
    lora_folder,
    parse_lora,
)

#: The ``[axes]`` keys that sweep LoRAs.
LORA_AXES = ("lora", "lora_strength")


def read_lora_dir(check: Checker, raw: Mapping[str, Any], base_dir: Path) -> Path | None:
    """The LoRA folder: ``lora_dir`` (relative to the experiment file), else ``PROMPTLAB_LORA_DIR``, else None."""
    value = check.string(raw, "lora_dir", "", nonempty=True)
    if value is None:
        return lora_folder(None)
    path = (base_dir / Path(value).expanduser()).resolve()
    if not path.is_dir():
        check.fail("lora_dir", value, f"an existing folder of LoRA files, relative to the experiment file (looked for {path})")
    return path


def read_lora(
    check: Checker, where: str, text: Any, lora_dir: Path | None, base_dir: Path, strength: float | None = None
) -> LoraSpec:
    """The LoRA ``text`` names, found and hashed; ExperimentError naming the key and the fix."""
    if not isinstance(text, str) or not text.strip():
        check.fail(where, text, 'a LoRA: NAME_OR_FILE_OR_HUB_ID[:STRENGTH], e.g. "detail:0.6"')
    try:
        return parse_lora(text, lora_dir=lora_dir, base_dir=base_dir, strength=strength)
    except ModelError as exc:
        raise ExperimentError(f"{check.source}: {where} = {show_value(text)}: {exc}") from None


def fixed_loras(check: Checker, raw: Mapping[str, Any], lora_dir: Path | None, base_dir: Path) -> tuple[LoraSpec, ...]:
    """The ``loras`` list: LoRAs every variant applies."""
    if "loras" not in raw:
        return ()
    value = raw["loras"]
    if not isinstance(value, list):
        check.fail("loras", value, 'a list of LoRAs, e.g. loras = ["detail.safetensors:0.6"]')
    loras = tuple(read_lora(check, "loras", text, lora_dir, base_dir) for text in value)
    if len({lora.identity for lora in loras}) != len(loras):
        check.fail("loras", value, "each LoRA once (one strength each)")
    return loras


def lora_axis(
    check: Checker, name: str, value: list[Any], fixed: Sequence[LoraSpec], lora_dir: Path | None, base_dir: Path
) -> Axis:
    """``[axes] lora`` (a LoRA or ``"none"`` per level) or ``[axes] lora_strength`` (the fixed LoRA's strengths)."""
    where = f"[axes] {name}"
    if name == "lora_strength":
        if len(fixed) != 1:
            check.fail(
                where, value,
                f'strengths of the one LoRA in loras = ["NAME"] (the file gives {len(fixed)}); for several LoRAs, '
                'sweep [axes] lora = ["a:0.5", "a:1.0", ...] instead',
            )  # fmt: skip
        levels = []
        for level in value:
            try:
                levels.append(check_strength(level, fixed[0].name))
            except ModelError:
                check.fail(where, level, f"a strength: a number from {-MAX_LORA_STRENGTH:g} to {MAX_LORA_STRENGTH:g}")
        return Axis(name, "lora_strength", tuple(levels), term=fixed[0].name)
    known = {lora.identity for lora in fixed}
    loras: list[LoraSpec | None] = []
    for level in value:
        if level == NO_LORA:
            loras.append(None)
            continue
        lora = read_lora(check, where, level, lora_dir, base_dir)
        if lora.identity in known:
            check.fail(where, level, "a LoRA that is not also in loras (those apply to every variant already)")
        loras.append(lora)
    return Axis(name, "lora", tuple(loras))


def subject_lora_tags(
    check: Checker, where: str, text: str, lora_dir: Path | None, base_dir: Path
) -> tuple[str, tuple[LoraSpec, ...]]:
    """An A1111-syntax subject without its ``<lora:name:w>`` tags, and their LoRAs found in the LoRA folder."""
    try:
        rest, tags = lora_tags(text)
    except PromptSyntaxError as exc:
        check.fail(where, text, f"a subject in a1111 syntax ({exc})")
    loras = tuple(read_lora(check, where, tag.name, lora_dir, base_dir, strength=tag.weight) for tag in tags)
    if len({lora.identity for lora in loras}) != len(loras):
        check.fail(where, text, "each <lora:...> tag once")
    # A1111 leaves the text around a tag as it was; a tag alone between commas leaves ", ," behind.
    return " ".join(rest.split()).replace(" ,", ","), loras


def check_lora_repeats(
    check: Checker, fixed: Sequence[LoraSpec], tagged: Sequence[Sequence[LoraSpec]], axes: Sequence[Axis]
) -> None:
    """ExperimentError for a subject's ``<lora:...>`` tag naming a LoRA that ``loras`` or ``[axes] lora`` gives too:
    a variant would apply it twice, at two strengths."""
    elsewhere = {lora.identity for lora in fixed}
    elsewhere |= {lora.identity for axis in axes if axis.kind == "lora" for lora in axis.levels if lora is not None}
    for found in tagged:
        for lora in found:
            if lora.identity in elsewhere:
                check.fail(
                    "[prompt] subject", f"<lora:{lora.name}:{lora.strength:g}>",
                    "a LoRA tag for a LoRA that loras and [axes] lora do not give too (each LoRA once, at one strength)",
                )  # fmt: skip
