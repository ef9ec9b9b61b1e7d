"""Truth in the micro-world: does a search's winner show the intent, read off its pixels by the judge?

The micro-world's judge (``promptlab.micro.world.judge``) reads a picture's shape, colour,
background, size and position from its pixels alone; a picture "reads as the intent" when it
reads every one of those the intent names. ``search_truth`` measures that on the winner's
confirmation images (fresh seeds, never used to choose it), whatever scorer chose it, and
names the known-null words (artists, sites, resolution terms: ``promptlab.micro.data``) the
winner holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from promptlab.micro.data import null_words
from promptlab.micro.world import caption_attributes, judge
from promptlab.search.result import SearchResult
from promptlab.store import StoreReader

#: The attributes the judge reads off the pixels (a light term is not judged).
JUDGED: tuple[str, ...] = ("shape", "color", "background", "size", "position")


@dataclass(frozen=True)
class SearchTruth:
    """How often the judge reads the intent in the winner's confirmation images, and the null words it holds."""

    read: int
    images: int
    null_terms: tuple[str, ...]

    @property
    def rate(self) -> float:
        return self.read / self.images if self.images else 0.0


def reads_intent(image: Image.Image, intent: str) -> bool:
    """Whether the judge reads every attribute ``intent`` names (shape, colour, background, size, position) in ``image``.

    >>> from promptlab.micro.world import Scene, draw
    >>> picture = draw(Scene("star", "red", "sky blue", "large", "left"))
    >>> reads_intent(picture, "a red star on a sky blue background, large, left")
    True
    >>> reads_intent(picture, "a red star on a sky blue background, small")
    False
    """
    named = {name: value for name, value in caption_attributes(intent).items() if name in JUDGED}
    reading = judge(image)
    return bool(named) and all(getattr(reading, name) == value for name, value in named.items())


def search_truth(store: StoreReader, result: SearchResult) -> SearchTruth:
    """The judge's reading of ``result``'s winner on its confirmation seeds, and the winner's null words."""
    frame = store.runs_frame(result.experiment, "intent")
    frame = frame[(frame["variant_key"] == result.winner_key) & frame["seed"].isin(result.confirm_seeds)]
    paths = [path for path in frame.drop_duplicates("seed")["image"] if isinstance(path, str)]
    read = 0
    for path in paths:
        with Image.open(path) as image:
            read += reads_intent(image.convert("RGB"), result.intent)
    nulls = {word.casefold() for word in null_words()}
    held = tuple(term for term in result.winner_terms if term.casefold() in nulls)
    return SearchTruth(read, len(paths), held)
