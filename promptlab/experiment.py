"""Experiment files: a TOML description of a prompt sweep, validated, then expanded into variants and cells.

    >>> spec = load_experiment("examples/squirrel-styles.toml")
    >>> len(expand(spec)), len(cells(spec))
    (18, 72)
    >>> expand(spec)[0].label
    'style=pop-art, artist=Alphonse Mucha, guidance_scale=5.0'

``examples/squirrel-styles.toml`` documents every key. In short: ``name``, ``model``, ``task``,
``seeds`` (a list, or a count N meaning seeds 1..N), ``strategy``, ``[params]`` (diffusers'
argument names), ``[prompt]`` (subject, intent, fixed terms by category, negative text and
presets) and ``[axes]``, whose keys are:

- a vocabulary category (``style = ["pop-art", "steampunk:1.3", ""]``): one term per level,
  added to that category's fixed terms; ``""`` is the level "without this category";
- a parameter (``guidance_scale = [5.0, 7.5]``, ``num_inference_steps``, ``scheduler``,
  ``width``, ``height``, ``strength``, ..., and ``model``): overrides ``[params]``;
- ``order = [["style", "medium"], ...]``: the listed categories go first, in that order, the
  others follow in vocabulary order;
- ``[axes.weights]`` ``"oil painting" = [0.8, 1.0, 1.3]``: the weights of a fixed term.

Expanding an experiment (``expand``):

1. Each axis has levels; ``subjects = [...]`` adds a ``subject`` axis before the others.
2. The strategy picks combinations: ``grid`` every one (axes in file order, the last varying
   fastest); ``ablation`` per subject the base prompt, then each fixed term removed, then
   each axis level applied alone; ``random`` ``samples`` distinct grid combinations drawn
   with ``random.Random(random_seed)``.
3. A variant's prompt is the subject, then its terms sorted by category (vocabulary order,
   or the order axis), fixed terms before axis terms within a category.
4. A variant's key hashes what decides the image except the seed: model, task, the prompt's
   texts and weights, the negative prompt, the parameters, the long-prompt policy and the
   input images' contents. A combination that builds the same key as an earlier one is
   dropped (e.g. two orders of categories that are both absent).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from promptlab.compose import split_weight
from promptlab.errors import ExperimentError, PromptSyntaxError, RenderError, VocabError
from promptlab.prompt import Prompt, Term, compel_prompt, parse_a1111, parse_compel
from promptlab.render.params import MAX_PIXELS, MAX_PROMPT_CHARS, MAX_SIDE, MAX_STEPS, MAX_WEIGHT, check_prompt, check_size
from promptlab.vocab import FORBIDDEN_TERM_CHARS, Vocabulary, load_vocab

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

TASKS: tuple[str, ...] = ("txt2img", "img2img", "inpaint", "depth2img")
STRATEGIES: tuple[str, ...] = ("grid", "ablation", "random")
LONG_PROMPT_POLICIES: tuple[str, ...] = ("truncate", "chunk")
# The input images each task needs, and those it accepts.
TASK_INPUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "txt2img": ((), ()),
    "img2img": (("image",), ("image",)),
    "inpaint": (("image", "mask"), ("image", "mask")),
    "depth2img": (("image",), ("image", "depth")),
}
# The level of a category axis meaning "without this category".
ABSENT = ""
DEFAULT_SCORER = "clip"
MAX_SEED = 2**32 - 1
# Enough for any measurement (a term's effect is sure within a few dozen seeds); far past it is a typo
# that would run for days. Checked before anything is built.
MAX_SEEDS = 10_000
MAX_CELLS = 1_000_000
# Bumped when the key's recipe changes, so old and new keys never collide.
KEY_VERSION = 1

TOP_KEYS = (
    "name", "description", "model", "task", "seeds", "strategy", "samples", "random_seed",
    "scorer", "batch_size", "long_prompt", "subjects", "image", "mask", "depth",
    "params", "prompt", "axes", "syntax",
)  # fmt: skip
# How the file's subject and negative prompt are read: compel's syntax, or A1111's.
PROMPT_SYNTAXES = ("compel", "a1111")
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
}
# Parameters that only an image-to-image task reads.
IMAGE_TASK_PARAMS = ("strength",)
MODEL_RULE = ParamRule(str, "a model: hub id, local folder, .safetensors file or built-in name", lambda v: bool(v.strip()))


@dataclass(frozen=True)
class Axis:
    """One swept dimension: its name, its kind and its levels in file order.

    Levels by kind: ``category`` a ``Term`` or None (absent), ``param`` and ``model`` the
    value, ``weight`` a float (for the fixed term ``term``), ``order`` a tuple of
    categories, ``subject`` a string.
    """

    name: str
    kind: str
    levels: tuple[Any, ...]
    term: str | None = None

    def value(self, level: Any) -> Any:
        """The level as it appears in ``Variant.axis_values``: JSON-able, as the file wrote it."""
        if self.kind == "category":
            return ABSENT if level is None else _term_spec(level)
        if self.kind == "order":
            return " > ".join(level)
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
    scorer: str = DEFAULT_SCORER
    batch_size: int = 1
    long_prompt: str = "truncate"
    intent: str | None = None
    negative: str = ""
    negative_presets: tuple[str, ...] = ()
    negative_prompt: str = ""
    inputs: dict[str, Path] = field(default_factory=dict)
    input_hashes: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

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


def load_experiment(path: str | Path, *, vocab: Vocabulary | None = None) -> ExperimentSpec:
    """Read and validate an experiment file; ExperimentError names the key, the value and the rule."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"cannot read experiment file {path}: {exc}") from exc
    return parse_experiment(text, path, vocab=vocab)


