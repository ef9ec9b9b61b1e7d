"""CLIP scoring on tiny-clip: equal to open_clip's own API, batch-independent, in 0..100, offline errors."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

from promptlab.device import choose_device
from promptlab.errors import ScoringError
from promptlab.scoring import (
    BUILTIN_CLIP_MODELS,
    PUBLISHED,
    SCORERS,
    ClipScorer,
    builtin_clip_weights,
    load_scorer,
    parse_scorer_spec,
    score_files,
    seed_diversity,
    suggest_terms,
    write_builtin_clip,
)

#: A spec per scorer kind that runs offline; a new kind in SCORERS needs one here.
TINY_SPECS = {"clip": "tiny-clip", "micro-judge": "micro-judge"}
COLOURS = ("black", "white", "red", "blue", "green", "gray", "yellow", "purple")


def noise(seed: int, size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size, size, 3), dtype=np.uint8))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def scorer() -> ClipScorer:
    # On CPU everywhere: a GPU's TF32 convolutions would miss the 1e-4 comparisons with the CPU reference.
    return load_scorer("tiny-clip", device="cpu")


@lru_cache(maxsize=1)
def direct_model(weights: str) -> tuple[torch.nn.Module, Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip", pretrained=weights)
    return model.eval(), preprocess, open_clip.get_tokenizer("tiny-clip")


def direct_cosines(images: list[Image.Image], texts: list[str]) -> list[float]:
    """cos(image, text) straight from open_clip's API, as a reader of the paper would compute it."""
    model, preprocess, tokenizer = direct_model(str(builtin_clip_weights("tiny-clip")))
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(i) for i in images]))
        txt = model.encode_text(tokenizer(texts))
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return [float(c) for c in (img * txt).sum(-1)]


def direct_clipscore(images: list[Image.Image], texts: list[str]) -> list[float]:
    return [100 * max(c, 0.0) for c in direct_cosines(images, texts)]


def test_equals_direct_open_clip_computation(scorer: ClipScorer) -> None:
    images = [noise(i) for i in range(6)] + [noise(6, 200), Image.new("RGB", (64, 48), "red")]
    texts = ["a red circle", "fat cat lies on the couch", "a squirrel, oil painting", "x", "", "blue", "tall", "red"]
    ours = [s.value for s in scorer.score(images, texts)]
    assert ours == pytest.approx(direct_clipscore(images, texts), abs=1e-4)
    assert sum(v > 0 for v in ours) >= 4


def test_same_score_in_a_batch_of_1_and_of_16(scorer: ClipScorer) -> None:
    images = [noise(100 + i) for i in range(16)]
    texts = [f"prompt number {i}" for i in range(16)]
    batched = [s.value for s in scorer.score(images, texts, batch_size=16)]
    single = [scorer.score([im], [t], batch_size=1)[0].value for im, t in zip(images, texts)]
    assert batched == pytest.approx(single, abs=1e-4)
    assert [s.value for s in scorer.score(images, texts, batch_size=5)] == pytest.approx(batched, abs=1e-4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**31 - 1), st.integers(8, 96), st.text(max_size=400))
def test_score_always_in_0_100(seed: int, size: int, text: str) -> None:
    value = load_scorer("tiny-clip", device="cpu").score([noise(seed, size)], [text])[0].value
    assert 0.0 <= value <= 100.0


def test_negative_cosine_scores_zero_per_image(scorer: ClipScorer) -> None:
    images = [Image.new("RGB", (64, 64), c) for c in COLOURS] + [noise(i) for i in range(8)]
    texts = ["a red circle"] * len(images)
    cosines = direct_cosines(images, texts)
    negative = [i for i, c in enumerate(cosines) if c < 0]
    positive = [i for i, c in enumerate(cosines) if c > 0]
    assert negative and positive, "tiny-clip should give both signs for this fixed set"
    values = [s.value for s in scorer.score(images, texts)]
    assert all(values[i] == 0.0 for i in negative)
    # Each positive image keeps its own score: a clamp on the batch mean would not zero the others.
    assert [values[i] for i in positive] == pytest.approx([100 * cosines[i] for i in positive], abs=1e-4)


