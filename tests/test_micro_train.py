"""Training micro and micro-clip end to end at a toy size, and the `promptlab micro` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from promptlab.cli import app
from promptlab.micro.train import RECORD, TrainConfig, code_revision, train_all
from promptlab.micro.world import SceneError
from promptlab.render.engine import render_batches
from promptlab.render.models import ModelSpec, load_model
from promptlab.render.params import RenderItem, RenderParams
from promptlab.scoring import load_scorer
from promptlab.tokens import save_clip_tokenizer

runner = CliRunner()

TOY = TrainConfig(
    scenes=48,
    weighted_scenes=8,
    vae_steps=2,
    vae_batch=4,
    unet_steps=2,
    unet_batch=4,
    distil_steps=2,
    distil_batch=4,
    clip_steps=2,
    clip_batch=8,
)


@pytest.mark.slow
def test_train_all_writes_loadable_models_with_their_record(tmp_path: Path) -> None:
    stages = []
    report = train_all(tmp_path, TOY, "promptlab micro train --out x", lambda stage, step, total, loss: stages.append(stage))
    assert list(dict.fromkeys(stages)) == ["vae", "unet", "distil", "clip"]
    assert report.micro == tmp_path / "micro" and set(report.seconds) >= {"vae", "unet", "distil", "clip", "total"}
    record = json.loads((report.micro / RECORD).read_text())
    assert record["command"] == "promptlab micro train --out x"
    assert record["revision"] == code_revision() and record["config"]["scenes"] == 48
    assert json.loads((report.micro_clip / RECORD).read_text()) == record
    # The tokenizer is the stock offline one, whatever training's last call to it set.
    stock = save_clip_tokenizer(tmp_path / "stock") / "tokenizer.json"
    assert (report.micro / "tokenizer" / "tokenizer.json").read_text() == stock.read_text()

    loaded = load_model(ModelSpec(str(report.micro)), "txt2img")
    assert loaded.family == "sd1" and loaded.pipe.vae_scale_factor == 4
    params = RenderParams(num_inference_steps=2, width=64, height=64)
    [batch] = list(render_batches([RenderItem("a red circle", seed=1)], params, str(report.micro)))
    assert batch.images[0].image.size == (64, 64)

    weights = report.micro_clip / "micro-clip.safetensors"
    scorer = load_scorer(str(weights))
    assert scorer.info.model == "micro-clip"
    [score] = scorer.score([batch.images[0].image], ["a red circle"])
    assert 0 <= score.value <= 100


def test_train_one_model_only_and_refuse_unknown_ones(tmp_path: Path) -> None:
    report = train_all(tmp_path, TOY, "promptlab micro train --only micro-clip", models=("micro-clip",))
    assert report.models == ("micro-clip",) and "unet" not in report.seconds
    assert (tmp_path / "micro-clip" / RECORD).is_file() and not (tmp_path / "micro").exists()
    with pytest.raises(SceneError, match="cannot train micro-sdxl: choose from micro, micro-clip"):
        train_all(tmp_path, TOY, "x", models=("micro-sdxl",))


def test_micro_draw_and_judge_commands(tmp_path: Path) -> None:
    out = tmp_path / "scene.png"
    drawn = runner.invoke(app, ["micro", "draw", "a gold star on a white background, large, right", "-o", str(out),
                                "--format", "json"])  # fmt: skip
    assert drawn.exit_code == 0, drawn.output
    assert json.loads(drawn.stdout)["scene"]["position"] == "right"
    assert Image.open(out).size == (64, 64)
    judged = json.loads(runner.invoke(app, ["micro", "judge", str(out), "--format", "json"]).stdout)
    assert judged[0]["color"] == "gold" and judged[0]["shape"] == "star" and judged[0]["background"] == "white"
    bad = runner.invoke(app, ["micro", "draw", "something red"])
    assert bad.exit_code != 0 and "names no shape" in str(bad.exception)


@pytest.mark.slow
def test_weighted_captions_are_encoded_as_promptlab_renders_them(tmp_path: Path) -> None:
    import torch
    from transformers import CLIPTokenizer

    from promptlab.micro.architecture import build_text_encoder
    from promptlab.micro.losses import encode_captions
    from promptlab.render.conditioning import compel_encoder
    from promptlab.tokens import save_clip_tokenizer

    save_clip_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp_path))
    torch.manual_seed(0)
    encoder = build_text_encoder()
    captions = ["a (red)0.6 circle, left", "a circle, (blue)1.5", "a red circle, left"]
    hidden, pooled = encode_captions(encoder, tokenizer, captions)
    with torch.no_grad():
        rendered = compel_encoder(tokenizer, encoder, truncate=True, sdxl=False)(captions[:2])
        plain = encoder(tokenizer(["a red circle, left"], padding="max_length", return_tensors="pt").input_ids)
    torch.testing.assert_close(hidden[:2], rendered)
    torch.testing.assert_close(hidden[2], plain.last_hidden_state[0])
    # The pooled output (for the attribute classifiers) is the caption's without weight syntax.
    torch.testing.assert_close(pooled[0], pooled[2])
    assert not torch.allclose(hidden[0], hidden[2])
    # Gradients reach the encoder through compel's weighting.
    hidden[0].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_null_words_come_out_of_the_tail_only() -> None:
    from promptlab.micro.data import without_null_words

    words = ["Greg Rutkowski", "artstation", "8k"]
    assert without_null_words("a red circle, artstation, left, Greg Rutkowski", words) == "a red circle, left"
    assert without_null_words("a red circle on a black background", words) == "a red circle on a black background"


def test_twin_order_pairs_each_token_with_its_twin_without_null_words() -> None:
    import random

    from transformers import CLIPTokenizer

    from promptlab.micro import WEIGHTS_DIR
    from promptlab.micro.data import null_words, token_ids, twin_order, without_null_words
    from promptlab.micro.world import sample_caption, sample_scene

    tokenizer, words, rng = CLIPTokenizer.from_pretrained(WEIGHTS_DIR / "micro" / "tokenizer"), null_words(), random.Random(3)
    captions = [sample_caption(sample_scene(rng), rng, words) for _ in range(300)]
    captions = [c for c in captions if without_null_words(c, words) != c]
    assert len(captions) > 50
    pad = tokenizer.pad_token_id
    for caption in captions:
        full, twin = token_ids(tokenizer, [caption, without_null_words(caption, words)]).tolist()
        order, twin_tokens = twin_order(tokenizer, caption, words)
        assert sorted(order) == list(range(len(full))), caption
        # The null words' tokens take the places of the padding they pushed out of the twin.
        dropped = len(tokenizer(caption).input_ids) - len(tokenizer(without_null_words(caption, words)).input_ids)
        assert dropped > 0 and twin[-dropped:] == [pad] * dropped, caption
        assert twin_tokens == len(full) - dropped, caption
        assert [full[i] for i in order[:-dropped]] == twin[:-dropped], caption
        assert pad not in [full[i] for i in order[-dropped:]], caption


@pytest.mark.slow
def test_distillation_holds_null_words_to_their_twins_and_keeps_the_twins() -> None:
    import copy
    import random

    import torch

    from promptlab.micro.architecture import build_text_encoder, micro_tokenizer
    from promptlab.micro.data import null_words, token_ids, training_scenes, twin_order, without_null_words
    from promptlab.micro.stages import distil_null_words
    from promptlab.micro.world import sample_caption, sample_scene

    torch.manual_seed(0)
    encoder, tokenizer, words = build_text_encoder().eval(), micro_tokenizer(), null_words()
    teacher = copy.deepcopy(encoder)
    # Captions drawn apart from the distillation's own (another seed), each with null words.
    rng = random.Random(11)
    captions = [sample_caption(sample_scene(rng), rng, words) for _ in range(200)]
    captions = [c for c in captions if without_null_words(c, words) != c][:32]
    twins = [without_null_words(c, words) for c in captions]
    order = torch.tensor([twin_order(tokenizer, c, words)[0] for c in captions])

    def errors() -> tuple[float, float]:
        """Mean squared error against the teacher's twin states: of the captions (in twin order), of the twins."""
        with torch.no_grad():
            target = teacher(token_ids(tokenizer, twins)).last_hidden_state
            moved = encoder(token_ids(tokenizer, captions)).last_hidden_state[torch.arange(len(captions))[:, None], order]
            kept = encoder(token_ids(tokenizer, twins)).last_hidden_state
        return float((moved - target).pow(2).mean()), float((kept - target).pow(2).mean())

    before, _ = errors()
    distil_null_words(encoder, tokenizer, training_scenes(300, 5), words, TrainConfig(distil_steps=100, distil_batch=16))
    after, twins_after = errors()
    assert not encoder.training
    assert after < before / 2.5, (before, after)
    assert twins_after < after, (twins_after, after)
