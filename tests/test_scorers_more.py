"""The published scorers (aesthetic, pickscore, hps, imagereward): each on a small random-weight model of its architecture,
built here without network, checked on the path its authors' preprocessing takes; their specs, traits and
offline errors.

The real weights (hundreds of MB to 4 GB) are never downloaded here: the tests check what promptlab
does with weights, the normalisation, the image size, the score formula and the loading of the
published file formats, not the published numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from promptlab.errors import PromptlabError, ScoringError
from promptlab.scoring import (
    PUBLISHED,
    SCORERS,
    AestheticScorer,
    HpsScorer,
    Scorer,
    ScorerSpec,
    aesthetic_head,
    load_scorer,
    parse_scorer_spec,
    scorer_traits,
)
from promptlab.scoring.aesthetic import load_aesthetic_head
from promptlab.scoring.clip import load_clip
from promptlab.scoring.hps import load_hps, load_hps_model


def _picture(width: int = 64, height: int = 64, color: str = "red"):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=color)
    return image


# --- the interface --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SCORERS))
def test_every_scorer_class_states_its_traits_and_has_the_protocols_methods(kind: str) -> None:
    cls = SCORERS[kind]
    assert isinstance(cls.reads_text, bool) and isinstance(cls.within_prompt, bool)
    assert callable(cls.score) and callable(cls.score_pairs)


@pytest.mark.parametrize(
    ("name", "reads_text", "within_prompt"),
    [
        ("clip", True, False),
        ("micro-clip", True, False),
        ("ViT-H-14:laion2b_s32b_b79k", True, False),
        ("something-unknown", True, False),
        ("micro-judge", True, False),
        ("aesthetic", False, False),
        ("aesthetic:/models/head.safetensors", False, False),
        ("pickscore", True, True),
        ("pickscore:/models/pickscore", True, True),
        ("hps", True, True),
        ("hps-v2", True, True),
        ("hps-v2.1", True, True),
        ("hps:/models/HPS_v2.1_compressed.pt", True, True),
        ("imagereward", True, True),
        ("imagereward:/models/imagereward", True, True),
    ],
)
def test_scorer_traits_come_from_the_stored_name_alone(name: str, reads_text: bool, within_prompt: bool) -> None:
    traits = scorer_traits(name)
    assert (traits.name, traits.reads_text, traits.within_prompt) == (name, reads_text, within_prompt)
    assert traits.measures and "\n" not in traits.measures


def test_traits_agree_with_the_classes_that_score() -> None:
    for name, published in PUBLISHED.items():
        cls = SCORERS[published.kind]
        assert (cls.reads_text, cls.within_prompt) == (scorer_traits(name).reads_text, scorer_traits(name).within_prompt)
    assert (SCORERS["clip"].within_prompt, SCORERS["micro-judge"].within_prompt) == (False, False)


@pytest.mark.slow
def test_the_loaded_builtin_scorers_follow_the_protocol() -> None:
    for name in ("tiny-clip", "micro-judge"):
        assert isinstance(load_scorer(name, device="cpu"), Scorer)


def test_clip_only_helpers_name_a_scorer_without_embeddings() -> None:
    from promptlab.scoring import seed_diversity, suggest_terms

    judge = load_scorer("micro-judge", device="cpu")
    with pytest.raises(ScoringError, match="suggest_terms needs a CLIP scorer's embeddings, and scorer 'micro-judge'"):
        suggest_terms(judge, "a red circle", ["blue"])
    with pytest.raises(ScoringError, match="seed_diversity needs a CLIP scorer"):
        seed_diversity(judge, [_picture(), _picture()])


def test_published_specs_parse_without_loading_and_hps_names_v2_1(tmp_path: Path) -> None:
    assert parse_scorer_spec("hps") == parse_scorer_spec("hps-v2.1") == ScorerSpec("hps-v2.1", "ViT-H-14", None, "hps")
    assert parse_scorer_spec(" aesthetic ") == ScorerSpec("aesthetic", "ViT-L-14-quickgelu", None, "aesthetic")
    assert parse_scorer_spec("pickscore").kind == "pickscore"
    head = tmp_path / "head.safetensors"
    head.write_bytes(b"")
    assert parse_scorer_spec(f"aesthetic:{head}") == ScorerSpec(f"aesthetic:{head}", "ViT-L-14-quickgelu", str(head), "aesthetic")
    assert parse_scorer_spec(f"hps-v2:{head}").name == f"hps:{head}"
    assert parse_scorer_spec(f"pickscore:{tmp_path}").pretrained == str(tmp_path)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("aesthetic:", "nothing after ':'"),
        ("aesthetic:/no/such/head.pth", "does not exist"),
        ("pickscore:/no/such/folder", "is not a folder"),
        ("hps:HEAD.txt", "expected one of .safetensors"),
    ],
)
def test_a_bad_local_copy_is_named_in_one_line(spec: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "HEAD.txt").write_text("not weights")
    with pytest.raises(ScoringError) as raised:
        parse_scorer_spec(spec)
    assert says in str(raised.value) and "\n" not in str(raised.value)


# --- aesthetic --------------------------------------------------------------------------------------


def _tiny_head(input_size: int, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return aesthetic_head(input_size).eval()


def test_the_aesthetic_head_has_the_published_layers_and_parameter_names() -> None:
    import torch

    head = aesthetic_head()
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(768, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]
    assert [m.p for m in head.modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2, 0.1]
    assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.GELU)) for m in head.modules())
    names = [key for key in head.state_dict() if key.endswith("weight")]
    assert names == ["layers.0.weight", "layers.2.weight", "layers.4.weight", "layers.6.weight", "layers.7.weight"]


def test_the_aesthetic_head_loads_from_a_plain_pth_and_from_safetensors_alike(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    head = _tiny_head(32)
    # The authors' file is torch.save(model.state_dict()): tensors in an OrderedDict, nothing else.
    torch.save(head.state_dict(), tmp_path / "head.pth")
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp_path / "head.safetensors"))
    x = torch.randn(3, 32)
    for name in ("head.pth", "head.safetensors"):
        loaded = load_aesthetic_head(tmp_path / name, "aesthetic")
        assert torch.equal(loaded(x), head(x))


class _Payload:
    """Unpickling this would run code (__reduce__): a pickle that weights_only=True refuses."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_that_would_run_code_is_refused_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    torch.save({"layers.0.weight": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ScoringError) as raised:
        load_aesthetic_head(tmp_path / "evil.pth", "aesthetic")
    assert "cannot read" in str(raised.value) and "\n" not in str(raised.value)
    assert "this must never run" not in capsys.readouterr().out