def parse_experiment(text: str, source: str | Path = "<experiment>", *, vocab: Vocabulary | None = None) -> ExperimentSpec:
    """Validate experiment TOML ``text``; ``source`` names it in errors.

    A ``Path`` source is the file: relative image paths start at its folder. A ``str`` source
    is only a name, and relative paths start at the working directory.
    """
    # 1. Parse the TOML; its error carries the line and column.
    name = str(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{name}: invalid TOML: {exc}") from exc
    path = source if isinstance(source, Path) else None
    base_dir = path.parent if path is not None else Path.cwd()
    check = _Checker(name)
    check.keys(raw, TOP_KEYS, "")
    try:
        vocab = vocab or load_vocab()
    except VocabError as exc:
        raise ExperimentError(f"{name}: cannot load the vocabulary: {exc}") from exc

    # 2. The plain top-level keys.
    experiment_name = check.string(raw, "name", "", required=True, nonempty=True, expected='the experiment\'s name, e.g. name = "squirrel-styles"')
    model = check.string(raw, "model", "", required=True, nonempty=True, expected=MODEL_RULE.expected)
    seeds = _seeds(check, raw)
    task = check.choice(raw, "task", TASKS, "", default="txt2img")
    strategy = check.choice(raw, "strategy", STRATEGIES, "", default="grid")
    if strategy == "random":
        samples = check.integer(raw, "samples", "", minimum=1, required=True)
    else:
        check.not_allowed(raw, "samples", 'strategy = "random"')
        check.not_allowed(raw, "random_seed", 'strategy = "random"')
        samples = None

    # 3. The prompt, its terms and subjects, read in the file's syntax.
    syntax = check.choice(raw, "syntax", PROMPT_SYNTAXES, "", default="compel")
    prompt = check.table(raw, "prompt", required=True)
    check.keys(prompt, PROMPT_KEYS, "[prompt]")
    subjects = _subjects(check, raw, prompt, syntax)
    intent = check.string(prompt, "intent", "[prompt]")
    if intent is not None and "subjects" in raw and len(subjects) > 1:
        raise ExperimentError(
            f"{name}: [prompt] intent = {_show(intent)}: expected no intent with several subjects; "
            "each subject is its own intent"
        )
    terms = _fixed_terms(check, prompt, vocab)
    negative_presets = tuple(check.string_list(prompt, "negative_presets", "[prompt]") or ())
    negative = check.string(prompt, "negative", "[prompt]") or ""
    check.short(negative, "[prompt] negative")
    try:
        negative = compel_prompt(negative, syntax)
    except PromptSyntaxError as exc:
        check.fail("[prompt] negative", negative, f"a negative prompt in {syntax} syntax ({exc})")
    for preset in negative_presets:
        if preset not in vocab.negative_presets:
            check.fail("[prompt] negative_presets", preset, f"a negative preset: one of {', '.join(vocab.negative_presets)}")
    negative_prompt = vocab.negative_text(Prompt("", (), negative, negative_presets))
    try:
        check_prompt(negative_prompt, "the negative prompt")
    except RenderError as exc:
        check.fail("[prompt] negative", negative, f"a negative prompt the encoder can read ({exc})")

    # 4. Parameters, input images and axes.
    params = _params(check, raw, task)
    inputs = _inputs(check, raw, task, base_dir)
    axes = _axes(check, raw, terms, vocab, task, subjects if "subjects" in raw else None)
    category_order = tuple(vocab.categories)
    if samples is not None:
        total = math.prod(len(axis.levels) for axis in axes)
        if samples > total:
            check.fail("samples", samples, f"at most {total}, the number of combinations of the axes")

    # 5. Limits: what the whole sweep asks for, before anything is built or rendered.
    _check_limits(check, strategy, samples, seeds, subjects, terms, params, axes)

    return ExperimentSpec(
        name=experiment_name,
        description=check.string(raw, "description", "") or "",
        source=name,
        path=path.resolve() if path is not None else None,
        model=model,
        task=task,
        seeds=seeds,
        strategy=strategy,
        samples=samples,
        random_seed=check.integer(raw, "random_seed", "", minimum=0) or 0,
        scorer=check.string(raw, "scorer", "", nonempty=True) or DEFAULT_SCORER,
        batch_size=check.integer(raw, "batch_size", "", minimum=1) or 1,
        long_prompt=check.choice(raw, "long_prompt", LONG_PROMPT_POLICIES, "", default="truncate"),
        subjects=subjects,
        intent=intent,
        terms=terms,
        negative=negative,
        negative_presets=negative_presets,
        negative_prompt=negative_prompt,
        params=params,
        axes=axes,
        category_order=category_order,
        inputs=inputs,
        input_hashes={key: hashlib.sha256(p.read_bytes()).hexdigest() for key, p in inputs.items()},
        raw=raw,
    )


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
        "params": dict(sorted(params.items())),
        "long_prompt": long_prompt,
        "inputs": dict(sorted((input_hashes or {}).items())),
    }
    if prompt_text is not None:
        payload["prompt_text"] = prompt_text
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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
    # 2. Sort by category: the order axis's categories first, then vocabulary order.
    first = next((choice[a.name] for a in spec.axes if a.kind == "order" and a.name in choice), ())
    rank: dict[str, int] = {}
    for category in (*first, *spec.category_order):
        rank.setdefault(category, len(rank))
    terms.sort(key=lambda t: rank[t.category])
    # 3. Parameters and model.
    params = dict(spec.params)
    params.update({a.name: choice[a.name] for a in spec.axes if a.kind == "param" and a.name in choice})
    model = next((choice[a.name] for a in spec.axes if a.kind == "model" and a.name in choice), spec.model)
    subject = next((choice[a.name] for a in spec.axes if a.kind == "subject" and a.name in choice), spec.subjects[0])
    prompt = Prompt(subject, tuple(terms), spec.negative, spec.negative_presets)
    key = variant_key(
        prompt=prompt,
        negative_prompt=spec.negative_prompt,
        model=model,
        task=spec.task,
        params=params,
        long_prompt=spec.long_prompt,
        input_hashes=spec.input_hashes,
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
        inputs=dict(spec.inputs),
    )


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
            yield variant(f"-{_term_spec(term)}", drop=term)
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


