"""Reading an experiment file: TOML text in, a validated ``ExperimentSpec`` out, or an ExperimentError
that names the key, the value and the rule (see the package docstring for the keys)."""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from promptlab.compose import split_weight
from promptlab.errors import ExperimentError, PromptSyntaxError, RenderError, VocabError
from promptlab.experiment.check import Checker
from promptlab.experiment.controlnet import CONTROL_AXES, check_controlnet, control_image_axis, read_controlnet
from promptlab.experiment.embeddings import (
    EMBEDDING_AXES,
    check_tokens_are_not_terms,
    check_tokens_used,
    embedding_axis,
    fixed_embeddings,
)
from promptlab.experiment.loras import LORA_AXES, check_lora_repeats, fixed_loras, lora_axis, read_lora_dir, subject_lora_tags
from promptlab.experiment.spec import (
    ABSENT,
    IMAGE_TASK_PARAMS,
    MAX_CELLS,
    MAX_SEEDS,
    MODEL_RULE,
    PARAMS,
    PROMPT_KEYS,
    PROMPT_SYNTAXES,
    STRATEGIES,
    TASK_INPUTS,
    TOP_KEYS,
    Axis,
    ExperimentSpec,
    ParamRule,
    default_scorer,
    show_value,
)
from promptlab.prompt import Prompt, Term, compel_prompt, parse_a1111, parse_compel
from promptlab.render.params import (
    LONG_PROMPT_POLICIES,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_WEIGHT,
    TASKS,
    check_prompt,
    check_size,
)
from promptlab.vocab import FORBIDDEN_TERM_CHARS, Vocabulary, load_vocab

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


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
    check = Checker(name)
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
    lora_dir = read_lora_dir(check, raw, base_dir)
    loras = fixed_loras(check, raw, lora_dir, base_dir)
    read_raw, read_prompt, tagged = _without_lora_tags(check, raw, prompt, syntax, lora_dir, base_dir)
    subjects = _subjects(check, read_raw, read_prompt, syntax)
    intent = check.string(prompt, "intent", "[prompt]")
    if intent is not None and "subjects" in raw and len(subjects) > 1:
        raise ExperimentError(
            f"{name}: [prompt] intent = {show_value(intent)}: expected no intent with several subjects; "
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

    # 4. Parameters, input images, embeddings, ControlNet and axes.
    params = _params(check, raw, task)
    inputs = _inputs(check, raw, task, base_dir)
    embeddings = fixed_embeddings(check, raw, base_dir)
    controlnet = read_controlnet(check, raw, base_dir)
    control = {"embeddings": embeddings, "controlnet": controlnet, "base_dir": base_dir}
    axes = _axes(check, raw, terms, vocab, task, subjects if "subjects" in raw else None, (loras, lora_dir, base_dir), control)
    check_lora_repeats(check, loras, tagged, axes)
    controlnet = control["controlnet"]
    check_controlnet(check, controlnet, params, axes)
    check_tokens_used(check, embeddings, _prompt_texts(subjects, terms, axes, negative_prompt))
    swept = [level for axis in axes if axis.kind == "embedding" for level in axis.levels if level is not None]
    check_tokens_are_not_terms(check, (*embeddings, *swept), vocab)
    category_order = tuple(vocab.categories)
    if samples is not None:
        total = math.prod(len(axis.levels) for axis in axes)
        if samples > total:
            check.fail("samples", samples, f"at most {total}, the number of combinations of the axes")

    scorers = _scorers(check, raw)

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
        scorer=scorers[0] if scorers else default_scorer(_models(model, axes)),
        more_scorers=tuple(scorers[1:]),
        batch_size=check.integer(raw, "batch_size", "", minimum=1) or 1,
        long_prompt=check.choice(raw, "long_prompt", tuple(LONG_PROMPT_POLICIES), "", default="truncate"),
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
        loras=loras,
        subject_loras={subject: found for subject, found in zip(subjects, tagged) if found},
        lora_dir=lora_dir,
        embeddings=embeddings,
        controlnet=controlnet,
    )


def _scorers(check: Checker, raw: Mapping[str, Any]) -> list[str]:
    """The file's scorers, the ranking one first: ``scorer = "NAME"`` or ``scorers = ["NAME", ...]``; [] for none."""
    if "scorer" in raw and "scorers" in raw:
        check.fail("scorers", raw["scorers"], f"either scorer or scorers, not both (scorer = {show_value(raw['scorer'])})")
    if "scorers" not in raw:
        one = check.string(raw, "scorer", "", nonempty=True)
        return [one] if one else []
    scorers = check.string_list(raw, "scorers", "") or check.fail("scorers", raw["scorers"], "a non-empty list of scorer names")
    twice = sorted({name for name in scorers if scorers.count(name) > 1})
    if twice:
        check.fail("scorers", raw["scorers"], f"each scorer once ({', '.join(twice)} given twice)")
    return scorers


