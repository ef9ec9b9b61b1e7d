"""What an experiment is made of: the validated file (``ExperimentSpec``), its axes, variants and cells,
and the names and rules the file's keys follow. ``parse`` builds a spec, ``expand`` its variants."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlab.prompt import SOURCE_SYNTAXES, Prompt, Term
from promptlab.render.adapters import NO_LORA, LoraSpec
from promptlab.render.params import MAX_SIDE, MAX_STEPS
from promptlab.render.params import TASK_INPUTS as RENDER_TASK_INPUTS

STRATEGIES: tuple[str, ...] = ("grid", "ablation", "random")
#: The experiment file's key for each input image, and the diffusers argument it fills.
INPUT_KEYS: dict[str, str] = {"image": "image", "mask": "mask_image", "depth": "depth_map"}
_FILE_KEYS = {argument: key for key, argument in INPUT_KEYS.items()}
#: The input images each task needs, and those it takes, by the file's keys: ``render.params.TASK_INPUTS`` renamed.
TASK_INPUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    task: (tuple(_FILE_KEYS[name] for name in needs), tuple(_FILE_KEYS[name] for name in takes))
    for task, (needs, takes) in RENDER_TASK_INPUTS.items()
}
# The level of a category axis meaning "without this category".
ABSENT = ""
# The level of an embedding axis meaning "no embedding".
NO_EMBEDDING = "none"
DEFAULT_SCORER = "clip"
#: The scorer of a file that names none, by model where it is not ``DEFAULT_SCORER``: micro's own
#: micro-clip, trained on the same scenes (CLIP ViT-L knows nothing of them and is not there offline).
MODEL_SCORERS: dict[str, str] = {"micro": "micro-clip"}


def default_scorer(models: Sequence[str]) -> str:
    """The scorer for an experiment over ``models`` that names none: their own when they share one.

    >>> default_scorer(["micro"]), default_scorer(["micro", "runwayml/stable-diffusion-v1-5"])
    ('micro-clip', 'clip')
    """
    scorers = {MODEL_SCORERS.get(model.strip(), DEFAULT_SCORER) for model in models}
    return scorers.pop() if len(scorers) == 1 else DEFAULT_SCORER
# Enough for any measurement (a term's effect is sure within a few dozen seeds); far past it is a typo
# that would run for days. Checked before anything is built.
MAX_SEEDS = 10_000
MAX_CELLS = 1_000_000
# Bumped when the key's recipe changes, so old and new keys never collide.
KEY_VERSION = 1

TOP_KEYS = (
    "name", "description", "model", "task", "seeds", "strategy", "samples", "random_seed",
    "scorer", "scorers", "batch_size", "long_prompt", "subjects", "image", "mask", "depth",
    "params", "prompt", "axes", "syntax", "search",
    "loras", "lora_dir", "embeddings", "controlnet",
)  # fmt: skip
# How the file's subject and negative prompt are read: compel's syntax, or A1111's.
PROMPT_SYNTAXES = SOURCE_SYNTAXES
PROMPT_KEYS = ("subject", "intent", "negative", "negative_presets", "terms")


@dataclass(frozen=True)
class ParamRule:
    """How a generation parameter is checked: its type and the rule its value must follow."""

    kind: type
    expected: str
    check: Callable[[Any], bool]


def _image_side(value: int) -> bool:
    return 8 <= value <= MAX_SIDE and value % 8 == 0


#: Generation parameters by diffusers' argument names; ``[params]`` and parameter axes use them.
PARAMS: dict[str, ParamRule] = {
    "num_inference_steps": ParamRule(int, f"an integer from 1 to {MAX_STEPS}", lambda v: 1 <= v <= MAX_STEPS),
    "guidance_scale": ParamRule(float, "a number >= 0", lambda v: v >= 0),
    "width": ParamRule(int, f"a multiple of 8 from 8 to {MAX_SIDE} (diffusers' rule)", _image_side),
    "height": ParamRule(int, f"a multiple of 8 from 8 to {MAX_SIDE} (diffusers' rule)", _image_side),
    "scheduler": ParamRule(str, "a scheduler name", lambda v: bool(v.strip())),
    "strength": ParamRule(float, "a number from 0 to 1", lambda v: 0 <= v <= 1),
    "clip_skip": ParamRule(int, "an integer >= 1", lambda v: v >= 1),
    "guidance_rescale": ParamRule(float, "a number from 0 to 1", lambda v: 0 <= v <= 1),
    "eta": ParamRule(float, "a number >= 0", lambda v: v >= 0),
    "controlnet_conditioning_scale": ParamRule(float, "a number >= 0 (0: no ControlNet effect)", lambda v: v >= 0),
}
# Parameters that only an image-to-image task reads.
IMAGE_TASK_PARAMS = ("strength",)
MODEL_RULE = ParamRule(str, "a model: hub id, local folder, .safetensors file or built-in name", lambda v: bool(v.strip()))


@dataclass(frozen=True)
class Axis:
    """One swept dimension: its name, its kind and its levels in file order.

    Levels by kind: ``category`` a ``Term`` or None (absent), ``param`` and ``model`` the
    value, ``weight`` a float (for the fixed term ``term``), ``order`` a tuple of
    categories, ``subject`` a string, ``lora`` a ``LoraSpec`` or None (no LoRA), ``lora_strength``
    a float (for the fixed LoRA named ``term``), ``embedding`` a ``render.embeddings.Embedding`` or
    None (none), ``control_image`` the image file as written.
    """

    name: str
    kind: str
    levels: tuple[Any, ...]
    term: str | None = None

    def value(self, level: Any) -> Any:
        """The level as it appears in ``Variant.axis_values``: JSON-able, as the file wrote it."""
        if self.kind == "category":
            return ABSENT if level is None else term_spec(level)
        if self.kind == "order":
            return " > ".join(level)
        if self.kind == "lora":
            return NO_LORA if level is None else level.describe()
        if self.kind == "embedding":
            return NO_EMBEDDING if level is None else level.token
        return level

    def describe(self, level: Any) -> str:
        """The level as it appears in labels."""
        if self.kind == "category" and level is None:
            return "(none)"
        return str(self.value(level))


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated experiment file. ``raw`` is the parsed TOML, as stored with the runs."""

    name: str
    source: str
    model: str
    task: str
    seeds: tuple[int, ...]
    strategy: str
    subjects: tuple[str, ...]
    terms: tuple[Term, ...]
    params: dict[str, Any]
    axes: tuple[Axis, ...]
    category_order: tuple[str, ...]
    description: str = ""
    path: Path | None = None
    samples: int | None = None
    random_seed: int = 0
    #: The scorer that ranks (``scorer``, or the first of ``scorers``), and the others every image also gets.
    scorer: str = DEFAULT_SCORER
    more_scorers: tuple[str, ...] = ()
    batch_size: int = 1
    long_prompt: str = "truncate"
    intent: str | None = None
    negative: str = ""
    negative_presets: tuple[str, ...] = ()
    negative_prompt: str = ""
    inputs: dict[str, Path] = field(default_factory=dict)
    input_hashes: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    #: LoRAs every variant applies (``loras``), and those an A1111-syntax subject's ``<lora:...>`` tags add.
    loras: tuple[LoraSpec, ...] = ()
    subject_loras: dict[str, tuple[LoraSpec, ...]] = field(default_factory=dict)
    lora_dir: Path | None = None
    #: Embeddings every variant loads (``embeddings``), and the ``[controlnet]`` block (``experiment.controlnet``).
    embeddings: tuple[Any, ...] = ()
    controlnet: Any = None

    @property
    def scorers(self) -> tuple[str, ...]:
        """Every scorer each image is scored with, the ranking one first."""
        return (self.scorer, *(name for name in self.more_scorers if name != self.scorer))

    @property
    def subject(self) -> str:
        """The subject, or the subjects joined with " | " when there are several."""
        return " | ".join(self.subjects)

    def intent_for(self, subject: str) -> str:
        """What an image of ``subject`` should show: the ``intent`` key, else the subject."""
        return self.intent if self.intent is not None else subject


