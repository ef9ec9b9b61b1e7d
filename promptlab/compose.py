"""Compose a prompt from a subject, vocabulary terms and negative presets, and lint it.

This is what ``promptlab prompt build`` and the dashboard's Build page call:

    >>> built = compose("fat cat lies on the couch", ["medium=oil painting:1.21"])
    >>> built.text
    'fat cat lies on the couch, (oil painting)++'
    >>> built.token_count.total
    9
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from promptlab.errors import PromptSyntaxError
from promptlab.prompt import Prompt, Term, convert
from promptlab.tokens import CLIP_WINDOW, TokenCount, count_tokens
from promptlab.vocab import Vocabulary, load_vocab

#: Weights outside this range rarely help and often wreck an image.
SENSIBLE_WEIGHTS = (0.0, 2.0)


@dataclass(frozen=True)
class ComposedPrompt:
    """A built prompt, its text in the chosen syntax, its token count and its lint warnings."""

    prompt: Prompt
    syntax: str
    text: str
    negative_prompt: str
    token_count: TokenCount
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def dropped_terms(self) -> tuple[str, ...]:
        return tuple(t.text for t in self.token_count.dropped_terms)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of ``promptlab prompt build --format json``."""
        return {
            "prompt": self.text,
            "negative_prompt": self.negative_prompt,
            "token_count": self.token_count.total,
            "window": self.token_count.window,
            "dropped_terms": list(self.dropped_terms),
            "warnings": list(self.warnings),
            "syntax": self.syntax,
            "terms": [
                {
                    "category": span.category,
                    "text": span.text,
                    "weight": term.weight,
                    "tokens": span.count,
                    "past_window": span.past_window(self.token_count.window),
                }
                for term, span in zip(self.prompt.terms, self.token_count.terms)
            ],
        }


def parse_term_option(spec: str, vocab: Vocabulary) -> Term:
    """Read ``CATEGORY=TEXT[:WEIGHT]`` (the CLI's ``--term``), checking the category exists."""
    category, sep, rest = spec.partition("=")
    if not sep or not category.strip() or not rest.strip():
        raise PromptSyntaxError(f"--term {spec!r}: expected CATEGORY=TEXT[:WEIGHT], e.g. style=pop-art:1.2")
    category = vocab.category(category.strip()).name
    text, weight = split_weight(rest.strip(), source=f"--term {spec!r}")
    return Term(text, weight, category)


def split_weight(spec: str, *, source: str) -> tuple[str, float]:
    """Split ``TEXT[:WEIGHT]`` on its last colon when what follows is a number."""
    text, sep, tail = spec.rpartition(":")
    if not sep:
        return spec.strip(), 1.0
    try:
        weight = float(tail)
    except ValueError:
        return spec.strip(), 1.0
    if not math.isfinite(weight) or weight < 0:
        raise PromptSyntaxError(f"{source}: weight {tail.strip()!r} must be a number >= 0")
    if not text.strip():
        raise PromptSyntaxError(f"{source}: the term text before ':{tail}' is empty")
    return text.strip(), weight


def lint(prompt: Prompt, count: TokenCount) -> tuple[str, ...]:
    """Warnings a careful prompt writer wants: text CLIP never reads, duplicates, odd weights."""
    warnings: list[str] = []
    if not prompt.subject.strip():
        warnings.append("empty subject: the prompt says nothing about what to draw")
    if count.dropped_terms:
        names = ", ".join(
            f"{t.text!r} ({t.past_window(count.window)})" for t in count.dropped_terms
        )
        warnings.append(
            f"{count.total} tokens is past CLIP's {count.window}-token window; "
            f"past it: {names}"
        )
    seen: dict[str, int] = {}
    for term in prompt.terms:
        key = term.text.strip().lower()
        seen[key] = seen.get(key, 0) + 1
    for text, times in seen.items():
        if times > 1:
            warnings.append(f"duplicate term {text!r} appears {times} times")
    low, high = SENSIBLE_WEIGHTS
    for term in prompt.terms:
        if not low <= term.weight <= high:
            warnings.append(f"term {term.text!r} has weight {term.weight:g}, outside {low:g}..{high:g}")
    return tuple(warnings)


def compose(
    subject: str,
    terms: Sequence[str | Term] = (),
    *,
    negative: str = "",
    negative_presets: Sequence[str] = (),
    syntax: str = "compel",
    vocab: Vocabulary | None = None,
    window: int = CLIP_WINDOW,
) -> ComposedPrompt:
    """Build a prompt from a subject, terms (``Term`` or ``CATEGORY=TEXT[:WEIGHT]``) and negatives.

    Terms keep the order given: earlier words weigh more, so order is the user's choice.
    """
    vocab = vocab or load_vocab()
    parsed = tuple(t if isinstance(t, Term) else parse_term_option(t, vocab) for t in terms)
    for preset in negative_presets:
        vocab.negative_preset(preset)
    prompt = Prompt(subject.strip(), parsed, negative.strip(), tuple(negative_presets))
    count = count_tokens(prompt, window)
    # The negative prompt (compel text, like the presets) in the syntax asked for, as the prompt is.
    negative_text = vocab.negative_text(prompt)
    return ComposedPrompt(
        prompt=prompt,
        syntax=syntax,
        text=prompt.render(syntax),
        negative_prompt=convert(negative_text, "compel", syntax) if negative_text.strip() else "",
        token_count=count,
        warnings=lint(prompt, count),
    )
