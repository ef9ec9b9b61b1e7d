"""CLIP scoring on tiny-clip: equal to open_clip's own API, batch-independent, in 0..100."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from promptlab.errors import ScoringError
from promptlab.scoring import (
    BUILTIN_CLIP_MODELS,
    SCORERS,
    builtin_clip_folder,
    load_scorer,
    parse_scorer_spec,
    score_files,
    seed_diversity,
    suggest_terms,
)


def noise(seed: int, size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def scorer():  # type: ignore[no-untyped-def]
    return load_scorer("tiny-clip")


def direct_clipscore(images: list[Image.Image], texts: list[str]) -> list[float]:
    """CLIPScore computed straight from open_clip's API, as a reader of the paper would."""
    name = f"local-dir:{builtin_clip_folder('tiny-clip')}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(i) for i in images]))
        txt = model.encode_text(tokenizer(texts))
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return [100 * max(float(c), 0.0) for c in (img * txt).sum(-1)]


def test_equals_direct_open_clip_computation(scorer) -> None:  # type: ignore[no-untyped-def]
    images = [noise(i) for i in range(6)] + [Image.new("RGB", (64, 64), "red")]
    texts = ["a red circle", "fat cat lies on the couch", "a squirrel, oil painting", "x", "", "blue", "red"]
    ours = [s.value for s in scorer.score(images, texts)]
    assert ours == pytest.approx(direct_clipscore(images, texts), abs=1e-4)
    assert any(v > 0 for v in ours)


def test_same_score_in_a_batch_of_1_and_of_16(scorer) -> None:  # type: ignore[no-untyped-def]
    images = [noise(100 + i) for i in range(16)]
    texts = [f"prompt number {i}" for i in range(16)]
    batched = [s.value for s in scorer.score(images, texts, batch_size=16)]
    single = [scorer.score([im], [t], batch_size=1)[0].value for im, t in zip(images, texts)]
    assert batched == pytest.approx(single, abs=1e-4)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.text(max_size=60))
def test_score_always_in_0_100(seed: int, text: str) -> None:
    value = load_scorer("tiny-clip").score([noise(seed, 48)], [text])[0].value
    assert 0.0 <= value <= 100.0


def test_negative_cosine_clamps_to_zero_per_image(scorer) -> None:  # type: ignore[no-untyped-def]
    images = [Image.new("RGB", (64, 64), c) for c in ("black", "white", "red", "blue", "green", "gray")]
    texts = ["a red circle"] * len(images)
    values = [s.value for s in scorer.score(images, texts)]
    direct = direct_clipscore(images, texts)
    assert values == pytest.approx(direct, abs=1e-4)
    # The clamp acts per image: a batch mean is not clamped once, but each value is.
    assert min(values) >= 0


def test_long_prompts_keep_their_end_token(scorer) -> None:  # type: ignore[no-untyped-def]
    long = "a squirrel, " + ", ".join(f"detail {i}" for i in range(60))
    tokens = scorer.tokenizer([long])[0]
    assert int(tokens[-1]) == open_clip.get_tokenizer("ViT-L-14").eot_token_id
    value = scorer.score([noise(1)], [long])[0].value
    assert value == pytest.approx(direct_clipscore([noise(1)], [long])[0], abs=1e-4)


def test_score_names_its_model(scorer) -> None:  # type: ignore[no-untyped-def]
    score = scorer.score([noise(2)], ["a cat"])[0]
    weights = builtin_clip_folder("tiny-clip") / "open_clip_model.safetensors"
    assert score.scorer == "tiny-clip" and score.text == "a cat"
    assert score.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_tiny_clip_weights_are_the_same_on_every_build(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    BUILTIN_CLIP_MODELS["tiny-clip"](first)
    BUILTIN_CLIP_MODELS["tiny-clip"](second)
    a = (first / "open_clip_model.safetensors").read_bytes()
    assert a == (second / "open_clip_model.safetensors").read_bytes()


def test_text_embeddings_are_cached(scorer) -> None:  # type: ignore[no-untyped-def]
    scorer.score([noise(3)], ["a cached text"])
    cached = scorer._texts["a cached text"]
    scorer.score([noise(4)], ["a cached text"])
    assert scorer._texts["a cached text"] is cached


def test_model_loaded_once_per_process() -> None:
    assert load_scorer("tiny-clip") is load_scorer("tiny-clip")
    assert SCORERS["clip"] is load_scorer


def test_text_and_image_similarity(scorer) -> None:  # type: ignore[no-untyped-def]
    sims = scorer.text_similarity("oil painting", ["oil painting", "pixiv", "8k"])
    assert len(sims) == 3 and sims[0] == pytest.approx(1.0, abs=1e-5)
    assert suggest_terms(scorer, "oil painting", ["pixiv", "oil painting"], top=1)[0][0] == "oil painting"
    matrix = scorer.image_similarity([noise(5), noise(6)])
    assert matrix[0][0] == pytest.approx(1.0, abs=1e-5) and len(matrix) == 2
    assert seed_diversity(scorer, [noise(5), noise(5)]) == pytest.approx(0.0, abs=1e-5)
    assert seed_diversity(scorer, [noise(5), noise(6)]) > 0


@pytest.mark.parametrize(
    "spec, fragment",
    [("", "empty"), ("NoSuchModel-99", "not an open_clip model"), ("ViT-B-32:nope", "no pretrained tag"),
     ("ViT-B-32:/no/such/file.safetensors", "does not exist")],
)
def test_bad_specs_name_the_problem(spec: str, fragment: str) -> None:
    with pytest.raises(ScoringError, match=fragment):
        parse_scorer_spec(spec)


def test_default_spec_is_vit_l_14_quickgelu_openai() -> None:
    spec = parse_scorer_spec("clip")
    assert (spec.model, spec.pretrained) == ("ViT-L-14-quickgelu", "openai")


def test_missing_pretrained_weights_offline_name_model_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE at import; offline, a download fails at once.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ScoringError) as info:
        load_scorer("ViT-B-32:laion2b_s34b_b79k")
    message = str(info.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message and "/path/to/" in message


def test_score_files_reads_images_and_names_bad_files(tmp_path: Path, scorer) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.png"
    noise(7).save(good)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    [result] = score_files([good], ["a cat"], scorer)
    assert result.to_dict() == {"image": str(good), "prompt": "a cat", "scorer": "tiny-clip", "value": result.value}
    with pytest.raises(ScoringError, match="bad.png"):
        score_files([bad], ["a cat"], scorer)