def test_aesthetic_feeds_the_head_unit_norm_clip_embeddings_and_ignores_the_text() -> None:
    import torch

    # The predictor on tiny-clip (open_clip CLIP, 32-d embeddings) with a random head of that width.
    clip = load_clip("tiny-clip", None, "cpu")
    head = _tiny_head(32)
    spec = ScorerSpec("aesthetic", "tiny-clip", None, "aesthetic")
    scorer = AestheticScorer(spec, clip, head, "cpu", "test-head")
    seen: list[torch.Tensor] = []
    head.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))

    images = [_picture(64, 64, "red"), _picture(96, 48, "blue"), _picture(40, 80, "green")]
    pairs = scorer.score_pairs(images, ["a red circle"] * 3, ["an oil painting", "x", "y"], batch_size=2)

    inputs = torch.cat(seen)
    assert inputs.shape == (3, 32)
    # The pitfall: the raw embedding is not unit-norm, the head's input is.
    raw = clip.model.encode_image(torch.stack([clip.preprocess(im) for im in images])).float()
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(3), atol=1e-2)
    assert torch.allclose(inputs.norm(dim=-1), torch.ones(3), atol=1e-5)
    with torch.no_grad():
        expected = head(raw / raw.norm(dim=-1, keepdim=True)).squeeze(-1).tolist()
    assert [p.intent.value for p in pairs] == pytest.approx(expected, abs=1e-5)
    # No text read: intent and prompt get one value, and no text is recorded.
    assert all(p.intent == p.prompt and p.intent.text == "" for p in pairs)
    assert [s.value for s in scorer.score(images, ["anything", "at", "all"])] == pytest.approx(expected, abs=1e-5)
    assert (scorer.reads_text, scorer.within_prompt, pairs[0].intent.pretrained) == (False, False, "test-head")