def _term_spec(term: Term) -> str:
    return term.text if term.weight == 1.0 else f"{term.text}:{term.weight:g}"


def _show(value: Any) -> str:
    """A value as TOML writes it."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


class _Checker:
    """Reads values out of the parsed TOML, raising ExperimentError that names key, value and rule."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, value: Any, expected: str) -> NoReturn:
        raise ExperimentError(f"{self.source}: {where} = {_show(value)}: expected {expected}")

    def missing(self, where: str, expected: str) -> NoReturn:
        raise ExperimentError(f"{self.source}: missing key {where}: expected {expected}")

    def keys(self, table: Mapping[str, Any], known: Iterable[str], section: str) -> None:
        known = tuple(known)
        for key in table:
            if key not in known:
                place = f" in {section}" if section else ""
                raise ExperimentError(f"{self.source}: unknown key {key!r}{place}; known keys: {', '.join(known)}")

    def not_allowed(self, table: Mapping[str, Any], key: str, needs: str, section: str = "") -> None:
        if key in table:
            raise ExperimentError(f"{self.source}: {self.where(section, key)} = {_show(table[key])}: only allowed with {needs}")

    def short(self, text: str, where: str) -> None:
        """Refuse prompt text longer than any prompt, before a parser spends time on it."""
        if len(text) > MAX_PROMPT_CHARS:
            raise ExperimentError(
                f"{self.source}: {where} = {_show(text[:40])[:-1]}...\" ({len(text):,} characters): "
                f"expected at most {MAX_PROMPT_CHARS:,} characters"
            )

    def where(self, section: str, key: str) -> str:
        return f"{section} {key}" if section else key

    def table(self, raw: Mapping[str, Any], key: str, required: bool = False) -> dict[str, Any]:
        if key not in raw:
            return self.missing(f"[{key}]", f"a [{key}] table") if required else {}
        if not isinstance(raw[key], dict):
            self.fail(key, raw[key], f"a table: write [{key}] on its own line")
        return raw[key]

    def string(
        self,
        table: Mapping[str, Any],
        key: str,
        section: str,
        *,
        required: bool = False,
        nonempty: bool = False,
        expected: str = "a string",
    ) -> Any:
        if key not in table:
            return self.missing(self.where(section, key), expected) if required else None
        value = table[key]
        if not isinstance(value, str) or (nonempty and not value.strip()):
            self.fail(self.where(section, key), value, "a non-empty string" if nonempty else "a string")
        return value.strip()

    def string_list(self, table: Mapping[str, Any], key: str, section: str) -> list[str] | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(self.where(section, key), value, "a list of non-empty strings")
        return [v.strip() for v in value]

    def integer(
        self, table: Mapping[str, Any], key: str, section: str, *, minimum: int, required: bool = False
    ) -> Any:
        if key not in table:
            return self.missing(self.where(section, key), f"an integer >= {minimum}") if required else None
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(self.where(section, key), value, f"an integer >= {minimum}")
        return value

    def choice(self, table: Mapping[str, Any], key: str, choices: tuple[str, ...], section: str, *, default: str) -> str:
        value = table.get(key, default)
        if value not in choices:
            self.fail(self.where(section, key), value, f"one of {', '.join(choices)}")
        return value


