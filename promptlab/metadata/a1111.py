"""A1111's infotext (the ``parameters`` text): written as ``create_infotext`` writes it, read as
``parse_generation_parameters`` reads it, its generation line in linear time.
"""

from __future__ import annotations

import json
import re
from typing import Any

from promptlab.errors import ExportError, ImportMetadataError
from promptlab.metadata.parameters import GenerationParameters

# A1111 infotext_utils.re_param: "key: value" pairs, a value either JSON-quoted or running to the next comma.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
# The pieces ``a1111_pairs`` reads A1111's generation line with, each in linear time.
_RE_KEY_RUN = re.compile(r"[\w \-/]+")
_RE_WORD_CHAR = re.compile(r"\w")
_RE_SPACE = re.compile(r"\s*")
_RE_BACKSLASHES = re.compile(r"\\*")
_RE_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_KEY = re.compile(r"\w[\w \-/]+")
_NEGATIVE_PREFIX = "Negative prompt:"
# The key promptlab adds, set to "compel", when its prompts have no A1111 form and go in as rendered.
A1111_PROMPT_SYNTAX_KEY = "Prompt syntax"

# processing.create_infotext's key order; other keys follow "Tiling" as A1111's extra_generation_params do.
_A1111_KEY_ORDER = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Image CFG scale", "Seed", "Face restoration",
    "Size", "Model hash", "Model", "FP8 weight", "Cache FP16 weight for LoRA", "VAE hash", "VAE",
    "Variation seed", "Variation seed strength", "Seed resize from", "Denoising strength",
    "Conditional mask weight", "Clip skip", "ENSD", "Token merging ratio", "Token merging ratio hr",
    "Init image hash", "RNG", "Tiling",
)
_A1111_TRAILING_KEYS = ("Version", "User")
_A1111_TYPED_KEYS = {
    "Steps": "steps",
    "Sampler": "sampler",
    "Schedule type": "scheduler",
    "CFG scale": "cfg_scale",
    "Seed": "seed",
    "Size": "width and height",
    "Model hash": "model_hash",
    "Model": "model",
    "Denoising strength": "denoising_strength",
    "Clip skip": "clip_skip",
}


def format_a1111_parameters(params: GenerationParameters) -> str:
    """A1111's infotext for ``params``, as ``processing.create_infotext`` writes it.

    Keys come in create_infotext's order (``extra`` keys A1111 knows in their place, others after
    ``Tiling``, ``Version`` and ``User`` last); values are quoted as ``infotext_utils.quote`` does,
    plus the few its reader would change: empty, padded or starting with ``"``. ``clip_skip`` is
    written whenever set (A1111 leaves out its default 1; readers take either the same way).

    Raises ``ExportError`` where the text would not read back as written: an ``extra`` key that
    duplicates a typed field or that A1111's parser cannot match, a prompt line starting with
    ``Negative prompt:``, fewer than three ``key: value`` pairs (A1111 then reads the line as prompt).
    """
    _check_prompt_lines(params)
    values = _a1111_values(params)
    if len(values) < 3:
        raise ExportError(
            f"A1111 parameters need at least 3 'key: value' pairs (readers take a shorter last line "
            f"for part of the prompt); got {list(values) or 'none'}: set steps, sampler and cfg_scale"
        )
    generation_line = ", ".join(f"{key}: {_quote(value)}" for key, value in values.items())
    negative = f"\n{_NEGATIVE_PREFIX} {params.negative_prompt}" if params.negative_prompt else ""
    return f"{params.prompt}{negative}\n{generation_line}".strip()