def test_aesthetic_refuses_a_head_for_another_embedding_width() -> None:
    clip = load_clip("tiny-clip", None, "cpu")
    with pytest.raises(ScoringError, match="768"):
        AestheticScorer(ScorerSpec("aesthetic", "tiny-clip", None, "aesthetic"), clip, aesthetic_head(768), "cpu")


# --- PickScore --------------------------------------------------------------------------------------


def _tiny_pickscore_folder(folder: Path, logit_scale: float) -> Path:
    """A transformers CLIPModel and CLIPProcessor of PickScore's kind, tiny and random, saved as a local copy."""
    import json

    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    # A byte-pair vocabulary of a few words, as transformers' own CLIP tokenizer tests build one.
    vocab = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "c", "a", "lo", "l</w>", "w</w>", "r</w>", "t</w>",
             "low</w>", "er</w>", "lowest</w>", "newer</w>", "wider", "<unk>", "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\nl o\nlo w</w>\ne r</w>\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    images = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_resize=True, do_center_crop=True
    )
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 23, "eos_token_id": 24,
                     "pad_token_id": 24},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                       "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(logit_scale))
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_pickscore_loads_a_local_copy_and_scores_logit_scale_times_cosine_at_the_models_input_size(tmp_path: Path) -> None:
    import torch

    folder = _tiny_pickscore_folder(tmp_path / "pickscore", logit_scale=50.0)
    scorer = load_scorer(f"pickscore:{folder}", device="cpu")
    assert (scorer.reads_text, scorer.within_prompt, scorer.spec.name) == (True, True, f"pickscore:{folder}")
    shapes: list[tuple[int, ...]] = []
    scorer.model.vision_model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["pixel_values"].shape)), with_kwargs=True
    )
    images = [_picture(96, 64, "red"), _picture(50, 50, "blue")]
    texts = ["lower", "newer wider"]
    scores = scorer.score(images, texts)
    # The processor resized and cropped every image to the model's 32 px.
    assert shapes == [(2, 3, 32, 32)]

    model, processor = scorer.model, scorer.processor
    with torch.no_grad():
        pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        image = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        tokens = processor.tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
        text = model.text_projection(model.text_model(**tokens).pooler_output)
        cosine = torch.nn.functional.cosine_similarity(image, text, dim=-1)
    assert [s.value for s in scores] == pytest.approx((50.0 * cosine).tolist(), abs=1e-4)
    assert all(abs(s.value) <= 50.0 + 1e-4 for s in scores)
    pairs = scorer.score_pairs(images, texts, texts[::-1])
    assert [p.intent.value for p in pairs] == pytest.approx([s.value for s in scores], abs=1e-5)
    assert [p.prompt.text for p in pairs] == texts[::-1]


# --- HPS --------------------------------------------------------------------------------------------


def _tiny_hps_checkpoint(path: Path) -> Path:
    """A checkpoint in HPS v2's published format ({'state_dict': ...}) for the tiny open_clip CLIP."""
    import torch

    clip = load_clip("tiny-clip", None, "cpu")  # also registers the architecture with open_clip
    torch.save({"state_dict": clip.model.state_dict()}, path)
    return path


def test_hps_loads_the_checkpoint_format_and_letterboxes_images_to_the_input_size(tmp_path: Path) -> None:
    import torch

    path = _tiny_hps_checkpoint(tmp_path / "HPS_tiny.pt")
    spec = ScorerSpec(f"hps:{path}", "tiny-clip", str(path), "hps")
    scorer = load_hps(spec, "cpu")
    assert isinstance(scorer, HpsScorer) and (scorer.reads_text, scorer.within_prompt) == (True, True)
    reference = load_clip("tiny-clip", None, "cpu").model.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in scorer.model.state_dict().items())

    # A wide image: its longest side fits 64 and black bars fill the rest, nothing is cropped.
    pixels = scorer.preprocess(_picture(128, 64, "red"))
    assert pixels.shape == (3, 64, 64)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])
    black = (-mean / std)[:, None]
    assert torch.allclose(pixels[:, 0, :], black.expand(3, 64), atol=1e-5)
    assert torch.allclose(pixels[:, 63, :], black.expand(3, 64), atol=1e-5)
    assert not torch.allclose(pixels[:, 32, :], black.expand(3, 64), atol=1e-2)


