"""Batched rendering on the tiny models: every task and family, seeds, compel, results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from promptlab.errors import RenderError
from promptlab.render import (
    ModelSpec,
    RenderItem,
    RenderParams,
    RenderProgress,
    RenderRequest,
    render,
    render_batches,
    render_request,
)
from promptlab.render.conditioning import encode_prompts
from promptlab.render.models import load_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Batched convolutions and matmuls round differently from single ones: at most 1 level of 255.
BATCH_TOLERANCE = 1
WORDS = "fox owl cat dog boat house tree river moon sun car bird fish lamp chair road".split()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread: None) -> None:
    """Render tests run torch on one thread (see conftest)."""


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _max_diff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(_pixels(a) - _pixels(b)).max())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "image.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    depth = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (64, 1))
    Image.fromarray(depth).save(folder / "depth.png")
    return {name: str(folder / f"{name}.png") for name in ("image", "mask", "depth")}


TASK_CASES = [
    ("tiny-sd", "txt2img", "sd1", "StableDiffusionPipeline"),
    ("tiny-sdxl", "txt2img", "sdxl", "StableDiffusionXLPipeline"),
    ("tiny-sd", "img2img", "sd1", "StableDiffusionImg2ImgPipeline"),
    ("tiny-sdxl", "img2img", "sdxl", "StableDiffusionXLImg2ImgPipeline"),
    ("tiny-sd", "inpaint", "sd1", "StableDiffusionInpaintPipeline"),
    ("tiny-sd-inpaint", "inpaint", "sd1", "StableDiffusionInpaintPipeline"),
    ("tiny-sdxl", "inpaint", "sdxl", "StableDiffusionXLInpaintPipeline"),
    ("tiny-sdxl-inpaint", "inpaint", "sdxl", "StableDiffusionXLInpaintPipeline"),
    ("tiny-sd2-depth", "depth2img", "sd2", "StableDiffusionDepth2ImgPipeline"),
]


def _task_params(task: str, inputs: dict[str, str], **kwargs: object) -> RenderParams:
    files = {
        "txt2img": {},
        "img2img": {"image": inputs["image"]},
        "inpaint": {"image": inputs["image"], "mask_image": inputs["mask"]},
        "depth2img": {"image": inputs["image"]},
    }[task]
    return RenderParams(task=task, num_inference_steps=3, width=64, height=64, **files, **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "task", "family", "pipeline_class"), TASK_CASES)
def test_every_task_and_family_renders(
    model: str, task: str, family: str, pipeline_class: str, inputs: dict[str, str]
) -> None:
    params = _task_params(task, inputs)
    items = [RenderItem("a lighthouse", 1), RenderItem("a (stormy)1.4 sea", 2, negative_prompt="calm")]
    result = render(items, params, model)
    setup = result.setup
    assert (setup.family, setup.pipeline_class, setup.task) == (family, pipeline_class, task)
    assert [(i.seed, i.image.size, i.image.mode) for i in result.images] == [(1, (64, 64), "RGB"), (2, (64, 64), "RGB")]
    assert _max_diff(result.images[0].image, result.images[1].image) > 10
    again = render(items[:1], params, model)
    assert _max_diff(again.images[0].image, result.images[0].image) <= BATCH_TOLERANCE


def test_depth_map_from_the_user_replaces_the_estimate(inputs: dict[str, str]) -> None:
    params = _task_params("depth2img", inputs)
    estimated = render([RenderItem("a hall", 5)], params, "tiny-sd2-depth")
    given = RenderParams(**{**params.__dict__, "depth_map": inputs["depth"]})
    result = render([RenderItem("a hall", 5)], given, "tiny-sd2-depth")
    assert _max_diff(result.images[0].image, estimated.images[0].image) > 10
    assert [f.role for f in result.setup.inputs] == ["image", "depth_map"]


def test_image_tasks_record_input_hashes_and_size(inputs: dict[str, str]) -> None:
    import hashlib

    result = render([RenderItem("a fox", 1)], _task_params("inpaint", inputs, strength=0.5), "tiny-sd-inpaint")
    recorded = {f.role: f.sha256 for f in result.setup.inputs}
    assert recorded["image"] == hashlib.sha256(Path(inputs["image"]).read_bytes()).hexdigest()
    assert set(recorded) == {"image", "mask_image"}
    assert (result.setup.params.width, result.setup.params.height, result.setup.params.strength) == (64, 64, 0.5)


def test_image_task_resizes_to_requested_size(inputs: dict[str, str]) -> None:
    params = RenderParams(task="img2img", image=inputs["image"], num_inference_steps=2, width=32, height=48)
    assert render([RenderItem("x", 1)], params, "tiny-sd").images[0].image.size == (32, 48)


def test_mask_mismatch_fails_before_rendering(inputs: dict[str, str], tmp_path: Path) -> None:
    Image.new("L", (32, 32), 255).save(tmp_path / "small-mask.png")
    params = RenderParams(task="inpaint", image=inputs["image"], mask_image=str(tmp_path / "small-mask.png"))
    with pytest.raises(RenderError, match="small-mask.png' is 32x32"):
        render_batches([RenderItem("x", 1)], params, "tiny-sd")


@pytest.mark.slow
@pytest.mark.parametrize(("model", "task"), [("tiny-sd", "txt2img"), ("tiny-sdxl", "txt2img"), ("tiny-sd", "img2img")])
def test_image_is_the_same_alone_or_in_a_batch_of_16(model: str, task: str, inputs: dict[str, str]) -> None:
    items = [RenderItem(f"a {word} at dusk, (oil painting)1.2", 100 + i) for i, word in enumerate(WORDS)]
    params = _task_params(task, inputs)
    batch = render(items, params, model, batch_size=16)
    assert len(batch.batch_seconds) == 1
    for item, in_batch in zip(items, batch.images):
        alone = render([item], params, model).images[0]
        assert (in_batch.prompt, in_batch.seed) == (item.prompt, item.seed)
        assert _max_diff(alone.image, in_batch.image) <= BATCH_TOLERANCE


def test_seed_decides_the_image() -> None:
    params = RenderParams(num_inference_steps=2, width=64, height=64)
    first = render([RenderItem("a fox", 7), RenderItem("a fox", 8)], params, "tiny-sd").images
    assert _max_diff(first[0].image, first[1].image) > 10


@pytest.mark.parametrize("model", ["tiny-sd", "tiny-sdxl"])
def test_unweighted_prompt_matches_diffusers_own_encoding(model: str) -> None:
    loaded = load_model(model)
    prompts, negatives = ["a red fox in snow", "an owl"], ["", "blurry"]
    ours = encode_prompts(loaded.pipe, loaded.family, prompts, negatives)
    if loaded.family == "sdxl":
        embeds, negative, pooled, _ = loaded.pipe.encode_prompt(
            prompts, device="cpu", do_classifier_free_guidance=True, negative_prompt=negatives
        )
        assert torch.allclose(ours.pooled_prompt_embeds, pooled, atol=1e-5)
        # diffusers zeroes the negative only when none is given; "blurry" is encoded like any prompt.
        assert torch.allclose(ours.negative_prompt_embeds[1], negative[1], atol=1e-5)
    else:
        embeds, negative = loaded.pipe.encode_prompt(prompts, "cpu", 1, True, negatives)
        assert torch.allclose(ours.negative_prompt_embeds, negative, atol=1e-5)
    assert torch.allclose(ours.prompt_embeds, embeds, atol=1e-5)


def _reference_compel(tokenizer: Any, text_encoder: Any, *, sdxl: bool, pooled: bool = False) -> Any:
    """compel itself, configured as promptlab configures it, for comparisons."""
    from compel import Compel, ReturnedEmbeddingsType

    kind = "PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED" if sdxl else "LAST_HIDDEN_STATES_NORMALIZED"
    return Compel(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        returned_embeddings_type=ReturnedEmbeddingsType[kind],
        requires_pooled=pooled,
    )


def test_plain_texts_batched_through_diffusers_equal_compel() -> None:
    from promptlab.render.conditioning import has_weight_syntax, simple_fragments

    loaded = load_model("tiny-sd")
    prompts = ["a red fox, pop-art", "a red fox, (pop-art)1.3", "an owl++", "a red fox, pop-art"]
    negatives = ["blurry", "blurry", "", "ugly, (blurry)0.8"]
    assert [has_weight_syntax(p) for p in prompts] == [False, True, True, False]
    assert [simple_fragments(p) is not None for p in prompts[1:3]] == [True, False]
    ours = encode_prompts(loaded.pipe, loaded.family, prompts, negatives)
    expected = _reference_compel(loaded.pipe.tokenizer, loaded.pipe.text_encoder, sdxl=False)(prompts + negatives)
    assert torch.allclose(ours.prompt_embeds, expected[:4], atol=1e-5)
    assert torch.allclose(ours.negative_prompt_embeds, expected[4:], atol=1e-5)


@pytest.mark.parametrize("model", ["tiny-sd", "tiny-sdxl"])
def test_compel_reading_simple_prompts_itself_gives_compel_own_embeddings(model: str) -> None:
    from promptlab.render.conditioning import compel_encoder

    pipe = load_model(model).pipe
    texts = ["a red fox, (pop-art)1.3, snow", "(oil painting)0.8, an owl", "an owl++, (dusk)1.2"]
    sdxl = model == "tiny-sdxl"
    tokenizer, encoder = (pipe.tokenizer_2, pipe.text_encoder_2) if sdxl else (pipe.tokenizer, pipe.text_encoder)
    ours = compel_encoder(tokenizer, encoder, truncate=True, sdxl=sdxl, pooled=sdxl)(texts)
    theirs = _reference_compel(tokenizer, encoder, sdxl=sdxl, pooled=sdxl)(texts)
    for mine, reference in zip(ours if sdxl else [ours], theirs if sdxl else [theirs]):
        assert torch.equal(mine, reference)


# Prompts of plain words and (words)weight groups, as promptlab writes them for vocabulary terms.
_WORD = st.text(
    st.characters(blacklist_characters='()",.+-=\\', blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=6,
)
_PHRASE = st.lists(st.lists(_WORD, min_size=1, max_size=2).map("-".join), min_size=1, max_size=3).map(" ".join)
_WEIGHT = st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,6})?", fullmatch=True).filter(lambda w: float(w) != 1.0)
_GROUP = st.builds("({}){}".format, _PHRASE, _WEIGHT)
# Words and groups, single spaces apart: "a (red)1.5 circle" (side-by-side groups are compel's to merge).
_ITEM = (
    st.lists(st.one_of(_PHRASE, _GROUP), min_size=1, max_size=3)
    .filter(lambda parts: not any(a.startswith("(") and b.startswith("(") for a, b in zip(parts, parts[1:])))
    .map(" ".join)
)
_SIMPLE_PROMPT = st.lists(_ITEM, min_size=1, max_size=5).map(", ".join)


def _compel_parse(text: str) -> Any:
    from compel import Compel

    return Compel.parse_prompt_string(text)


def _as_conjunction(fragments: list[tuple[str, float]]) -> Any:
    from compel.prompt_parser import Conjunction, FlattenedPrompt

    return Conjunction([FlattenedPrompt(fragments)])


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(_SIMPLE_PROMPT)
def test_simple_prompts_are_read_exactly_as_compel_parser_reads_them(text: str) -> None:
    from promptlab.render.conditioning import simple_fragments

    fragments = simple_fragments(text)
    assert fragments is not None
    assert _as_conjunction(fragments) == _compel_parse(text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("ab -,().+\"=\\:12١")), max_size=24))
def test_other_prompts_are_left_to_compel_parser(text: str) -> None:
    from promptlab.render.conditioning import simple_fragments

    fragments = simple_fragments(text)
    if fragments is not None:
        assert _as_conjunction(fragments) == _compel_parse(text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_PHRASE, st.sampled_from([1.0, 0.8, 1.1, 1.21, 1.3, 2.0])), min_size=1, max_size=4))
def test_prompts_promptlab_writes_take_the_simple_path_unless_shorthand(terms: list[tuple[str, float]]) -> None:
    from promptlab.prompt import Prompt, Term
    from promptlab.render.conditioning import simple_fragments

    text = Prompt("a cat", tuple(Term(t, w) for t, w in terms)).to_compel()
    fragments = simple_fragments(text)
    # compel's shorthand (pop+, (a b)++) is for compel's parser; everything else reads the same here.
    assert (fragments is None) == any(abs(w - 1.1) < 1e-9 or abs(w - 1.21) < 1e-9 for _, w in terms)
    if fragments is not None:
        assert _as_conjunction(fragments) == _compel_parse(text)


@pytest.mark.parametrize("model", ["tiny-sd", "tiny-sdxl"])
def test_unweighted_render_matches_diffusers_pipeline_call(model: str) -> None:
    params = RenderParams(num_inference_steps=3, width=64, height=64, guidance_scale=5.0)
    ours = render([RenderItem("a red fox in snow", 11)], params, model).images[0].image
    pipe = load_model(model).pipe
    theirs = pipe(
        prompt="a red fox in snow",
        num_inference_steps=3,
        width=64,
        height=64,
        guidance_scale=5.0,
        generator=[torch.Generator("cpu").manual_seed(11)],
    ).images[0]
    assert _max_diff(ours, theirs) <= 1


def test_weights_change_the_image() -> None:
    params = RenderParams(num_inference_steps=3, width=64, height=64)
    plain, weighted = render([RenderItem("a red fox", 3), RenderItem("a (red)1.8 fox", 3)], params, "tiny-sd").images
    assert _max_diff(plain.image, weighted.image) > 0


LONG_PROMPT = ", ".join(f"{word} {word}" for word in WORDS * 3)


def test_long_prompt_policies() -> None:
    loaded = load_model("tiny-sd")
    truncated = encode_prompts(loaded.pipe, loaded.family, [LONG_PROMPT], [""], "truncate")
    chunked = encode_prompts(loaded.pipe, loaded.family, [LONG_PROMPT], [""], "chunk")
    assert truncated.prompt_embeds.shape[1] == 77
    assert chunked.prompt_embeds.shape[1] > 77 and chunked.prompt_embeds.shape[1] % 77 == 0
    assert chunked.negative_prompt_embeds.shape == chunked.prompt_embeds.shape

    base = RenderParams(num_inference_steps=2, width=64, height=64)
    cut = render([RenderItem(LONG_PROMPT, 4)], base, "tiny-sd")
    whole = render([RenderItem(LONG_PROMPT, 4)], RenderParams(**{**base.__dict__, "long_prompt": "chunk"}), "tiny-sd")
    assert (cut.setup.params.long_prompt, whole.setup.params.long_prompt) == ("truncate", "chunk")
    assert _max_diff(cut.images[0].image, whole.images[0].image) > 0
    # "truncate" reads the prompt as diffusers does: only the first 75 tokens.
    pipe = loaded.pipe
    theirs = pipe(prompt=LONG_PROMPT, num_inference_steps=2, width=64, height=64,
                  generator=[torch.Generator("cpu").manual_seed(4)]).images[0]
    assert _max_diff(cut.images[0].image, theirs) <= 1


def test_chunked_sdxl_prompt_renders() -> None:
    params = RenderParams(num_inference_steps=2, width=64, height=64, long_prompt="chunk", negative_prompt="dull")
    result = render([RenderItem(LONG_PROMPT, 1), RenderItem("short", 2)], params, "tiny-sdxl")
    assert len(result.images) == 2


def test_batches_are_yielded_as_they_finish_with_progress() -> None:
    events: list[RenderProgress] = []
    items = [RenderItem(f"a {word}", i) for i, word in enumerate(WORDS[:5])]
    # Euler runs exactly num_inference_steps steps (PNDM adds one).
    params = RenderParams(num_inference_steps=2, width=64, height=64, scheduler="euler")
    batches = render_batches(items, params, "tiny-sd", batch_size=2, progress=events.append)
    first = next(batches)
    assert [image.index for image in first.images] == [0, 1]
    assert {e.batch for e in events} == {1}
    rest = list(batches)
    assert [[image.index for image in b.images] for b in rest] == [[2, 3], [4]]
    steps = [(e.batch, e.step, e.steps, e.images_done) for e in events]
    assert steps[:3] == [(1, 1, 2, 0), (1, 2, 2, 0), (1, 2, 2, 2)]
    assert events[-1] == RenderProgress(batch=3, batches=3, step=2, steps=2, images_done=5, images_total=5)
    assert all(len(b.batch_seconds) == 1 and b.batch_seconds[0] > 0 for b in [first, *rest])


def test_errors_surface_before_the_first_batch() -> None:
    with pytest.raises(RenderError, match="unknown scheduler 'Euler z'"):
        render_batches([RenderItem("x", 1)], RenderParams(scheduler="Euler z"), "tiny-sd")
    with pytest.raises(RenderError, match="batch_size 0"):
        render_batches([RenderItem("x", 1)], RenderParams(), "tiny-sd", batch_size=0)
    with pytest.raises(RenderError, match="at least one"):
        render_batches([], RenderParams(), "tiny-sd")
    with pytest.raises(RenderError, match="must be a RenderItem"):
        render_batches([("x", 1)], RenderParams(), "tiny-sd")  # type: ignore[list-item]


def test_default_size_is_the_model_default() -> None:
    result = render([RenderItem("x", 1)], RenderParams(num_inference_steps=1), "tiny-sdxl")
    assert (result.setup.params.width, result.setup.params.height) == (64, 64)
    assert result.images[0].image.size == (64, 64)


@pytest.mark.parametrize("guidance", [0.0, 1.0])
def test_guidance_off_renders(guidance: float) -> None:
    params = RenderParams(num_inference_steps=1, width=64, height=64, guidance_scale=guidance, negative_prompt="x")
    assert render([RenderItem("a", 1)], params, "tiny-sdxl").setup.params.guidance_scale == guidance


def test_negative_prompt_per_item_overrides_the_shared_one() -> None:
    params = RenderParams(num_inference_steps=2, width=64, height=64, negative_prompt="blurry")
    result = render([RenderItem("a fox", 1), RenderItem("a fox", 1, negative_prompt="sharp")], params, "tiny-sd")
    assert [i.negative_prompt for i in result.images] == ["blurry", "sharp"]
    assert _max_diff(result.images[0].image, result.images[1].image) > 0


def test_result_is_json_and_enough_to_render_again() -> None:
    params = RenderParams(num_inference_steps=2, width=64, height=64, scheduler="DPM++ 2M Karras", negative_prompt="ugly")
    result = render([RenderItem("a (red)1.2 fox", 9)], params, ModelSpec("tiny-sdxl"))
    # Strict JSON, as the store and PostgreSQL take it: DPM-Solver's -inf becomes "-inf".
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    setup = record["setup"]
    assert float(setup["scheduler"]["config"]["lambda_min_clipped"]) == float("-inf")
    assert setup["model"] == {"model": "tiny-sdxl", "kind": "builtin", "location": result.setup.model.location,
                              "revision": None, "sha256": None}
    assert (setup["family"], setup["dtype"], setup["device"]) == ("sdxl", "float32", "cpu")
    assert setup["scheduler"]["name"] == "dpmpp_2m_karras"
    assert setup["scheduler"]["config"]["use_karras_sigmas"] is True
    assert setup["params"]["long_prompt"] == "truncate" and setup["params"]["negative_prompt"] == "ugly"
    assert set(setup["versions"]) == {"torch", "diffusers", "transformers", "compel", "promptlab"}
    assert record["images"] == [{"index": 0, "prompt": "a (red)1.2 fox", "negative_prompt": "ugly", "seed": 9,
                                 "width": 64, "height": 64}]
    assert set(record["timings"]) == {"load_seconds", "batch_seconds"}

    replay = render(
        [RenderItem(record["images"][0]["prompt"], record["images"][0]["seed"])],
        RenderParams(**setup["params"]),
        ModelSpec(setup["model"]["model"], dtype=setup["dtype"], device=setup["device"]),
    )
    assert _max_diff(replay.images[0].image, result.images[0].image) == 0


def test_render_request_uses_consecutive_seeds() -> None:
    request = RenderRequest("a fox", ModelSpec("tiny-sd"), RenderParams(num_inference_steps=1, width=64, height=64),
                            seed=41, count=3, batch_size=2)
    result = render_request(request)
    assert [i.seed for i in result.images] == [41, 42, 43]
    assert len(result.batch_seconds) == 2


def test_render_request_without_seed_draws_and_records_one() -> None:
    items = RenderRequest("a fox", ModelSpec("tiny-sd"), count=2).items()
    assert items[1].seed == items[0].seed + 1 and 0 <= items[0].seed < 2**32


@pytest.mark.parametrize(("seed", "count", "named"), [(1, 0, "count 0"), (2**63 - 2, 3, "seed 9223372036854775808")])
def test_render_request_checks_count_and_last_seed(seed: int, count: int, named: str) -> None:
    with pytest.raises(RenderError, match=named):
        RenderRequest("a fox", ModelSpec("tiny-sd"), seed=seed, count=count).items()


@pytest.mark.parametrize("model", ["micro", "tiny-sdxl"])
def test_conditioning_equals_compel_own_for_any_compel_prompt(model: str) -> None:
    """Nesting, shorthand, .attend(), escapes and BREAK's .and(): promptlab sends what compel builds."""
    loaded = load_model(model)
    pipe = loaded.pipe
    prompts = [
        "a (red)1.5 circle",
        "((a red)1.2 circle)0.8, on a (black)++ background",
        "a red circle--, (big).attend(1.3), \\(sunlight\\)",
        '("a red circle", "on a (black)1.4 background").and()',
    ]
    # (An empty negative on SDXL is zeros, as diffusers makes it: tested above.)
    negatives = ["blurry--", "(blurry)1.3", "blurry", "ugly"]
    ours = encode_prompts(pipe, loaded.family, prompts, negatives)
    sdxl = model == "tiny-sdxl"
    if not sdxl:
        reference = _reference_compel(pipe.tokenizer, pipe.text_encoder, sdxl=False)(prompts + negatives)
        assert torch.allclose(ours.prompt_embeds, reference[:4], atol=1e-5)
        assert torch.allclose(ours.negative_prompt_embeds, reference[4:], atol=1e-5)
        return
    first = _reference_compel(pipe.tokenizer, pipe.text_encoder, sdxl=True)(prompts + negatives)
    second, pooled = _reference_compel(pipe.tokenizer_2, pipe.text_encoder_2, sdxl=True, pooled=True)(prompts + negatives)
    reference = torch.cat([first, second], dim=-1)
    assert torch.allclose(ours.prompt_embeds, reference[:4], atol=1e-5)
    assert torch.allclose(ours.negative_prompt_embeds, reference[4:], atol=1e-5)
    assert torch.allclose(ours.pooled_prompt_embeds, pooled[:4], atol=1e-5)