def parse_a1111_parameters(text: str) -> GenerationParameters:
    """Read an A1111 infotext the way A1111's ``parse_generation_parameters`` does.

    The last line holds the ``key: value`` pairs; lines before it are the prompt until one starts
    with ``Negative prompt:``, the rest the negative prompt. ``Size: WxH`` gives width and height;
    keys without a field go to ``extra`` in order, values unquoted. Unlike A1111, which takes text
    without a generation line for a bare prompt, this raises ``ImportMetadataError``: A1111 always
    writes that line, so its absence means the text is not an infotext.
    """
    *lines, last_line = text.strip().split("\n")
    pairs = a1111_pairs(last_line)
    if len(pairs) < 3:
        shown = last_line if len(last_line) <= 80 else last_line[:77] + "..."
        raise ImportMetadataError(
            f"A1111 parameters: last line {shown!r} is not a generation line "
            f"(A1111 ends its text with 'Steps: ..., Sampler: ..., CFG scale: ...')"
        )
    prompt, negative_prompt = _split_prompts(lines)
    values = {key: _unquote(value) for key, value in pairs}
    return _params_from_a1111_values(prompt, negative_prompt, values)


def a1111_pairs(line: str) -> list[tuple[str, str]]:
    r"""``RE_PARAM.findall(line)`` (A1111's own ``re_param``), in time linear in the line's length.

    The regex retries at every position of a long run of word characters without a colon, so
    A1111's reader takes quadratic time on a long last line (32,000 characters: 5 s). The same
    pairs come from the runs themselves: a key is a run of ``[\w \-/]`` followed by ``:``, from the
    first word character the scan reaches in it, if two or more characters remain; its value is a
    quoted string followed by ``,`` or the end, else the text up to the next ``,``.
    """
    pairs: list[tuple[str, str]] = []
    closing = _ClosingQuotes(line)
    scan = 0
    for run in _RE_KEY_RUN.finditer(line):
        start, colon = run.span()
        if colon <= scan or line[colon : colon + 1] != ":":
            continue
        first = _RE_WORD_CHAR.search(line, max(start, scan), colon)
        if first is None or colon - first.start() < 2:
            continue
        value_start = _RE_SPACE.match(line, colon + 1).end()  # type: ignore[union-attr]
        end = closing.after(value_start) if line[value_start : value_start + 1] == '"' else None
        if end is not None and (end == len(line) or line[end] == ","):
            value = line[value_start:end]
        else:
            comma = line.find(",", value_start)
            end = len(line) if comma < 0 else comma
            value = line[value_start:end]
        pairs.append((line[first.start() : colon], value))
        scan = end + 1 if end < len(line) else end
    return pairs