def test_hps_is_the_plain_cosine_of_the_normalised_embeddings(tmp_path: Path) -> None:
    import torch

    path = _tiny_hps_checkpoint(tmp_path / "HPS_tiny.pt")
    scorer = HpsScorer(
        ScorerSpec("hps-v2.1", "tiny-clip", None, "hps"), load_hps_model(path, "hps", "cpu", "tiny-clip"), "cpu",
        architecture="tiny-clip",
    )
    images, texts = [_picture(64, 64, "red"), _picture(80, 40, "blue")], ["a red circle", "a blue circle"]
    scores = scorer.score(images, texts)
    model = scorer.model
    with torch.no_grad():
        image = model.encode_image(torch.stack([scorer.preprocess(im) for im in images]))
        text = model.encode_text(scorer.tokenizer(texts))
        cosine = torch.nn.functional.cosine_similarity(image, text, dim=-1)
    # No logit scale and no factor 100 (hpsv2/img_score.py): the diagonal of image @ text.T.
    assert model.logit_scale.exp().item() != pytest.approx(1.0)
    assert [s.value for s in scores] == pytest.approx(cosine.tolist(), abs=1e-5)
    pairs = scorer.score_pairs(images, texts, ["a circle", "a circle"])
    assert [p.intent.value for p in pairs] == pytest.approx(cosine.tolist(), abs=1e-5)


def test_hps_names_a_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    import torch

    torch.save({"state_dict": {"visual.proj": torch.zeros(2, 2)}}, tmp_path / "wrong.pt")
    with pytest.raises(ScoringError, match="does not fit open_clip tiny-clip"):
        load_hps_model(tmp_path / "wrong.pt", "hps", "cpu", "tiny-clip")


# --- ImageReward ------------------------------------------------------------------------------------

TINY_VIT = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": 32, "patch_size": 8, "hidden_act": "gelu", "layer_norm_eps": 1e-6}
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "blue", "circle", "on", "black", "background"]