def _param_value(check: _Checker, where: str, written: Any, rule: ParamRule) -> Any:
    value = written
    if rule.kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, rule.kind) and not isinstance(value, bool)
    if not ok or not rule.check(value):
        check.fail(where, written, rule.expected)
    return value.strip() if isinstance(value, str) else value


def _seeds(check: _Checker, raw: Mapping[str, Any]) -> tuple[int, ...]:
    value = raw.get("seeds", 1)
    expected = (
        f"a count N from 1 to {MAX_SEEDS:,} (seeds 1..N) or a list of at most {MAX_SEEDS:,} distinct integers "
        f"from 0 to {MAX_SEED}"
    )
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEEDS:
            check.fail("seeds", value, expected)
        return tuple(range(1, value + 1))
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_SEEDS
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in value)
        or len(set(value)) != len(value)
    ):
        long = isinstance(value, list) and len(value) > 20
        shown = f"[{', '.join(map(_show, value[:3]))}, ... ({len(value):,} values)]" if long else _show(value)
        raise ExperimentError(f"{check.source}: seeds = {shown}: expected {expected}")
    return tuple(value)


def _check_limits(
    check: _Checker,
    strategy: str,
    samples: int | None,
    seeds: tuple[int, ...],
    subjects: tuple[str, ...],
    terms: tuple[Term, ...],
    params: Mapping[str, Any],
    axes: tuple[Axis, ...],
) -> None:
    """The cell count, every image size and the longest prompt the sweep can build, all within what renders."""
    # 1. Cells: variants (as the strategy draws them) times seeds.
    if strategy == "ablation":
        changes = sum(len([lv for lv in a.levels if lv is not None]) for a in axes if a.kind != "subject")
        variants = len(subjects) * (1 + len(terms) + changes)
    else:
        variants = samples if samples is not None else math.prod(len(axis.levels) for axis in axes)
    if variants * len(seeds) > MAX_CELLS:
        raise ExperimentError(
            f"{check.source}: {variants:,} variants x {len(seeds):,} seeds = {variants * len(seeds):,} cells: "
            f"at most {MAX_CELLS:,}; sweep fewer axes or levels (strategy = \"random\" with samples = N draws some)"
        )
    # 2. Every width with every height the axes can pair.
    sizes = {name: [a.levels for a in axes if a.name == name] for name in ("width", "height")}
    widths = sizes["width"][0] if sizes["width"] else [params.get("width")]
    heights = sizes["height"][0] if sizes["height"] else [params.get("height")]
    for width in widths:
        for height in heights:
            if width is not None and height is not None:
                try:
                    check_size(width, height)
                except RenderError as exc:
                    raise ExperimentError(f"{check.source}: width = {width}, height = {height}: {exc}") from None
    # 3. The longest prompt: the longest subject, every fixed term, each category axis's longest level.
    longest = max(len(s) for s in subjects) + sum(len(t.text) + 12 for t in terms)
    longest += sum(max(len(lv.text) + 12 if lv else 0 for lv in a.levels) for a in axes if a.kind == "category")
    if longest > MAX_PROMPT_CHARS:
        raise ExperimentError(
            f"{check.source}: the longest prompt the sweep builds is about {longest:,} characters: at most "
            f"{MAX_PROMPT_CHARS:,}; shorten the subject or the terms"
        )