class _ClosingQuotes:
    """Where ``"(?:\\.|[^\\"])+"`` opened at a quote ends, found by bisection over the line's quotes."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.quotes: list[int] = []  # quotes not escaped by the backslashes before them
        backslashes = 0
        for match in re.finditer(r'\\+|"', line):
            if match.group() == '"':
                if backslashes % 2 == 0:
                    self.quotes.append(match.start())
                backslashes = 0
            else:
                backslashes = len(match.group()) if match.end() < len(line) and line[match.end()] == '"' else 0

    def after(self, opening: int) -> int | None:
        """The index just past the closing quote of a string opened at ``opening``; None where the regex finds none."""
        import bisect

        line = self.line
        body = opening + 1
        # Backslashes right after the opening quote pair up from there, whatever came before it.
        run = _RE_BACKSLASHES.match(line, body).end() - body  # type: ignore[union-attr]
        first = body + run
        if first < len(line) and line[first] == '"':
            if run == 0:
                return None  # "" holds nothing: the regex needs one character at least
            if run % 2 == 0:
                return first + 1
            first += 1  # an escaped quote
        elif run % 2 == 1:
            first += 1  # the odd backslash escapes the character after it
        index = bisect.bisect_left(self.quotes, max(first, body + 1))
        return self.quotes[index] + 1 if index < len(self.quotes) else None


def _check_prompt_lines(params: GenerationParameters) -> None:
    for name, text in (("prompt", params.prompt), ("negative_prompt", params.negative_prompt)):
        for line in text.split("\n"):
            if line.strip().startswith(_NEGATIVE_PREFIX):
                raise ExportError(
                    f"{name} has a line starting with {_NEGATIVE_PREFIX!r} ({line.strip()[:60]!r}); "
                    f"A1111 readers would split the prompt there: reword that line"
                )


def _a1111_values(params: GenerationParameters) -> dict[str, str]:
    """The generation line's keys and unquoted values, in A1111's order."""
    if (params.width is None) != (params.height is None):
        raise ExportError(
            f"width={params.width}, height={params.height}: A1111's 'Size' needs both or neither"
        )
    size = f"{params.width}x{params.height}" if params.width is not None else None
    typed: dict[str, object] = {
        "Steps": params.steps,
        "Sampler": params.sampler,
        "Schedule type": params.scheduler,
        "CFG scale": params.cfg_scale,
        "Seed": params.seed,
        "Size": size,
        "Model hash": params.model_hash,
        "Model": params.model,
        "Denoising strength": params.denoising_strength,
        "Clip skip": params.clip_skip,
    }
    for key, value in params.extra.items():
        if key in _A1111_TYPED_KEYS:
            raise ExportError(
                f"extra key {key!r} duplicates the field {_A1111_TYPED_KEYS[key]}: set that field instead"
            )
        if not _RE_KEY.fullmatch(key):
            raise ExportError(
                f"extra key {key!r} cannot be read back by A1111: a key is a letter, digit or '_' "
                f"followed by at least one of those, spaces, '-' or '/'"
            )
        if not isinstance(value, str):
            raise ExportError(f"extra[{key!r}] = {value!r}: extra values must be strings")

    values: dict[str, str] = {}
    for key in _A1111_KEY_ORDER:
        value = typed[key] if key in typed else params.extra.get(key)
        if value is not None:
            values[key] = _format_value(value)
    for key, value in params.extra.items():
        if key not in values and key not in _A1111_TRAILING_KEYS:
            values[key] = value
    for key in _A1111_TRAILING_KEYS:
        if key in params.extra:
            values[key] = params.extra[key]
    return values


def _format_value(value: object) -> str:
    # A1111's UI hands whole-number floats over as ints ("CFG scale: 7"); repr keeps other floats exact.
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _quote(value: str) -> str:
    """A1111's ``infotext_utils.quote``, also quoting values its reader would otherwise unquote or trim."""
    if any(char in value for char in ",\n:") or value.startswith('"') or value != value.strip() or not value:
        return json.dumps(value, ensure_ascii=False)
    return value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value
    return value


def _split_prompts(lines: list[str]) -> tuple[str, str]:
    prompt: list[str] = []
    negative: list[str] = []
    done_with_prompt = False
    for raw_line in lines:
        line = raw_line.strip()
        if line.startswith(_NEGATIVE_PREFIX):
            done_with_prompt = True
            line = line[len(_NEGATIVE_PREFIX) :].strip()
        target = negative if done_with_prompt else prompt
        # A1111 drops empty lines only before the first non-empty one
        if target or line:
            target.append(line)
    return "\n".join(prompt), "\n".join(negative)


def _params_from_a1111_values(
    prompt: str, negative_prompt: str, values: dict[str, str]
) -> GenerationParameters:
    def number(key: str, kind: type[int] | type[float]) -> Any:
        text = values.pop(key, None)
        if text is None:
            return None
        try:
            return kind(text)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise ImportMetadataError(f"A1111 parameters: '{key}: {text}' is not {expected}") from None

    width = height = None
    size = values.pop("Size", None)
    if size is not None:
        match = _RE_IMAGE_SIZE.match(size)
        if match is None:
            raise ImportMetadataError(f"A1111 parameters: 'Size: {size}' is not WIDTHxHEIGHT, e.g. 512x768")
        width, height = int(match.group(1)), int(match.group(2))
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=number("Steps", int),
        sampler=values.pop("Sampler", None),
        scheduler=values.pop("Schedule type", None),
        cfg_scale=number("CFG scale", float),
        seed=number("Seed", int),
        width=width,
        height=height,
        model=values.pop("Model", None),
        model_hash=values.pop("Model hash", None),
        denoising_strength=number("Denoising strength", float),
        clip_skip=number("Clip skip", int),
        extra=values,
        source="a1111",
    )
