"""The micro-world: 64x64 scenes drawn from captions, where the truth is known.

A scene is one shape on a plain background. Its caption reads like a prompt, and its words
come from promptlab's vocabularies where they fit (colours, lights):

    >>> scene = Scene("circle", "red", "black", "small", "left", "sunlight")
    >>> scene.caption()
    'a red circle on a black background, small, left, sunlight'
    >>> parse_caption(scene.caption()) == scene
    True
    >>> draw(scene).size
    (64, 64)

``draw`` is deterministic: the same scene and seed give the same pixels on every machine
(the seed only moves the shape a few pixels). ``judge`` reads a picture back from its pixels
alone (background, shape colour, shape, size, position), which is how the quality gates check
what ``micro`` draws. Training captions (``sample_caption``) leave attributes out, shuffle the
comma-separated tail and sprinkle in known-null words (artists, sites, resolution terms) that
change nothing in the picture; combinations in ``HELD_OUT`` are never drawn for training.
A weighted colour term (``(red)0.6``) is drawn at that opacity over the background, so a
weight's effect on the picture is known too. Colours outside the palette micro learns
(``ADAPTER_COLORS``: teal) are drawn, parsed and judged like the others but never sampled for
training: an adapter (``promptlab.micro.lora``) teaches them.

One module past ~500 lines on purpose: the caption grammar, the drawing and the judge read the
same tables (colours, shapes, sizes, positions, lights), and a change to one is a change to all three.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from promptlab.errors import PromptlabError

SIZE = 64

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
#: Flat colours, then the metallic ones (drawn as a light-to-dark gradient), as RGB.
FLAT_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (40, 175, 60),
    "blue": (40, 80, 225),
    "yellow": (250, 225, 40),
    "purple": (140, 55, 190),
    "white": (245, 245, 245),
    "orange": (250, 135, 20),
}
METALLIC_COLORS: dict[str, tuple[int, int, int]] = {
    "gold": (215, 170, 50),
    "silver": (175, 180, 190),
    "rust": (150, 65, 30),
}
COLORS: tuple[str, ...] = (*FLAT_COLORS, *METALLIC_COLORS)
#: Flat colours outside micro's palette: never in its training scenes (``sample_scene`` picks from
#: ``COLORS``), taught by an adapter (the teal LoRA, ``promptlab.micro.lora``). ``draw`` paints
#: them, captions name them and ``judge`` reads them like the palette's own.
ADAPTER_COLORS: dict[str, tuple[int, int, int]] = {
    "teal": (0, 128, 128),
}
#: Every colour a scene may have: the palette, then the adapter colours.
SCENE_COLORS: tuple[str, ...] = (*COLORS, *ADAPTER_COLORS)
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (12, 12, 14),
    "gray": (115, 115, 115),
    "white": (240, 240, 240),
    "sky blue": (130, 195, 235),
}
#: Circumradius of each size, in pixels.
SIZES: dict[str, int] = {"small": 10, "large": 16}
#: Where the shape's centre goes, in pixels.
POSITIONS: dict[str, tuple[int, int]] = {
    "left": (20, 32),
    "right": (44, 32),
    "top": (32, 20),
    "bottom": (32, 44),
    "center": (32, 32),
}
#: Light terms from the light vocabulary; no light term means flat, even light.
LIGHTS: tuple[str, ...] = ("dark", "sunlight", "backlight")
#: Share of random scenes with a light.
LIGHT_SHARE = 0.3
#: Every value of each Scene attribute (None: no light term).
ATTRIBUTES: dict[str, tuple[str | None, ...]] = {
    "color": COLORS,
    "shape": SHAPES,
    "background": tuple(BACKGROUNDS),
    "size": tuple(SIZES),
    "position": tuple(POSITIONS),
    "light": (None, *LIGHTS),
}
#: (colour, shape, background) combinations never drawn for training: the quality gates render them.
HELD_OUT: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("red", "star", "gray"),
        ("green", "circle", "white"),
        ("blue", "triangle", "black"),
        ("yellow", "square", "sky blue"),
        ("purple", "circle", "black"),
        ("white", "star", "sky blue"),
        ("orange", "triangle", "gray"),
        ("gold", "square", "black"),
        ("silver", "triangle", "gray"),
        ("rust", "circle", "sky blue"),
        ("red", "square", "white"),
        ("blue", "star", "gray"),
    }
)
#: Shape colours that would vanish into a background (silver's sheen is white).
INVISIBLE: frozenset[tuple[str, str]] = frozenset({("white", "white"), ("silver", "white")})
_JITTER = 2
#: How much of the colour a weight above 1 tints the background with, per unit of weight, and at most.
_TINT_PER_WEIGHT = 1.0
_MAX_TINT = 0.6
_STAR_INNER = 0.4


class SceneError(PromptlabError):
    """A caption or scene the micro-world cannot draw."""


@dataclass(frozen=True)
class Scene:
    """One picture of the micro-world: a shape of one colour on a background."""

    shape: str
    color: str
    background: str
    size: str
    position: str
    light: str | None = None

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("color", self.color, SCENE_COLORS),
            ("background", self.background, tuple(BACKGROUNDS)),
            ("size", self.size, tuple(SIZES)),
            ("position", self.position, tuple(POSITIONS)),
        ):
            if value not in allowed:
                raise SceneError(f"scene {name} {value!r} is not one of: {', '.join(allowed)}")
        if self.light is not None and self.light not in LIGHTS:
            raise SceneError(f"scene light {self.light!r} is not one of: {', '.join(LIGHTS)} (or none)")
        if (self.color, self.background) in INVISIBLE:
            raise SceneError(f"a {self.color} shape on a {self.background} background would be invisible")

    def caption(self) -> str:
        """The full caption: every attribute, in the canonical order."""
        tail = [self.size, self.position] + ([self.light] if self.light else [])
        return ", ".join([f"a {self.color} {self.shape} on a {self.background} background", *tail])


def parse_caption(text: str) -> Scene:
    """The scene a full caption describes (weight syntax and unknown words are ignored).

    Every attribute but the light must be named; ``sample_scene`` fills in missing ones.
    """
    found = caption_attributes(text)
    missing = [f.name for f in fields(Scene) if f.name != "light" and f.name not in found]
    if missing:
        raise SceneError(f"caption {text!r} names no {', '.join(missing)}; a full caption reads like {_EXAMPLE!r}")
    return Scene(**found)


_EXAMPLE = "a red circle on a black background, small, left, sunlight"


def _words_pattern(words: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z])({alternatives})(?![a-z])")


_SHAPE_RE = _words_pattern(SHAPES)
# Weight syntax may sit between the words: "(red)1.5 circle", "red++ circle", "(sky blue:1.2) background".
_COLOR_RE = re.compile(rf"{_words_pattern(SCENE_COLORS).pattern}[^a-z]+(?:{'|'.join(SHAPES)})")
# Or on its own between commas, as promptlab's prompts put a colour term: "a circle, red".
_COLOR_TERM_RE = re.compile(rf"(?:^|,)[^a-z,]*{_words_pattern(SCENE_COLORS).pattern}[^a-z,]*(?=,|$)")
_BACKGROUND_RE = re.compile(rf"on an? [^a-z]*{_words_pattern(tuple(BACKGROUNDS)).pattern}[^a-z]+background")
_SIZE_RE = _words_pattern(tuple(SIZES))
_POSITION_RE = _words_pattern(tuple(POSITIONS))
_LIGHT_RE = _words_pattern(LIGHTS)


def caption_attributes(text: str) -> dict[str, str]:
    """The attributes a caption names, by Scene field (a partial caption gives a partial dict)."""
    lowered = text.lower()
    found: dict[str, str] = {}
    for name, pattern in (
        ("shape", _SHAPE_RE),
        ("color", _COLOR_RE),
        ("color", _COLOR_TERM_RE),
        ("background", _BACKGROUND_RE),
        ("size", _SIZE_RE),
        ("position", _POSITION_RE),
        ("light", _LIGHT_RE),
    ):
        match = pattern.search(lowered)
        if match and name not in found:
            found[name] = match.group(1)
    return found


def scene_for(caption: str, seed: int = 0) -> Scene:
    """The scene a caption asks for; attributes it leaves out (but the light) are picked from ``seed``."""
    found: dict[str, str | None] = {"light": None, **caption_attributes(caption)}
    if "shape" not in found:
        raise SceneError(f"caption {caption!r} names no shape; shapes: {', '.join(SHAPES)}")
    return sample_scene(random.Random(seed), found, allow_held_out=True)


def sample_scene(
    rng: random.Random, fixed: dict[str, str | None] | None = None, allow_held_out: bool = False
) -> Scene:
    """A random scene with the attributes in ``fixed`` as given; held-out combinations only if allowed."""
    fixed = fixed or {}
    for _ in range(1000):
        values = {
            "shape": fixed.get("shape") or rng.choice(SHAPES),
            "color": fixed.get("color") or rng.choice(COLORS),
            "background": fixed.get("background") or rng.choice(tuple(BACKGROUNDS)),
            "size": fixed.get("size") or rng.choice(tuple(SIZES)),
            "position": fixed.get("position") or rng.choice(tuple(POSITIONS)),
        }
        light = fixed["light"] if "light" in fixed else (rng.choice(LIGHTS) if rng.random() < LIGHT_SHARE else None)
        if (values["color"], values["background"]) in INVISIBLE:
            continue
        if allow_held_out or (values["color"], values["shape"], values["background"]) not in HELD_OUT:
            return Scene(**values, light=light)
    raise SceneError(f"no scene has the attributes {fixed}: they are held out (see HELD_OUT) or invisible")


@dataclass(frozen=True)
class CaptionStyle:
    """How often training captions name each attribute, and how many null words they carry."""

    color: float = 0.85
    background: float = 0.75
    size: float = 0.6
    position: float = 0.7
    light: float = 0.85
    #: Chance that a named colour comes before the shape ("a red circle") rather than as a term ("a circle, red").
    color_first: float = 0.6
    #: Chance the caption starts with "a ".
    article: float = 0.85
    #: Chance of each extra null word (up to ``max_null``).
    null: float = 0.35
    max_null: int = 3


def sample_caption(
    scene: Scene,
    rng: random.Random,
    null_words: Sequence[str] = (),
    style: CaptionStyle = CaptionStyle(),
    color_weight: float | None = None,
) -> str:
    """A training caption for ``scene``: some attributes left out, the tail shuffled, null words added.

    With ``color_weight`` the colour is always named, as a weighted term: ``(red)0.6``.
    """
    tail = []
    named = rng.random() < style.color or color_weight is not None
    color = scene.color if color_weight is None else f"({scene.color}){color_weight:g}"
    first = named and rng.random() < style.color_first
    head = ("a " if rng.random() < style.article else "") + (f"{color} " if first else "") + scene.shape
    if named and not first:
        tail.append(color)
    if rng.random() < style.background:
        head += f" on a {scene.background} background"
    tail += [value for value, chance in ((scene.size, style.size), (scene.position, style.position)) if rng.random() < chance]
    if scene.light and rng.random() < style.light:
        tail.append(scene.light)
    extra = sum(rng.random() < style.null for _ in range(style.max_null))
    tail += rng.sample(list(null_words), min(extra, len(null_words)))
    rng.shuffle(tail)
    return ", ".join([head, *tail])


def draw(scene: Scene, seed: int = 0, color_weight: float = 1.0) -> Image.Image:
    """The 64x64 RGB picture of ``scene``; ``seed`` jitters the shape's place by up to 2 pixels.

    ``color_weight`` is the weight of the colour term (``(red)0.6``). Below 1 the shape's colour
    is laid over the background at that opacity: less red. Above 1 the colour also tints the
    background, by the weight's excess over 1 (``(red)1.5``: half red, at most 60%): red
    dominates the picture, as an emphasised colour does in Stable Diffusion.
    """
    if color_weight < 0:
        raise SceneError(f"colour weight {color_weight} is negative; weights run from 0 up")
    rng = random.Random(seed)
    cx, cy = POSITIONS[scene.position]
    cx += rng.randint(-_JITTER, _JITTER)
    cy += rng.randint(-_JITTER, _JITTER)
    radius = SIZES[scene.size]
    mask = _shape_mask(scene.shape, cx, cy, radius)
    paint = _paint(scene.color, cy, radius)
    tint = min(max(color_weight - 1.0, 0.0) * _TINT_PER_WEIGHT, _MAX_TINT)
    ground, color = BACKGROUNDS[scene.background], paint.getpixel((0, cy))
    image = Image.new("RGB", (SIZE, SIZE), tuple(round(g + (c - g) * tint) for g, c in zip(ground, color)))
    opacity = min(color_weight, 1.0)
    image.paste(paint, (0, 0), mask if opacity == 1 else mask.point(lambda v: round(v * opacity)))
    return _light(image, mask, scene.light)


def _polygon(cx: float, cy: float, radii: Sequence[float], start: float = -math.pi / 2) -> list[tuple[float, float]]:
    step = 2 * math.pi / len(radii)
    return [(cx + r * math.cos(start + i * step), cy + r * math.sin(start + i * step)) for i, r in enumerate(radii)]


def _shape_mask(shape: str, cx: float, cy: float, radius: float) -> Image.Image:
    """An antialiased mask (drawn at 4x and reduced) of ``shape`` inscribed in the circle of ``radius``."""
    scale = 4
    big = Image.new("L", (SIZE * scale, SIZE * scale), 0)
    pen = ImageDraw.Draw(big)
    x, y, r = (cx + 0.5) * scale, (cy + 0.5) * scale, radius * scale
    if shape == "circle":
        pen.ellipse((x - r, y - r, x + r, y + r), fill=255)
    elif shape == "square":
        half = r / math.sqrt(2)
        pen.rectangle((x - half, y - half, x + half, y + half), fill=255)
    elif shape == "triangle":
        pen.polygon(_polygon(x, y, [r] * 3), fill=255)
    else:
        pen.polygon(_polygon(x, y, [r, r * _STAR_INNER] * 5), fill=255)
    return big.resize((SIZE, SIZE), Image.Resampling.BOX)


def _paint(color: str, cy: int, radius: int) -> Image.Image:
    """A canvas of the shape's colour; metallic colours run light to dark from the shape's top down."""
    flat = FLAT_COLORS.get(color) or ADAPTER_COLORS.get(color)
    if flat is not None:
        return Image.new("RGB", (SIZE, SIZE), flat)
    base = METALLIC_COLORS[color]
    rows = []
    for y in range(SIZE):
        t = min(max((y - (cy - radius)) / (2 * radius), 0.0), 1.0)
        # A bright sheen at the top, the base colour in the middle, a shadow at the bottom.
        factor = 1.35 - 0.75 * t
        rows.append(tuple(min(255, round(channel * factor)) for channel in base))
    column = Image.new("RGB", (1, SIZE))
    column.putdata(rows)
    return column.resize((SIZE, SIZE), Image.Resampling.NEAREST)


def _light(image: Image.Image, mask: Image.Image, light: str | None) -> Image.Image:
    if light is None:
        return image
    if light == "dark":
        return image.point(lambda value: round(value * 0.4))
    if light == "sunlight":
        # Warm and bright: more red and green, less blue, lifted shadows.
        red, green, blue = image.split()
        red = red.point(lambda v: min(255, round(v * 1.1 + 35)))
        green = green.point(lambda v: min(255, round(v * 1.0 + 25)))
        blue = blue.point(lambda v: min(255, round(v * 0.75)))
        return Image.merge("RGB", (red, green, blue))
    # Backlight: the shape's body in shadow, a glow around its outline.
    glow = mask.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.GaussianBlur(2.5))
    halo = ImageChops.subtract(glow, mask).point(lambda v: min(255, v * 2))
    shaded = ImageChops.composite(image.point(lambda v: round(v * 0.5)), image, mask)
    return ImageChops.composite(Image.new("RGB", image.size, (255, 240, 200)), shaded, halo)


@dataclass(frozen=True)
class Judgement:
    """What ``judge`` read from a picture's pixels."""

    background: str
    color: str | None
    shape: str | None
    size: str | None
    position: str | None
    #: Share of the picture that differs from the background.
    foreground: float