def test_long_prompts_keep_their_end_token(scorer: ClipScorer) -> None:
    long = "a squirrel, " + ", ".join(f"detail {i}" for i in range(60))
    assert len(scorer.tokenizer.encode(long)) > 77
    tokens = scorer.tokenizer([long])[0]
    assert tokens.shape[-1] == scorer.info.context_length == 77
    assert int(tokens[-1]) == scorer.tokenizer.eot_token_id
    value = scorer.score([noise(1)], [long])[0].value
    assert value == pytest.approx(direct_clipscore([noise(1)], [long])[0], abs=1e-4)
    # Slicing the token ids instead (the torchmetrics way) loses the end token and changes the embedding.
    tok = scorer.tokenizer
    sliced = torch.tensor([[tok.sot_token_id, *tok.encode(long), tok.eot_token_id][:77]])
    assert int(sliced[0, -1]) != tok.eot_token_id
    with torch.no_grad():
        assert not torch.allclose(scorer.model.encode_text(sliced), scorer.model.encode_text(tokens[None]))


def test_score_says_how_it_was_made(scorer: ClipScorer) -> None:
    score = scorer.score([noise(2)], ["a cat"])[0]
    assert (score.scorer, score.model, score.pretrained, score.text) == ("tiny-clip", "tiny-clip", None, "a cat")
    assert score.weights_sha256 == sha256(builtin_clip_weights("tiny-clip"))
    assert scorer.info.device == "cpu" and scorer.info.weights_sha256 == score.weights_sha256


@pytest.mark.slow
def test_tiny_clip_weights_are_the_same_on_every_build(tmp_path: Path) -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    write_builtin_clip("tiny-clip", tmp_path / "a.safetensors")
    write_builtin_clip("tiny-clip", tmp_path / "b.safetensors")
    assert torch.equal(torch.rand(3), expected), "building must not move the caller's random stream"
    # Another process stands in for another machine (hash-map orders, for one, change per process).
    script = "import sys; from pathlib import Path; from promptlab.scoring import write_builtin_clip; "
    script += "write_builtin_clip('tiny-clip', Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "c.safetensors")], check=True)
    digests = {sha256(tmp_path / f"{n}.safetensors") for n in "abc"} | {sha256(builtin_clip_weights("tiny-clip"))}
    assert len(digests) == 1


def test_a_local_weights_file_loads_like_the_builtin(tmp_path: Path, scorer: ClipScorer) -> None:
    copy = tmp_path / "weights" / "mine.safetensors"
    copy.parent.mkdir()
    shutil.copyfile(builtin_clip_weights("tiny-clip"), copy)
    images, texts = [noise(3), noise(4)], ["a cat", "a dog"]
    expected = [s.value for s in scorer.score(images, texts)]
    for spec in (f"tiny-clip:{copy}", str(copy)):
        local = load_scorer(spec, device="cpu")
        [first, _] = scores = local.score(images, texts)
        # Float32 rounding: a score near 38 is only good to ~4e-6 (batching and threads may differ).
        assert [s.value for s in scores] == pytest.approx(expected, rel=1e-6)
        assert (first.scorer, first.model, first.pretrained) == (f"tiny-clip:{copy}", "tiny-clip", str(copy))
        assert first.weights_sha256 == sha256(copy)


def test_a_weights_file_that_does_not_fit_the_model_names_both(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"visual.proj": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ScoringError, match=r"cannot load weights file .*other\.safetensors into open_clip model tiny-"):
        load_scorer(f"tiny-clip:{path}")
    with pytest.raises(ScoringError, match="does not name a known model"):
        load_scorer(str(path))


