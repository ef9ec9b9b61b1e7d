"""Candidates: prompts built from the pool (at most one term per group), drawn at random or mutated from a parent.

A candidate is the subject and a tuple of weighted terms. Without ``[search] order = true`` its
terms stand in the pool's group order, so two candidates with the same terms are the same prompt.
Each candidate becomes an experiment ``Variant`` whose axis values name its term in every group
("" where it has none), so Insights reads a search's runs as it reads a random sample of a grid.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from promptlab.experiment import ABSENT, Variant, term_spec, variant_key
from promptlab.prompt import Prompt, Term
from promptlab.search.spec import SearchSpec

#: The axis naming a candidate's term order, where the search moves terms.
ORDER_AXIS = "order"
# How many times a mutation is drawn again when it lands on a candidate already tried.
_RETRIES = 20


@dataclass(frozen=True)
class Candidate:
    """A prompt the search may try: its terms in prompt order, each with its group as category."""

    terms: tuple[Term, ...]

    @property
    def key(self) -> tuple[tuple[str, str, float], ...]:
        return tuple((t.category or "", t.text.casefold(), t.weight) for t in self.terms)

    @property
    def label(self) -> str:
        """``red, large:1.2``, or ``(subject only)``."""
        return ", ".join(term_spec(t) for t in self.terms) or "(subject only)"

    def group_term(self, group: str) -> Term | None:
        return next((t for t in self.terms if t.category == group), None)


class Space:
    """What the search may build: the pool's groups, the weight grid, the most terms, and whether order moves."""

    def __init__(self, spec: SearchSpec) -> None:
        self.spec = spec
        self.groups = [group for group, texts in spec.groups.items() if texts]
        self._rank = {group: index for index, group in enumerate(spec.groups)}
        self._drawn: Counter[tuple[str, str]] = Counter()  # how often each (group, term) was drawn

    def start(self) -> Candidate:
        """The starting prompt: the file's fixed terms."""
        return self.arrange(self.spec.start, keep_order=True)

    def arrange(self, terms: tuple[Term, ...] | list[Term], keep_order: bool = False) -> Candidate:
        """A candidate of ``terms``: in group order unless the search moves terms (or ``keep_order``)."""
        terms = tuple(terms)
        if not (self.spec.order or keep_order):
            terms = tuple(sorted(terms, key=lambda t: self._rank.get(t.category or "", len(self._rank))))
        return Candidate(terms)

    def random(self, rng: random.Random) -> Candidate:
        """A candidate drawn at random: 0..max_terms groups, a term and a weight in each, in a random order."""
        most = min(self.spec.max_terms, len(self.groups))
        chosen = rng.sample(self.groups, rng.randint(0, most))
        terms = [self._term(group, self._pick(group, rng), rng.choice(self.spec.weights)) for group in chosen]
        return self.arrange(terms)

    def mutate(self, parent: Candidate, rng: random.Random, tried: set[tuple[tuple[str, str, float], ...]]) -> Candidate | None:
        """A child of ``parent`` one or two steps away (add, drop or swap a term, change a weight, move a term)
        that is not in ``tried``; None when every draw lands on a tried one."""
        for _ in range(_RETRIES):
            child = self._step(parent, rng)
            if rng.random() < 0.3:
                child = self._step(child, rng)
            if child.key not in tried:
                return child
        return None

    def _step(self, parent: Candidate, rng: random.Random) -> Candidate:
        terms = list(parent.terms)
        used = {t.category for t in terms}
        free = [g for g in self.groups if g not in used]
        swappable = [i for i, t in enumerate(terms) if len(self.spec.groups.get(t.category or "", ())) > 1]
        moves = []
        if free and len(terms) < self.spec.max_terms:
            moves.append("add")
        if terms:
            moves.append("drop")
        if swappable:
            moves.append("swap")
        if terms and len(self.spec.weights) > 1:
            moves.append("weight")
        if self.spec.order and len(terms) > 1:
            moves.append("move")
        if not moves:
            return parent
        move = rng.choice(moves)
        if move == "add":
            group = rng.choice(free)
            weight = 1.0 if 1.0 in self.spec.weights else rng.choice(self.spec.weights)
            terms.insert(rng.randint(0, len(terms)), self._term(group, self._pick(group, rng), weight))
        elif move == "drop":
            terms.pop(rng.randrange(len(terms)))
        elif move == "swap":
            index = rng.choice(swappable)
            old = terms[index]
            terms[index] = self._term(old.category or "", self._pick(old.category or "", rng, besides=old.text), old.weight)
        elif move == "weight":
            index = rng.randrange(len(terms))
            grid = self.spec.weights
            at = grid.index(terms[index].weight) if terms[index].weight in grid else 0
            step = rng.choice([s for s in (-1, 1) if 0 <= at + s < len(grid)])
            terms[index] = Term(terms[index].text, grid[at + step], terms[index].category)
        else:
            term = terms.pop(rng.randrange(len(terms)))
            terms.insert(rng.randint(0, len(terms)), term)
        return self.arrange(terms)

    def _pick(self, group: str, rng: random.Random, besides: str | None = None) -> str:
        """A term of ``group`` (other than ``besides``) among those drawn least so far: each of a group's terms
        is tried once before any is tried again, so a colour of seven is not left to chance in a pool of hundreds."""
        texts = [text for text in self.spec.groups[group] if besides is None or text.casefold() != besides.casefold()]
        fewest = min(self._drawn[(group, text)] for text in texts)
        text = rng.choice([text for text in texts if self._drawn[(group, text)] == fewest])
        self._drawn[(group, text)] += 1
        return text

    def _term(self, group: str, text: str, weight: float) -> Term:
        return Term(text, weight, group)

    def variant(self, candidate: Candidate) -> Variant:
        """The experiment variant that renders ``candidate``: the file's subject, negative prompt, model and params."""
        experiment = self.spec.experiment
        prompt = Prompt(experiment.subjects[0], candidate.terms, experiment.negative, experiment.negative_presets)
        loras = experiment.loras + experiment.subject_loras.get(experiment.subjects[0], ())
        key = variant_key(
            prompt=prompt,
            negative_prompt=experiment.negative_prompt,
            model=experiment.model,
            task=experiment.task,
            params=experiment.params,
            long_prompt=experiment.long_prompt,
            input_hashes=experiment.input_hashes,
            loras=loras,
        )
        axis_values: dict[str, object] = {}
        for group in self.spec.groups:
            term = candidate.group_term(group)
            axis_values[group] = ABSENT if term is None else term_spec(term)
        if self.spec.order:
            axis_values[ORDER_AXIS] = " > ".join(t.category or "" for t in candidate.terms)
        return Variant(
            key=key,
            label=candidate.label,
            axis_values=axis_values,
            prompt=prompt,
            negative_prompt=experiment.negative_prompt,
            intent=self.spec.intent,
            model=experiment.model,
            task=experiment.task,
            params=dict(experiment.params),
            long_prompt=experiment.long_prompt,
            inputs=dict(experiment.inputs),
            loras=loras,
        )