_FOREGROUND_DISTANCE = 70
_MIN_FOREGROUND = 12


def judge(image: Image.Image) -> Judgement:
    """Read a scene back from pixels only: background from the border, the shape from what differs.

    The background is the border's median colour. The shape is every pixel more than halfway
    from the background to the shape's own mean colour and on the shape's side of it (a dark
    halo round a blue shape on gray is neither). Its colour is the nearest reference (a square
    of each colour in ``SCENE_COLORS`` drawn by ``draw``, measured the same way). Its shape is
    the upright template that overlaps it best, fitted to its bounding box, or, where that fit
    is clearly worse, centred on its centroid with its area: blurred points shrink a star's
    bounding box, and the box fit then takes it for a circle. Its position is the anchor nearest
    its centroid and its size the nearest circumradius. A picture with almost nothing on the
    background gets ``None`` for the shape's attributes.
    """
    import numpy as np

    pixels, background, mask = _read(image)
    count = int(mask.sum())
    if count < _MIN_FOREGROUND:
        return Judgement(background, None, None, None, None, count / SIZE**2)
    distances = _color_distances(pixels, mask)
    color = min(distances, key=lambda name: distances[name])
    ys, xs = np.nonzero(mask)
    fits = {shape: _fit(shape, mask, xs, ys) for shape in SHAPES}
    shape = max(fits, key=lambda name: fits[name][0])
    by_area = {name: _fit_by_area(name, mask, xs, ys) for name in SHAPES}
    best = max(by_area, key=lambda name: by_area[name][0])
    if by_area[best][0] > fits[shape][0] + _AREA_FIT_MARGIN:
        shape, fits = best, by_area
    radius = fits[shape][1]
    cx, cy = xs.mean(), ys.mean()
    position = min(POSITIONS, key=lambda name: _distance(POSITIONS[name], (cx, cy)))
    size = min(SIZES, key=lambda name: abs(SIZES[name] - radius))
    return Judgement(background, color, shape, size, position, count / SIZE**2)


