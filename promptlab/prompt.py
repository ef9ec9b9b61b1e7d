"""The prompt model: a subject, an ordered list of weighted terms, and a negative prompt.

Pure Python: this module never imports torch.

    >>> p = Prompt("fat cat lies on the couch", [Term("oil painting", 1.21, "medium")])
    >>> p.to_compel()
    'fat cat lies on the couch, (oil painting)++'
    >>> p.to_a1111()
    'fat cat lies on the couch, (oil painting:1.21)'
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Term:
    """One prompt term: its text, its weight (1.0 = neutral) and the vocabulary category it came from."""

    text: str
    weight: float = 1.0
    category: str | None = None


@dataclass(frozen=True)
class Prompt:
    """A subject, terms in prompt order (earlier weighs more), and a negative prompt.

    ``negative`` is free text; ``negative_presets`` names presets from the vocabulary's
    negative presets, expanded by ``Vocabulary.negative_text``.
    """

    subject: str
    terms: tuple[Term, ...] = field(default_factory=tuple)
    negative: str = ""
    negative_presets: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple(self.terms))
        object.__setattr__(self, "negative_presets", tuple(self.negative_presets))