def _subjects(check: _Checker, raw: Mapping[str, Any], prompt: Mapping[str, Any], syntax: str) -> tuple[str, ...]:
    if "subjects" in raw:
        check.not_allowed(prompt, "subject", "no top-level subjects = [...] (choose one of the two)", "[prompt]")
        subjects = check.string_list(raw, "subjects", "")
        if not subjects or len({s.casefold() for s in subjects}) != len(subjects):
            check.fail("subjects", raw["subjects"], "a non-empty list of distinct subjects")
        read = tuple(_read_subject(check, "subjects", subject, syntax) for subject in subjects)
        if len({s.casefold() for s in read}) != len(read):
            check.fail("subjects", raw["subjects"], "a non-empty list of distinct subjects")
        return read
    subject = check.string(prompt, "subject", "[prompt]", nonempty=True)
    if subject is None:
        check.missing("[prompt] subject", 'what to draw, e.g. subject = "a squirrel" (or top-level subjects = [...])')
    return (_read_subject(check, "[prompt] subject", subject, syntax),)


def _read_subject(check: _Checker, where: str, text: str, syntax: str) -> str:
    """The subject's text, read in the file's syntax: a subject carries no weight, so none may be written in it.

    In compel syntax the subject is its text as written (its brackets are literal, as before);
    in A1111 syntax it is the text A1111 reads, its escapes resolved.
    """
    check.short(text, where)
    try:
        parsed = parse_a1111(text) if syntax == "a1111" else parse_compel(compel_prompt(text))
    except PromptSyntaxError as exc:
        check.fail(where, text, f"a subject in {syntax} syntax ({exc})")
    weighted = [piece for term in parsed.terms for piece, weight in term.pieces() if abs(weight - 1.0) > 1e-9]
    if weighted:
        check.fail(
            where,
            text,
            f"a subject without weights ({weighted[0]!r} is weighted in {syntax} syntax); put weighted words in "
            "[prompt] terms or [axes], or escape the brackets to keep them as text",
        )
    subject = text if syntax == "compel" else ", ".join([parsed.subject, *(t.text for t in parsed.terms)][not parsed.subject :])
    _check_prompt_text(check, where, text, Term(subject))
    return subject