#: How sharply ``color_match`` tells colours apart, in RGB units of ``judge``'s colour features. The
#: nearest two references (red and rust; green and teal) lie about 90 apart: at 30, a shape in a
#: reference colour matches it above 0.999, one halfway between two matches each 0.5, and one a
#: third of the way from teal to green matches teal about 0.95.
COLOR_MATCH_SCALE = 30.0


def color_match(image: Image.Image, color: str) -> float:
    """How surely the shape in ``image`` reads as ``color``: from 0 (another colour, or no shape) to 1.

    ``judge``'s colour reading made continuous, so that a colour's gradual arrival (a LoRA's
    strength, a term's weight) shows as a gradual rise: over every reference colour
    (``SCENE_COLORS``), the softmax of minus the squared distance from the shape's colour
    features to that reference, in units of ``COLOR_MATCH_SCALE``. The colour ``judge`` names
    has the highest match. A picture with almost nothing on its background matches no colour.

        >>> round(color_match(draw(Scene("circle", "teal", "black", "large", "center")), "teal"), 2)
        1.0
        >>> round(color_match(draw(Scene("circle", "green", "black", "large", "center")), "teal"), 2)
        0.0
    """
    import numpy as np

    if color not in SCENE_COLORS:
        raise SceneError(f"colour {color!r} is not one of: {', '.join(SCENE_COLORS)}")
    pixels, _, mask = _read(image)
    if int(mask.sum()) < _MIN_FOREGROUND:
        return 0.0
    distances = _color_distances(pixels, mask)
    logits = np.array([-((distances[name] / COLOR_MATCH_SCALE) ** 2) for name in SCENE_COLORS])
    weights = np.exp(logits - logits.max())
    return float(weights[SCENE_COLORS.index(color)] / weights.sum())