def _prompt_texts(subjects: Sequence[str], terms: Sequence[Term], axes: Sequence[Axis], negative: str) -> list[str]:
    """Every text a prompt of the experiment is made of: where a fixed embedding's token must appear."""
    swept = [level.text for axis in axes if axis.kind == "category" for level in axis.levels if level is not None]
    subject_levels = [str(level) for axis in axes if axis.kind == "subject" for level in axis.levels]
    return [*subjects, *subject_levels, *(t.text for t in terms), *swept, negative]


def _param_value(check: Checker, where: str, written: Any, rule: ParamRule) -> Any:
    value = written
    if rule.kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, rule.kind) and not isinstance(value, bool)
    if not ok or not rule.check(value):
        check.fail(where, written, rule.expected)
    return value.strip() if isinstance(value, str) else value


def _seeds(check: Checker, raw: Mapping[str, Any]) -> tuple[int, ...]:
    value = raw.get("seeds", 1)
    expected = (
        f"a count N from 1 to {MAX_SEEDS:,} (seeds 1..N) or a list of at most {MAX_SEEDS:,} distinct integers "
        f"from 0 to 2**63 - 1 ({MAX_SEED})"
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
        shown = f"[{', '.join(map(show_value, value[:3]))}, ... ({len(value):,} values)]" if long else show_value(value)
        raise ExperimentError(f"{check.source}: seeds = {shown}: expected {expected}")
    return tuple(value)


def _check_limits(
    check: Checker,
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


def _without_lora_tags(
    check: Checker, raw: Mapping[str, Any], prompt: Mapping[str, Any], syntax: str, lora_dir: Path | None, base_dir: Path
) -> tuple[Mapping[str, Any], Mapping[str, Any], list[tuple[Any, ...]]]:
    """The file's subjects without their ``<lora:name:w>`` tags (A1111 syntax only; A1111 takes them out before
    encoding), as copies of ``raw`` and ``[prompt]`` (``raw`` is stored as written), and each subject's LoRAs."""
    if syntax != "a1111":
        return raw, prompt, []
    if isinstance(raw.get("subjects"), list) and all(isinstance(s, str) for s in raw["subjects"]):
        read = [subject_lora_tags(check, "subjects", s, lora_dir, base_dir) for s in raw["subjects"]]
        return {**raw, "subjects": [text for text, _ in read]}, prompt, [found for _, found in read]
    if isinstance(prompt.get("subject"), str) and "subjects" not in raw:
        text, found = subject_lora_tags(check, "[prompt] subject", prompt["subject"], lora_dir, base_dir)
        return raw, {**prompt, "subject": text}, [found]
    return raw, prompt, []


def _subjects(check: Checker, raw: Mapping[str, Any], prompt: Mapping[str, Any], syntax: str) -> tuple[str, ...]:
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


def _read_subject(check: Checker, where: str, text: str, syntax: str) -> str:
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


def _parse_term(check: Checker, where: str, spec: Any, category: str) -> Term:
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


def _check_prompt_text(check: Checker, where: str, value: Any, term: Term) -> None:
    # compel refuses some texts (a trailing '+' reads as a weight); find out now, not mid-sweep.
    try:
        Prompt("", (term,)).to_compel()
    except PromptSyntaxError as exc:
        check.fail(where, value, f"text compel reads as written ({exc})")


def _category(check: Checker, where: str, name: str, vocab: Vocabulary) -> str:
    if name not in vocab.categories:
        raise ExperimentError(
            f"{check.source}: {where}: unknown category {name!r}; known categories: {', '.join(vocab.categories)}"
        )
    return name


def _fixed_terms(check: Checker, prompt: Mapping[str, Any], vocab: Vocabulary) -> tuple[Term, ...]:
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


def _params(check: Checker, raw: Mapping[str, Any], task: str) -> dict[str, Any]:
    table = check.table(raw, "params")
    check.keys(table, PARAMS, "[params]")
    params = {key: _param_value(check, f"[params] {key}", value, PARAMS[key]) for key, value in table.items()}
    _check_task_params(check, params, task, "[params]")
    return params


def _check_task_params(check: Checker, params: Iterable[str], task: str, section: str) -> None:
    if task == "txt2img":
        for key in IMAGE_TASK_PARAMS:
            if key in params:
                raise ExperimentError(
                    f'{check.source}: {section} {key}: only read by the image tasks ({", ".join(TASKS[1:])}), '
                    f'not task = "{task}"; remove it'
                )


def _inputs(check: Checker, raw: Mapping[str, Any], task: str, base_dir: Path) -> dict[str, Path]:
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
    check: Checker,
    raw: Mapping[str, Any],
    terms: tuple[Term, ...],
    vocab: Vocabulary,
    task: str,
    subjects: tuple[str, ...] | None,
    lora_context: tuple[tuple[Any, ...], Path | None, Path] = ((), None, Path()),
    control: dict[str, Any] | None = None,
) -> tuple[Axis, ...]:
    """The axes; ``control`` holds the fixed embeddings, the ``[controlnet]`` block (replaced by the one with
    the control_image axis's images) and the experiment's folder."""
    control = control if control is not None else {"embeddings": (), "controlnet": None, "base_dir": Path()}
    table = check.table(raw, "axes")
    known = (*vocab.categories, *PARAMS, "model", "order", "weights", *LORA_AXES, *EMBEDDING_AXES, *CONTROL_AXES)
    check.keys(table, known, "[axes]")
    axes: list[Axis] = [Axis("subject", "subject", subjects)] if subjects else []
    for name, value in table.items():
        where = f"[axes] {name}"
        if name == "weights":
            axes += _weight_axes(check, value, terms)
            continue
        if not isinstance(value, list) or not value:
            check.fail(where, value, "a non-empty list of levels")
        if name in LORA_AXES:
            axes.append(lora_axis(check, name, value, *lora_context))
        elif name in EMBEDDING_AXES:
            axes.append(embedding_axis(check, value, control["embeddings"], control["base_dir"]))
        elif name in CONTROL_AXES:
            axis, control["controlnet"] = control_image_axis(check, value, control["controlnet"], control["base_dir"])
            axes.append(axis)
        elif name == "order":
            axes.append(Axis(name, "order", _order_levels(check, value, vocab, terms, table)))
        elif name in vocab.categories:
            axes.append(Axis(name, "category", _category_levels(check, name, value, terms)))
        else:
            rule = MODEL_RULE if name == "model" else PARAMS[name]
            levels = tuple(_param_value(check, where, level, rule) for level in value)
            if name != "model":
                _check_task_params(check, [name], task, "[axes]")
            axes.append(Axis(name, "model" if name == "model" else "param", levels))
        if len(set(map(show_value, axes[-1].levels))) != len(axes[-1].levels):
            check.fail(where, value, "distinct levels")
    return tuple(axes)


def _category_levels(check: Checker, category: str, value: list[Any], terms: tuple[Term, ...]) -> tuple[Term | None, ...]:
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


def _models(model: str, axes: Sequence[Axis]) -> list[str]:
    swept = [axis for axis in axes if axis.name == "model"]
    return [str(level) for level in swept[0].levels] if swept else [model]


def _weight_axes(check: Checker, value: Any, terms: tuple[Term, ...]) -> list[Axis]:
    if not isinstance(value, dict):
        check.fail("[axes] weights", value, 'a table: [axes.weights] with "fixed term" = [0.8, 1.0, 1.3]')
    axes = []
    fixed = {t.text.casefold(): t for t in terms}
    for text, weights in value.items():
        where = f"[axes.weights] {show_value(text)}"
        if text.casefold() not in fixed:
            known = ", ".join(show_value(t.text) for t in terms) or "none"
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
    check: Checker, value: list[Any], vocab: Vocabulary, terms: tuple[Term, ...], table: Mapping[str, Any]
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


def read_seeds(text: str, source: str = "<seeds>") -> int | list[int]:
    """Seeds as a person types them, as the ``seeds`` value of an experiment file, checked by its rules.

    A single number is a count N (seeds 1..N); numbers separated by commas are the seeds themselves.

    >>> read_seeds("4"), read_seeds("7, 8, 9"), read_seeds("7,")
    (4, [7, 8, 9], [7])
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise ExperimentError(
            f"{source}: seeds = {show_value(text)}: expected a count N (seeds 1..N) or whole numbers separated "
            "by commas, e.g. 1, 2, 3"
        ) from None
    value: int | list[int] = numbers[0] if len(numbers) == 1 and "," not in text else numbers
    _seeds(Checker(source), {"seeds": value})
    return value