@dataclass(frozen=True)
class Variant:
    """One prompt + parameters + model combination: everything of a render but the seed."""

    key: str
    label: str
    axis_values: dict[str, Any]
    prompt: Prompt
    negative_prompt: str
    intent: str
    model: str
    task: str
    params: dict[str, Any]
    long_prompt: str = "truncate"
    inputs: dict[str, Path] = field(default_factory=dict)
    loras: tuple[LoraSpec, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description, the shape stored with runs and in PNG metadata."""
        return {
            "key": self.key,
            "label": self.label,
            "axis_values": dict(self.axis_values),
            "subject": self.prompt.subject,
            "prompt": self.prompt.to_compel(),
            "prompt_a1111": self.prompt.to_a1111(),
            "prompt_plain": self.prompt.to_plain(),
            "terms": [{"text": t.text, "weight": t.weight, "category": t.category} for t in self.prompt.terms],
            "negative_prompt": self.negative_prompt,
            "intent": self.intent,
            "model": self.model,
            "task": self.task,
            "params": dict(self.params),
            "long_prompt": self.long_prompt,
            "inputs": {name: str(path) for name, path in self.inputs.items()},
            **({"loras": [lora.to_dict() for lora in self.loras]} if self.loras else {}),
        }


@dataclass(frozen=True)
class Cell:
    """One image to render: a variant and a seed."""

    variant: Variant
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        """``(variant key, seed)``: unique within an experiment."""
        return (self.variant.key, self.seed)

    @property
    def label(self) -> str:
        return f"{self.variant.label}, seed={self.seed}"


def term_spec(term: Term) -> str:
    """A term as an experiment file writes it: ``TEXT``, or ``TEXT:WEIGHT`` where the weight is not 1."""
    return term.text if term.weight == 1.0 else f"{term.text}:{term.weight:g}"


def show_value(value: Any) -> str:
    """A value as error messages show it (as TOML writes it)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)