def _read(image: Image.Image) -> tuple[Any, str, Any]:
    """The picture as float RGB pixels, its background's name (from the border) and the shape's mask."""
    import numpy as np

    pixels = np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32)
    edges = (pixels[:2], pixels[-2:], pixels[:, :2], pixels[:, -2:])
    background_rgb = np.median(np.concatenate([edge.reshape(-1, 3) for edge in edges]), axis=0)
    background = min(BACKGROUNDS, key=lambda name: _distance(BACKGROUNDS[name], background_rgb))
    return pixels, background, _foreground(pixels, background_rgb)


def _color_distances(pixels: Any, mask: Any) -> dict[str, float]:
    """Distance from the shape's colour features to each reference colour's."""
    features = _color_features(pixels, mask)
    return {name: _distance(reference, features) for name, reference in _color_references().items()}


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return math.dist(tuple(float(x) for x in a), tuple(float(x) for x in b))


#: How far along the line from the background to the shape's colour a shape pixel must lie.
_TOWARD_SHAPE = 0.3
#: How much better (intersection over union) the centroid-and-area fit must be to overrule the box fit.
_AREA_FIT_MARGIN = 0.03


def _foreground(pixels: Any, background_rgb: Any) -> Any:
    import numpy as np

    offset = pixels - background_rgb
    distance = np.sqrt(np.sum(offset**2, axis=2))
    rough = distance > _FOREGROUND_DISTANCE
    if not rough.any():
        return rough
    # Halfway to the shape's own colour: antialiased edges count the same for every colour pair.
    direction = pixels[rough].mean(axis=0) - background_rgb
    contrast = float(np.sqrt(np.sum(direction**2)))
    toward = offset @ direction / contrast**2
    return (distance > max(contrast / 2, _FOREGROUND_DISTANCE / 2)) & (toward > _TOWARD_SHAPE)