def _blip_names(vision: dict, prefix: str = "blip.visual_encoder.") -> dict:
    """transformers' BlipVisionModel tensors under BLIP's own ViT names, as the authors' checkpoint has them."""
    import re

    renames = [
        (r"^embeddings\.class_embedding$", "cls_token"),
        (r"^embeddings\.position_embedding$", "pos_embed"),
        (r"^embeddings\.patch_embedding\.", "patch_embed.proj."),
        (r"^encoder\.layers\.(\d+)\.layer_norm1\.", r"blocks.\1.norm1."),
        (r"^encoder\.layers\.(\d+)\.layer_norm2\.", r"blocks.\1.norm2."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.qkv\.", r"blocks.\1.attn.qkv."),
        (r"^encoder\.layers\.(\d+)\.self_attn\.projection\.", r"blocks.\1.attn.proj."),
        (r"^encoder\.layers\.(\d+)\.mlp\.", r"blocks.\1.mlp."),
        (r"^post_layernorm\.", "norm."),
    ]
    out = {}
    for key, value in vision.items():
        for pattern, replacement in renames:
            if re.search(pattern, key):
                out[prefix + re.sub(pattern, replacement, key)] = value
                break
        else:
            raise AssertionError(f"no BLIP name for {key}")
    return out


def _tiny_imagereward_folder(folder: Path) -> Path:
    """A checkpoint in ImageReward's published format (BLIP's names, plus parts the score does not use),
    its med_config.json and a bert tokenizer: tiny and random, as a local copy."""
    import json

    import torch
    from transformers import BertTokenizer

    from promptlab.scoring.imagereward import build_parts

    folder.mkdir(parents=True, exist_ok=True)
    med = {"vocab_size": len(TINY_VOCAB) + 2, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
           "num_attention_heads": 2, "max_position_embeddings": 64, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
           "pad_token_id": 0, "encoder_width": 32, "add_cross_attention": True}
    (folder / "med_config.json").write_text(json.dumps(med))
    torch.manual_seed(1)
    parts = build_parts(med, TINY_VIT)
    # transformers' initialisation makes BLIP's ViT all but zero (initializer_range 1e-10): spread every weight.
    with torch.no_grad():
        for module in (parts.vision, parts.text, parts.head):
            for name, param in module.named_parameters():
                norm_weight = "norm" in name.lower() and name.endswith("weight")
                param.copy_(torch.randn_like(param) * 0.2 + (1.0 if norm_weight else 0.0))
    state = _blip_names(parts.vision.state_dict())
    state |= {f"blip.text_encoder.{k}": v for k, v in parts.text.state_dict().items()}
    state |= {f"mlp.{k}": v for k, v in parts.head.state_dict().items()}
    state |= {"blip.vision_proj.weight": torch.zeros(8, 32), "blip.text_proj.weight": torch.zeros(8, 32)}
    # BLIP's text embeddings kept their position ids as a persistent buffer.
    state["blip.text_encoder.embeddings.position_ids"] = torch.arange(64)[None]
    torch.save(state, folder / "ImageReward.pt")
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(str(folder))
    return folder


def _blip_vit_reference(state: dict, pixels, heads: int, eps: float = 1e-6):
    """BLIP's VisionTransformer.forward written out from its own weights (models/vit.py), to check the renaming."""
    import torch
    from torch.nn import functional as F

    w = {k.removeprefix("blip.visual_encoder."): v for k, v in state.items() if k.startswith("blip.visual_encoder.")}
    x = F.conv2d(pixels, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=w["patch_embed.proj.weight"].shape[-1])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([w["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + w["pos_embed"][:, : x.shape[1] + 1]
    batch, tokens, width = x.shape
    depth = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    for i in range(depth):
        b = lambda name: (w[f"blocks.{i}.{name}.weight"], w[f"blocks.{i}.{name}.bias"])  # noqa: E731
        h = F.layer_norm(x, (width,), *b("norm1"), eps=eps)
        qkv = F.linear(h, *b("attn.qkv")).reshape(batch, tokens, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
        attention = (qkv[0] @ qkv[1].transpose(-2, -1) * (width // heads) ** -0.5).softmax(dim=-1)
        x = x + F.linear((attention @ qkv[2]).transpose(1, 2).reshape(batch, tokens, width), *b("attn.proj"))
        h = F.layer_norm(x, (width,), *b("norm2"), eps=eps)
        x = x + F.linear(F.gelu(F.linear(h, *b("mlp.fc1"))), *b("mlp.fc2"))
    return F.layer_norm(x, (width,), w["norm.weight"], w["norm.bias"], eps=eps)


@pytest.mark.slow
def test_imagereward_renames_blips_checkpoint_faithfully_and_scores_the_normalised_mlp_of_the_cls_state(tmp_path: Path) -> None:
    import torch

    from promptlab.scoring.imagereward import MEAN, STD, ImageRewardScorer, load_imagereward

    folder = _tiny_imagereward_folder(tmp_path / "imagereward")
    spec = parse_scorer_spec(f"imagereward:{folder}")
    assert (spec.kind, spec.pretrained) == ("imagereward", str(folder))
    scorer = load_imagereward(spec, "cpu", vision=TINY_VIT)
    assert isinstance(scorer, ImageRewardScorer) and (scorer.reads_text, scorer.within_prompt) == (True, True)

    # The image encoder with renamed weights computes what BLIP's own ViT computes from the original names.
    state = torch.load(folder / "ImageReward.pt", weights_only=True)
    images = [_picture(64, 48, "red"), _picture(32, 32, "blue")]
    pixels = torch.stack([scorer.preprocess(im) for im in images])
    assert pixels.shape == (2, 3, 32, 32)  # resized and centre-cropped to the ViT's input
    with torch.no_grad():
        ours = scorer.vision(pixel_values=pixels).last_hidden_state
    reference = _blip_vit_reference(state, pixels, heads=2)
    assert reference.abs().max() > 0.5 and torch.allclose(ours, reference, atol=1e-5)

    texts = ["a red circle", "a blue circle on a black background"]
    scores = scorer.score(images, texts)
    with torch.no_grad():
        tokens = scorer.tokenizer(texts, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
        assert tokens["input_ids"].shape == (2, 35)
        states = scorer.text(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                             encoder_hidden_states=ours, encoder_attention_mask=torch.ones(ours.shape[:-1], dtype=torch.long),
                             is_decoder=False).last_hidden_state
        expected = ((scorer.head(states[:, 0, :]).squeeze(-1) - MEAN) / STD).tolist()
    assert [s.value for s in scores] == pytest.approx(expected, abs=1e-5)
    # The text encoder reads the prompt both ways (an encoder, as BLIP's multimodal mode): a later word moves [CLS].
    assert scorer.score(images[:1], ["a red circle"])[0].value != pytest.approx(scorer.score(images[:1], ["a red square"])[0].value)
    # The image reaches [CLS] through the cross-attention in every layer.
    with torch.no_grad():
        other = scorer.text(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                            encoder_hidden_states=ours.flip(0), encoder_attention_mask=torch.ones(ours.shape[:-1], dtype=torch.long),
                            is_decoder=False).last_hidden_state
    assert not torch.allclose(states[:, 0, :], other[:, 0, :], atol=1e-6)


def test_imagereward_refuses_a_checkpoint_missing_a_weight(tmp_path: Path) -> None:
    import torch

    from promptlab.scoring.imagereward import load_parts

    folder = _tiny_imagereward_folder(tmp_path / "imagereward")
    state = torch.load(folder / "ImageReward.pt", weights_only=True)
    del state["blip.visual_encoder.blocks.1.attn.qkv.weight"]
    torch.save(state, folder / "ImageReward.pt")
    with pytest.raises(ScoringError, match=r"does not fit ImageReward's image encoder \(missing encoder.layers.1.self_attn.qkv.weight"):
        load_parts(folder / "ImageReward.pt", folder / "med_config.json", "imagereward", TINY_VIT)


# --- every published kind --------------------------------------------------------------------------


def _tiny_published(kind: str, tmp_path: Path) -> tuple[Scorer, float, float]:
    """A tiny random scorer of ``kind`` and the range its values must fall in."""
    import torch

    if kind == "aesthetic":
        clip = load_clip("tiny-clip", None, "cpu")
        head = _tiny_head(32)
        # An MLP without activations: at most the product of its layers' norms times the unit input.
        bound = math.prod(torch.linalg.matrix_norm(m.weight, 2).item() + m.bias.norm().item()
                          for m in head.modules() if isinstance(m, torch.nn.Linear))
        return AestheticScorer(ScorerSpec("aesthetic", "tiny-clip", None, "aesthetic"), clip, head, "cpu"), -bound, bound
    if kind == "pickscore":
        scorer = load_scorer(f"pickscore:{_tiny_pickscore_folder(tmp_path / 'pickscore', 50.0)}", device="cpu")
        return scorer, -50.0, 50.0
    if kind == "imagereward":
        from promptlab.scoring.imagereward import load_imagereward

        folder = _tiny_imagereward_folder(tmp_path / "imagereward")
        # A normalised MLP output: no bound of its own, only finite.
        return load_imagereward(parse_scorer_spec(f"imagereward:{folder}"), "cpu", vision=TINY_VIT), -math.inf, math.inf
    path = _tiny_hps_checkpoint(tmp_path / "hps.pt")
    return load_hps(ScorerSpec(f"hps:{path}", "tiny-clip", str(path), "hps"), "cpu"), -1.0, 1.0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["aesthetic", "hps", "imagereward", "pickscore"])
def test_every_published_scorer_gives_finite_values_in_its_range(kind: str, tmp_path: Path) -> None:
    from PIL import Image

    assert {scorer.kind for scorer in PUBLISHED.values()} == {"aesthetic", "hps", "imagereward", "pickscore"}
    scorer, low, high = _tiny_published(kind, tmp_path)
    assert isinstance(scorer, SCORERS[kind]) and isinstance(scorer, Scorer)
    images = [_picture(64, 64, c) for c in ("red", "blue")] + [Image.new("RGB", (48, 80), c) for c in ("black", "white")]
    values = [s.value for s in scorer.score(images, ["a red circle"] * len(images))]
    assert all(math.isfinite(v) and low - 1e-4 <= v <= high + 1e-4 for v in values)
    assert len(set(values)) > 1


# --- offline ----------------------------------------------------------------------------------------


@pytest.fixture
def empty_hub_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_HUB_OFFLINE=1 and an empty Hugging Face cache: nothing a hub id names is on this machine."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize(
    ("spec", "repo", "file"),
    [
        ("aesthetic", "camenduru/improved-aesthetic-predictor", "sac+logos+ava1-l14-linearMSE.pth"),
        ("pickscore", "yuvalkirstain/PickScore_v1", "config.json"),
        ("hps", "xswu/HPSv2", "HPS_v2.1_compressed.pt"),
        ("hps-v2", "xswu/HPSv2", "HPS_v2_compressed.pt"),
        ("imagereward", "THUDM/ImageReward", "ImageReward.pt"),
    ],
)
def test_offline_a_published_scorer_without_its_weights_says_how_to_get_them_in_one_line(
    spec: str, repo: str, file: str, empty_hub_offline: Path
) -> None:
    from promptlab.runner.offline import check_offline

    with pytest.raises(ScoringError) as checked:
        check_offline([], spec)
    with pytest.raises(ScoringError) as loaded:
        load_scorer(spec, device="cpu")
    for message in (str(checked.value), str(loaded.value)):
        assert "\n" not in message and message.startswith("scorer '")
        assert f"{file} from {repo}" in message and f"`hf download {repo} {file}" in message
        assert "download it once with network" in message and 'scorer = "micro-clip"' in message
        assert f'scorer = "{PUBLISHED[parse_scorer_spec(spec).name].local}"' in message


def test_offline_a_local_head_still_needs_the_clip_it_reads(tmp_path: Path, empty_hub_offline: Path) -> None:
    from promptlab.runner.offline import check_scorer_offline

    head = tmp_path / "head.pth"
    head.write_bytes(b"")
    with pytest.raises(ScoringError, match="open_clip_model.safetensors from timm/vit_large_patch14_clip_224.openai") as raised:
        check_scorer_offline(f"aesthetic:{head}")
    # A local copy of the head would not help: the message does not offer one.
    assert "local copy" not in str(raised.value) and 'scorer = "micro-clip"' in str(raised.value)
    # A local HPS checkpoint and a local PickScore folder with its processor need nothing from the hub.
    check_scorer_offline(f"hps:{head}")
    folder = tmp_path / "pickscore"
    folder.mkdir()
    (folder / "preprocessor_config.json").write_text("{}")
    with pytest.raises(ScoringError, match="tokenizer_config.json from laion/CLIP-ViT-H-14-laion2B-s32B-b79K"):
        check_scorer_offline(f"pickscore:{folder}")
    (folder / "tokenizer_config.json").write_text("{}")
    check_scorer_offline(f"pickscore:{folder}")


@pytest.mark.slow
def test_offline_a_run_scored_by_a_missing_published_scorer_fails_before_any_cell(empty_hub_offline: Path) -> None:
    from promptlab.experiment import parse_experiment
    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    text = """
name = "offline-aesthetic"
model = "micro"
scorer = "aesthetic"
seeds = 2
[params]
width = 64
height = 64
[prompt]
subject = "a red circle on a black background"
"""
    spec = parse_experiment(text)
    with open_store() as store:
        with pytest.raises(PromptlabError) as raised:
            run_experiment(spec, store)
        assert store.list_experiments() == []
    message = str(raised.value)
    assert type(raised.value) is ScoringError and "\n" not in message
    assert message.startswith("scorer 'aesthetic' (sac+logos+ava1-l14-linearMSE.pth from camenduru/improved-aesthetic-predictor)")