def _parse_term(check: _Checker, where: str, spec: Any, category: str) -> Term:
    """``TEXT`` or ``TEXT:WEIGHT`` (the weight is the last ``:number``) in ``category``."""
    expected = 'a term "TEXT" or "TEXT:WEIGHT" with a weight >= 0'
    if not isinstance(spec, str) or not spec.strip():
        check.fail(where, spec, expected)
    check.short(spec, where)
    try:
        text, weight = split_weight(spec.strip(), source=where)
    except PromptSyntaxError:
        check.fail(where, spec, expected)
    bad = sorted({c for c in text if c in FORBIDDEN_TERM_CHARS})
    if bad:
        check.fail(where, spec, f"{expected}; the text may not contain {' '.join(bad)}")
    if weight > MAX_WEIGHT:
        check.fail(where, spec, f"{expected} and at most {MAX_WEIGHT:g} (past that the embedding leaves the encoder's range)")
    term = Term(text, weight, category)
    _check_prompt_text(check, where, spec, term)
    return term


def _check_prompt_text(check: _Checker, where: str, value: Any, term: Term) -> None:
    # compel refuses some texts (a trailing '+' reads as a weight); find out now, not mid-sweep.
    try:
        Prompt("", (term,)).to_compel()
    except PromptSyntaxError as exc:
        check.fail(where, value, f"text compel reads as written ({exc})")


def _category(check: _Checker, where: str, name: str, vocab: Vocabulary) -> str:
    if name not in vocab.categories:
        raise ExperimentError(
            f"{check.source}: {where}: unknown category {name!r}; known categories: {', '.join(vocab.categories)}"
        )
    return name


def _fixed_terms(check: _Checker, prompt: Mapping[str, Any], vocab: Vocabulary) -> tuple[Term, ...]:
    table = prompt.get("terms", {})
    if not isinstance(table, dict):
        check.fail("[prompt] terms", table, 'a table of category = ["term", "term:1.2"], e.g. terms = { medium = ["oil painting"] }')
    terms: list[Term] = []
    for category, specs in table.items():
        where = f"[prompt] terms.{category}"
        _category(check, where, category, vocab)
        for spec in specs if isinstance(specs, list) else [specs]:
            term = _parse_term(check, where, spec, category)
            if any(t.text.casefold() == term.text.casefold() for t in terms):
                check.fail(where, spec, "each fixed term once")
            terms.append(term)
    return tuple(terms)


def _params(check: _Checker, raw: Mapping[str, Any], task: str) -> dict[str, Any]:
    table = check.table(raw, "params")
    check.keys(table, PARAMS, "[params]")
    params = {key: _param_value(check, f"[params] {key}", value, PARAMS[key]) for key, value in table.items()}
    _check_task_params(check, params, task, "[params]")
    return params


def _check_task_params(check: _Checker, params: Iterable[str], task: str, section: str) -> None:
    if task == "txt2img":
        for key in IMAGE_TASK_PARAMS:
            if key in params:
                raise ExperimentError(
                    f'{check.source}: {section} {key}: only read by the image tasks ({", ".join(TASKS[1:])}), '
                    f'not task = "{task}"; remove it'
                )


def _inputs(check: _Checker, raw: Mapping[str, Any], task: str, base_dir: Path) -> dict[str, Path]:
    required, allowed = TASK_INPUTS[task]
    inputs: dict[str, Path] = {}
    for key in ("image", "mask", "depth"):
        if key not in raw:
            if key in required:
                check.missing(key, f'an image file path (task = "{task}" needs one), relative to the experiment file')
            continue
        if key not in allowed:
            check.not_allowed(raw, key, f"task = {' or '.join(t for t, (_, a) in TASK_INPUTS.items() if key in a)}")
        value = check.string(raw, key, "", nonempty=True)
        path = (base_dir / value).resolve()
        if not path.is_file():
            check.fail(key, value, f"an existing image file (looked for {path})")
        inputs[key] = path
    return inputs