#: Bounding box of each upright shape inscribed in a circle of radius 1: (width, height, centre's offset from the top).
_BOXES: dict[str, tuple[float, float, float]] = {
    "circle": (2.0, 2.0, 1.0),
    "square": (math.sqrt(2), math.sqrt(2), math.sqrt(2) / 2),
    "triangle": (math.sqrt(3), 1.5, 1.0),
    "star": (2 * math.sin(2 * math.pi / 5), 1 + math.cos(math.pi / 5), 1.0),
}


def _fit(shape: str, mask: Any, xs: Any, ys: Any) -> tuple[float, float]:
    """Intersection over union of ``mask`` and ``shape``'s template fitted to its bounding box, and the radius."""
    width, height, top = _BOXES[shape]
    radius = ((xs.max() - xs.min() + 1) / width + (ys.max() - ys.min() + 1) / height) / 2
    cx = (xs.max() + xs.min()) / 2
    cy = ys.min() - 0.5 + top * radius
    return _overlap(shape, mask, cx, cy, radius), float(radius)


@lru_cache(maxsize=None)
def _unit_area(shape: str) -> float:
    """Area of ``shape`` inscribed in a circle of radius 1, as ``_shape_mask`` draws it."""
    import numpy as np

    radius = 20
    return float(np.asarray(_shape_mask(shape, SIZE / 2 - 0.5, SIZE / 2 - 0.5, radius)).sum() / 255 / radius**2)