def test_text_embeddings_are_cached(scorer: ClipScorer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    encode = scorer.model.encode_text

    def counting(tokens: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(len(tokens))
        return encode(tokens, *args, **kwargs)

    monkeypatch.setattr(scorer.model, "encode_text", counting)
    first = scorer.score([noise(3), noise(4)], ["a cached text", "a cached text"])
    second = scorer.score([noise(3)], ["a cached text"])
    assert calls == [1] and second[0].value == first[0].value
    scorer.score([noise(3), noise(4)], ["a cached text", "a new text"])
    assert calls == [1, 1]


def test_text_cache_is_bounded(scorer: ClipScorer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("promptlab.scoring.clip.TEXT_CACHE_SIZE", 2)
    scorer.embed_texts(["one", "two"])
    scorer.embed_texts(["one", "three"])
    assert list(scorer._texts) == ["one", "three"]


def test_model_loaded_once_per_process() -> None:
    assert load_scorer("tiny-clip", device="cpu") is load_scorer(" tiny-clip ", device="cpu")
    assert load_scorer("tiny-clip").info.device == choose_device()


@pytest.mark.parametrize("kind", sorted(TINY_SPECS))
def test_every_scorer_gives_values_in_its_range(kind: str) -> None:
    # The published scorers (aesthetic, pickscore, hps) have ranges of their own: tests/test_scorers_more.py.
    assert set(TINY_SPECS) == set(SCORERS) - {scorer.kind for scorer in PUBLISHED.values()}
    scorer = load_scorer(TINY_SPECS[kind])
    assert isinstance(scorer, SCORERS[kind])
    images = [noise(i) for i in range(4)] + [Image.new("RGB", (64, 64), c) for c in COLOURS]
    values = [s.value for s in scorer.score(images, ["a red circle"] * len(images))]
    assert all(0.0 <= v <= 100.0 for v in values)


def test_score_pairs_give_intent_and_prompt_scores(scorer: ClipScorer) -> None:
    images = [noise(8), noise(9)]
    intents, prompts = ["a squirrel", "a squirrel"], ["a squirrel, oil painting", "a squirrel, pixel art"]
    pairs = scorer.score_pairs(images, intents, prompts)
    assert [p.intent for p in pairs] == scorer.score(images, intents)
    assert [p.prompt for p in pairs] == scorer.score(images, prompts)


def test_text_and_image_similarity(scorer: ClipScorer) -> None:
    sims = scorer.text_similarity("oil painting", ["oil painting", "pixiv", "8k"])
    assert len(sims) == 3 and sims[0] == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 - 1e-6 <= s <= 1.0 + 1e-6 for s in sims)
    best = suggest_terms(scorer, "oil painting", ["pixiv", "oil painting", "8k"], top=2)
    assert len(best) == 2 and best[0].term == "oil painting" and best[0].similarity >= best[1].similarity
    matrix = scorer.image_similarity([noise(5), noise(6), Image.new("RGB", (64, 64), "red")])
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert [matrix[i][i] for i in range(3)] == pytest.approx([1.0] * 3, abs=1e-5)
    assert matrix[0][1] == pytest.approx(matrix[1][0], abs=1e-6)
    assert seed_diversity(scorer, [noise(5), noise(5)]) == pytest.approx(0.0, abs=1e-5)
    assert seed_diversity(scorer, [noise(5), noise(6), Image.new("RGB", (64, 64), "red")]) == pytest.approx(
        ((1 - matrix[0][1]) + (1 - matrix[0][2]) + (1 - matrix[1][2])) / 3, abs=1e-6
    )


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("", "empty"),
        ("NoSuchModel-99", "not an open_clip model"),
        ("ViT-B-32", "name ViT-B-32's weights too"),
        ("ViT-B-32:", "nothing after ':'"),
        ("ViT-B-32:nope", "no pretrained tag 'nope'"),
        ("ViT-B-32:/no/such/file.safetensors", "does not exist"),
        ("/no/such/file.safetensors", "does not exist"),
        ("tiny-clip:openai", "built-in tiny-clip has no pretrained tags"),
        ("ViT-L-14:openai", "trained with QuickGELU.*use 'ViT-L-14-quickgelu:openai'"),
    ],
)
def test_bad_specs_name_the_spec_and_the_problem(spec: str, fragment: str) -> None:
    with pytest.raises(ScoringError, match=fragment) as info:
        parse_scorer_spec(spec)
    assert repr(spec) in str(info.value) or not spec


def test_unknown_names_list_the_valid_forms() -> None:
    with pytest.raises(ScoringError, match=r"valid forms: 'clip'.*NAME:PRETRAINED_TAG.*'tiny-clip'"):
        parse_scorer_spec("clip-large")