def _axes(
    check: _Checker,
    raw: Mapping[str, Any],
    terms: tuple[Term, ...],
    vocab: Vocabulary,
    task: str,
    subjects: tuple[str, ...] | None,
) -> tuple[Axis, ...]:
    table = check.table(raw, "axes")
    known = (*vocab.categories, *PARAMS, "model", "order", "weights")
    check.keys(table, known, "[axes]")
    axes: list[Axis] = [Axis("subject", "subject", subjects)] if subjects else []
    for name, value in table.items():
        where = f"[axes] {name}"
        if name == "weights":
            axes += _weight_axes(check, value, terms)
            continue
        if not isinstance(value, list) or not value:
            check.fail(where, value, "a non-empty list of levels")
        if name == "order":
            axes.append(Axis(name, "order", _order_levels(check, value, vocab, terms, table)))
        elif name in vocab.categories:
            axes.append(Axis(name, "category", _category_levels(check, name, value, terms)))
        else:
            rule = MODEL_RULE if name == "model" else PARAMS[name]
            levels = tuple(_param_value(check, where, level, rule) for level in value)
            if name != "model":
                _check_task_params(check, [name], task, "[axes]")
            axes.append(Axis(name, "model" if name == "model" else "param", levels))
        if len(set(map(_show, axes[-1].levels))) != len(axes[-1].levels):
            check.fail(where, value, "distinct levels")
    return tuple(axes)


def _category_levels(check: _Checker, category: str, value: list[Any], terms: tuple[Term, ...]) -> tuple[Term | None, ...]:
    where = f"[axes] {category}"
    levels: list[Term | None] = []
    fixed = {t.text.casefold() for t in terms}
    for spec in value:
        if spec == ABSENT:
            levels.append(None)
            continue
        term = _parse_term(check, where, spec, category)
        if term.text.casefold() in fixed:
            check.fail(where, spec, "a term that is not also a fixed term in [prompt] terms")
        levels.append(term)
    if len({t.text.casefold() if t else None for t in levels}) != len(levels):
        check.fail(where, value, "each term once")
    return tuple(levels)


def _weight_axes(check: _Checker, value: Any, terms: tuple[Term, ...]) -> list[Axis]:
    if not isinstance(value, dict):
        check.fail("[axes] weights", value, 'a table: [axes.weights] with "fixed term" = [0.8, 1.0, 1.3]')
    axes = []
    fixed = {t.text.casefold(): t for t in terms}
    for text, weights in value.items():
        where = f"[axes.weights] {_show(text)}"
        if text.casefold() not in fixed:
            known = ", ".join(_show(t.text) for t in terms) or "none"
            check.fail(where, weights, f"the weights of a fixed term in [prompt] terms; fixed terms: {known}")
        rule = ParamRule(float, f"a non-empty list of distinct weights from 0 to {MAX_WEIGHT:g}", lambda v: 0 <= v <= MAX_WEIGHT)
        if not isinstance(weights, list) or not weights:
            check.fail(where, weights, rule.expected)
        levels = tuple(_param_value(check, where, w, rule) for w in weights)
        if len(set(levels)) != len(levels):
            check.fail(where, weights, rule.expected)
        term = fixed[text.casefold()].text
        axes.append(Axis(f"weight({term})", "weight", levels, term=term))
    return axes


def _order_levels(
    check: _Checker, value: list[Any], vocab: Vocabulary, terms: tuple[Term, ...], table: Mapping[str, Any]
) -> tuple[tuple[str, ...], ...]:
    used = {t.category for t in terms} | {name for name in table if name in vocab.categories}
    levels = []
    for order in value:
        if not isinstance(order, list) or not order or not all(isinstance(c, str) for c in order) or len(set(order)) != len(order):
            check.fail("[axes] order", order, 'a list of distinct categories, e.g. ["style", "medium"]')
        for category in order:
            _category(check, "[axes] order", category, vocab)
            if category not in used:
                check.fail("[axes] order", order, f"categories that have terms; {category!r} has none")
        levels.append(tuple(order))
    return tuple(levels)