def _fit_by_area(shape: str, mask: Any, xs: Any, ys: Any) -> tuple[float, float]:
    """Like ``_fit``, with the template centred on the mask's centroid and scaled to its area."""
    radius = math.sqrt(len(xs) / _unit_area(shape))
    return _overlap(shape, mask, xs.mean(), ys.mean(), radius), radius


def _overlap(shape: str, mask: Any, cx: float, cy: float, radius: float) -> float:
    """Intersection over union of ``mask`` and ``shape``'s template at (cx, cy) with ``radius``."""
    import numpy as np

    template = np.asarray(_shape_mask(shape, cx, cy, radius)) > 127
    union = np.logical_or(template, mask).sum()
    return float(np.logical_and(template, mask).sum() / union) if union else 0.0


def _color_features(pixels: Any, mask: Any) -> Any:
    """Mean colour of the shape and how much brighter its top half is than its bottom half."""
    import numpy as np

    ys, _ = np.nonzero(mask)
    middle = (ys.min() + ys.max()) / 2
    shape_pixels = pixels[mask]
    top = shape_pixels[ys <= middle].mean(axis=0)
    bottom = shape_pixels[ys > middle].mean(axis=0) if (ys > middle).any() else top
    return np.concatenate([shape_pixels.mean(axis=0), [float((top - bottom).mean()) * 2]])


@lru_cache(maxsize=1)
def _color_references() -> dict[str, Any]:
    import numpy as np

    references = {}
    for color in SCENE_COLORS:
        picture = np.asarray(draw(Scene("square", color, "black", "large", "center")), dtype=np.float32)
        mask = _foreground(picture, np.array(BACKGROUNDS["black"], dtype=np.float32))
        references[color] = _color_features(picture, mask)
    return references


def agreement(scene: Scene, judgement: Judgement) -> dict[str, bool]:
    """Per attribute, whether the judge read what the scene says (light is not judged)."""
    return {
        "color": judgement.color == scene.color,
        "background": judgement.background == scene.background,
        "shape": judgement.shape == scene.shape,
        "size": judgement.size == scene.size,
        "position": judgement.position == scene.position,
    }


def held_out_scenes(count: int, seed: int = 0) -> list[Scene]:
    """``count`` scenes cycling through ``HELD_OUT`` with random size and position, no light."""
    rng = random.Random(seed)
    combos = sorted(HELD_OUT)
    return [
        replace(
            Scene(shape, color, background, "small", "center"),
            size=rng.choice(tuple(SIZES)),
            position=rng.choice(tuple(POSITIONS)),
        )
        for color, shape, background in (combos[i % len(combos)] for i in range(count))
    ]