@pytest.mark.parametrize(
    "spec, model, pretrained",
    [
        ("clip", "ViT-L-14-quickgelu", "openai"),
        ("ViT-H-14:laion2b_s32b_b79k", "ViT-H-14", "laion2b_s32b_b79k"),
        ("ViT-bigG-14:laion2b_s39b_b160k", "ViT-bigG-14", "laion2b_s39b_b160k"),
        ("tiny-clip", "tiny-clip", None),
    ],
)
def test_good_specs(spec: str, model: str, pretrained: str | None) -> None:
    parsed = parse_scorer_spec(spec)
    assert (parsed.name, parsed.model, parsed.pretrained, parsed.kind) == (spec, model, pretrained, "clip")


def test_missing_pretrained_weights_offline_name_model_tag_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # huggingface_hub reads these at import, so the module constants are set as well as the variables.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ScoringError) as info:
        load_scorer("ViT-B-32:laion2b_s34b_b79k", device="cpu")
    message = str(info.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message
    assert "Offline?" in message and "'ViT-B-32:/path/to/open_clip_model.safetensors'" in message


def test_bad_inputs_raise(scorer: ClipScorer) -> None:
    with pytest.raises(ScoringError, match="2 images but 1 texts"):
        scorer.score([noise(1), noise(2)], ["a cat"])
    with pytest.raises(ScoringError, match="image 0: expected a PIL image, got ndarray"):
        scorer.score([np.zeros((8, 8, 3))], ["a cat"])  # type: ignore[list-item]
    with pytest.raises(ScoringError, match="batch_size 0"):
        scorer.score([noise(1)], ["a cat"], batch_size=0)
    with pytest.raises(ScoringError, match="text 0: expected a string"):
        scorer.score([noise(1)], [None])  # type: ignore[list-item]
    with pytest.raises(ScoringError, match="at least 2 images"):
        seed_diversity(scorer, [noise(1)])
    assert scorer.score([], []) == []


def test_score_files_reads_images_in_batches_and_names_bad_files(tmp_path: Path, scorer: ClipScorer) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"good{i}.png")
        noise(10 + i).save(paths[-1])
    prompts = ["a cat", "a dog", "a cat"]
    results = score_files(paths, prompts, scorer, batch_size=2)
    expected = scorer.score([noise(10 + i) for i in range(3)], prompts)
    assert [r.value for r in results] == pytest.approx([s.value for s in expected], abs=1e-4)
    row = {"image": str(paths[0]), "prompt": "a cat", "scorer": "tiny-clip", "value": results[0].value}
    assert results[0].to_dict() == row
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ScoringError, match="cannot read image .*bad.png"):
        score_files([paths[0], bad], prompts[:2], scorer)
    with pytest.raises(ScoringError, match="cannot read image .*missing.png"):
        score_files([tmp_path / "missing.png"], ["a cat"], scorer)
    with pytest.raises(ScoringError, match="3 images but 1 prompts"):
        score_files(paths, ["a cat"], scorer)


def test_builtin_registry_entries_build_and_load() -> None:
    from promptlab.builtin import BUILTIN_CLIP_NAMES

    assert tuple(BUILTIN_CLIP_MODELS) == BUILTIN_CLIP_NAMES
    for name in BUILTIN_CLIP_MODELS:
        weights = builtin_clip_weights(name)
        assert weights.parent.name == name and weights.name.endswith(".safetensors")
        assert load_scorer(name).info.model == name


def test_micro_clip_ships_with_the_package_and_says_how_to_remake_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dataclasses import replace

    from promptlab.micro import MICRO_CLIP_WEIGHTS

    assert builtin_clip_weights("micro-clip") == MICRO_CLIP_WEIGHTS
    missing = replace(BUILTIN_CLIP_MODELS["micro-clip"], shipped=tmp_path / "micro-clip.safetensors")
    monkeypatch.setitem(BUILTIN_CLIP_MODELS, "micro-clip", missing)
    with pytest.raises(ScoringError, match="'micro-clip' has no weights at .*promptlab micro train"):
        builtin_clip_weights("micro-clip")
