"""The micro-world's scene generator, captions and pixel judge (no models)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from promptlab.micro.data import null_words, one_off_caption, training_scenes
from promptlab.micro.world import (
    BACKGROUNDS,
    COLORS,
    FLAT_COLORS,
    HELD_OUT,
    INVISIBLE,
    LIGHTS,
    POSITIONS,
    SHAPES,
    SIZES,
    Scene,
    SceneError,
    agreement,
    caption_attributes,
    draw,
    held_out_scenes,
    judge,
    parse_caption,
    sample_caption,
    sample_scene,
    scene_for,
)
from promptlab.vocab import load_vocab


def test_draw_is_deterministic_and_seed_only_jitters() -> None:
    scene = Scene("star", "gold", "sky blue", "large", "left", "sunlight")
    assert draw(scene, 3).tobytes() == draw(scene, 3).tobytes()
    a, b = (np.asarray(draw(scene, seed)) for seed in (0, 1))
    assert a.shape == (64, 64, 3)
    # Same colours, shifted place.
    assert sorted(map(tuple, a.reshape(-1, 3)))[::97] != [] and abs(a.mean() - b.mean()) < 2


def test_caption_round_trip_and_partial_captions() -> None:
    for scene in (Scene("circle", "red", "black", "small", "left", "sunlight"), Scene("square", "white", "sky blue", "large", "center")):
        assert parse_caption(scene.caption()) == scene
    assert caption_attributes("(red)1.5 circle") == {"color": "red", "shape": "circle"}
    assert caption_attributes("a star on a gray background, dark") == {"shape": "star", "background": "gray", "light": "dark"}
    with pytest.raises(SceneError, match="names no color, background"):
        parse_caption("a circle, left")


def test_scene_rejects_unknown_and_invisible_values() -> None:
    with pytest.raises(SceneError, match="shape 'hexagon' is not one of"):
        Scene("hexagon", "red", "black", "small", "left")
    with pytest.raises(SceneError, match="invisible"):
        Scene("circle", "white", "white", "small", "left")
    with pytest.raises(SceneError, match="light 'neon'"):
        Scene("circle", "red", "black", "small", "left", "neon")


def test_vocabulary_words() -> None:
    vocab = load_vocab()
    colors = {term.text for term in vocab.categories["color"].terms}
    lights = {term.text for term in vocab.categories["light"].terms}
    assert set(COLORS) <= colors
    assert set(LIGHTS) <= lights
    words = null_words()
    assert "artstation" in words and "8k" in words
    # A null word names no attribute, or it would not be null.
    assert not [word for word in words if caption_attributes(word)]


def test_training_scenes_never_hold_held_out_combinations() -> None:
    scenes = training_scenes(3000, seed=1)
    combos = {(s.color, s.shape, s.background) for s in scenes}
    assert not combos & HELD_OUT
    # Every other visible combination appears.
    assert len(combos) == len(COLORS) * len(SHAPES) * (len(BACKGROUNDS)) - len(INVISIBLE) * len(SHAPES) - len(HELD_OUT)
    assert {s.light for s in scenes} == {None, *LIGHTS}
    with pytest.raises(SceneError, match="held out"):
        sample_scene(random.Random(0), {"color": "red", "shape": "star", "background": "gray"})


def test_sample_caption_leaves_out_shuffles_and_adds_null_words() -> None:
    rng = random.Random(0)
    words = ["greg rutkowski", "artstation", "8k"]
    scene = Scene("triangle", "blue", "white", "small", "top", "dark")
    captions = [sample_caption(scene, rng, words) for _ in range(300)]
    assert all("triangle" in c for c in captions)
    assert any(c.startswith("a ") for c in captions) and any(not c.startswith("a ") for c in captions)
    # The colour before the shape, or as a term of its own, as promptlab's prompts put it.
    assert any("blue triangle" in c for c in captions) and any("blue" in c.split(", ")[1:] for c in captions)
    assert any("blue" not in c for c in captions) and any("white background" not in c for c in captions)
    assert any(any(w in c for w in words) for c in captions)
    assert len({c.split(", ")[1] for c in captions if ", " in c}) > 3
    # What a caption names is always true of the scene.
    for caption in captions:
        for name, value in caption_attributes(caption).items():
            assert getattr(scene, name) == value, caption


def test_a_colour_weight_is_named_as_a_weighted_term_and_drawn_as_opacity() -> None:
    rng = random.Random(3)
    scene = Scene("circle", "red", "black", "large", "center")
    captions = [sample_caption(scene, rng, ["8k"], color_weight=0.6) for _ in range(50)]
    assert all("(red)0.6" in c for c in captions)
    assert any("(red)0.6 circle" in c for c in captions) and any("(red)0.6" in c.split(", ")[1:] for c in captions)
    assert all(caption_attributes(c)["color"] == "red" for c in captions)
    centre = {weight: np.asarray(draw(scene, 0, weight))[32, 32].astype(int) for weight in (0.0, 0.5, 1.0, 1.5)}
    background, red = np.array(BACKGROUNDS["black"]), np.array(FLAT_COLORS["red"])
    assert (centre[0.0] == background).all() and (centre[1.0] == red).all() and (centre[1.5] == red).all()
    assert np.abs(centre[0.5] - (background + red) / 2).max() <= 1
    # Above 1 the colour also tints the background: by half at 1.5, by 60% at most.
    corner = {weight: np.asarray(draw(scene, 0, weight))[0, 0].astype(int) for weight in (1.0, 1.5, 3.0)}
    assert (corner[1.0] == background).all()
    assert np.abs(corner[1.5] - (background + red) / 2).max() <= 1
    assert np.abs(corner[3.0] - (background + (red - background) * 0.6)).max() <= 1
    with pytest.raises(SceneError, match="colour weight -0.5 is negative"):
        draw(scene, 0, -0.5)


def test_one_off_caption_changes_exactly_one_attribute() -> None:
    rng = random.Random(2)
    for scene in training_scenes(200, seed=2):
        caption = sample_caption(scene, rng, ["artstation"])
        other = one_off_caption(scene, caption, rng)
        if other is None:
            continue
        before, after = caption_attributes(caption), caption_attributes(other)
        assert before.keys() == after.keys()
        assert sum(before[k] != after[k] for k in before) == 1, (caption, other)


def test_judge_reads_every_generator_scene_without_light() -> None:
    rng = random.Random(5)
    misses = []
    for i in range(400):
        scene = sample_scene(rng, {"light": None}, allow_held_out=True)
        verdict = agreement(scene, judge(draw(scene, i)))
        misses += [(scene, name) for name, ok in verdict.items() if not ok]
    assert misses == []


def test_judge_sees_an_empty_picture_as_background_only() -> None:
    from PIL import Image

    verdict = judge(Image.new("RGB", (64, 64), BACKGROUNDS["gray"]))
    assert verdict.background == "gray" and verdict.shape is None and verdict.foreground == 0


def test_lights_have_visible_consistent_effects() -> None:
    def mean(scene: Scene) -> np.ndarray:
        return np.asarray(draw(scene), dtype=float).reshape(-1, 3).mean(axis=0)

    for color, background in (("red", "gray"), ("blue", "white"), ("gold", "black")):
        flat = Scene("circle", color, background, "large", "center")
        dark, sun = mean(Scene(**{**flat.__dict__, "light": "dark"})), mean(Scene(**{**flat.__dict__, "light": "sunlight"}))
        assert dark.sum() < 0.5 * mean(flat).sum()
        # Sunlight is warm: red rises against blue.
        assert sun[0] - sun[2] > mean(flat)[0] - mean(flat)[2] + 20
        back = np.asarray(draw(Scene(**{**flat.__dict__, "light": "backlight"})), dtype=float)
        plain = np.asarray(draw(flat), dtype=float)
        # A glow ring just outside the shape, the shape itself darker.
        ring = (32, 32 + SIZES["large"] + 2)
        assert np.abs(back[ring] - plain[ring]).sum() > 40
        if background != "white":
            assert back[ring].sum() > plain[ring].sum() + 60
        assert back[32, 32].sum() < plain[32, 32].sum()


def test_held_out_scenes_cycle_through_held_out_combinations() -> None:
    scenes = held_out_scenes(64)
    assert len(scenes) == 64
    assert {(s.color, s.shape, s.background) for s in scenes} == HELD_OUT
    assert {s.position for s in scenes} == set(POSITIONS) and {s.size for s in scenes} == set(SIZES)


def test_scene_for_fills_in_what_a_caption_leaves_out() -> None:
    scene = scene_for("a red circle", seed=3)
    assert (scene.color, scene.shape, scene.light) == ("red", "circle", None)
    assert scene_for("a red circle", seed=3) == scene
    assert {scene_for("a circle", seed=s).color for s in range(30)} > {"red"}
    assert set(SHAPES) == {scene_for(f"a {s}").shape for s in SHAPES}


def test_judge_reads_soft_edges_and_ignores_a_dark_halo() -> None:
    """What micro's renders do to a scene: edges blurred, and a dark ring round the shape."""
    from PIL import Image, ImageChops, ImageFilter

    rng = random.Random(7)
    scenes = [sample_scene(rng, {"light": None}, allow_held_out=True) for _ in range(300)]
    blurred = [draw(scene, i).filter(ImageFilter.GaussianBlur(1.0)) for i, scene in enumerate(scenes)]
    shapes = sum(judge(image).shape == scene.shape for scene, image in zip(scenes, blurred))
    assert shapes >= 0.98 * len(scenes)
    star = Scene("star", "blue", "gray", "large", "center")
    picture = draw(star)
    shape = picture.convert("L").point(lambda v: 255 if abs(v - 115) > 20 else 0)
    ring = ImageChops.subtract(shape.filter(ImageFilter.MaxFilter(7)), shape).filter(ImageFilter.GaussianBlur(1.5))
    haloed = ImageChops.composite(Image.new("RGB", picture.size, (40, 40, 50)), picture, ring)
    assert judge(haloed).shape == "star"
