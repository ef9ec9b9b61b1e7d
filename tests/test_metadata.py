"""Image metadata: A1111 infotexts, ComfyUI graphs, InvokeAI chunks, promptlab's own chunk, PNG round trips."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from promptlab.errors import ExportError, ImportMetadataError
from promptlab.metadata import (
    ConditioningPrompt,
    GenerationParameters,
    format_a1111_parameters,
    parse_a1111_parameters,
    parse_comfyui_prompt,
    parse_invokeai_metadata,
    png_bytes,
    read_image_metadata,
    write_png,
)

# Infotexts shaped as A1111 1.10 writes them (create_infotext's key order and quoting).
A1111_HIRES_LORA = (
    "masterpiece, best quality, 1girl, solo, looking at viewer, <lora:add_detail:0.6>\n"
    "Negative prompt: EasyNegative, (worst quality, low quality:1.4)\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 2316537914, Size: 512x768, "
    "Model hash: 7f96a1a9ca, Model: anything-v5, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, "
    'Hires steps: 15, Hires upscaler: 4x-UltraSharp, Lora hashes: "add_detail: 7c6bad76eb54", '
    'TI hashes: "EasyNegative: c74b4e810b03", Version: v1.10.1'
)
A1111_STEPS_IN_PROMPT = (
    'a poster that reads "Steps: 3, Sampler: none, CFG scale: high"\n'
    "second line of the prompt, (detailed:1.2)\n"
    "Negative prompt: blurry,\n"
    "lowres, text\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 768x512, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0"
)
A1111_NO_NEGATIVE = (
    "a photo of an astronaut riding a horse on mars\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"
)
A1111_IMG2IMG = (
    "portrait of a knight, oil painting\n"
    "Negative prompt: cartoon\n"
    'Steps: 35, Sampler: DPM++ SDE Karras, CFG scale: 6.5, Seed: 3902111, Face restoration: CodeFormer, '
    'Size: 640x832, Model hash: e6e99610c4, Model: "realistic, vision: v5.1", Variation seed: 17, '
    "Variation seed strength: 0.3, Denoising strength: 0.55, ENSD: 31337, Mask blur: 4, "
    'ADetailer model: face_yolov8n.pt, ADetailer prompt: "smile, detailed face", ADetailer version: 24.1.2, '
    "Version: v1.6.0"
)
A1111_OLD_HIRES = (
    "((masterpiece)), castle on a hill, sunset\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 25, Sampler: DDIM, CFG scale: 11, Seed: 1, Size: 512x512, Model hash: 925997e9, "
    "Clip skip: 2, Hires resize: 1024x1024, Hires upscaler: Latent, Denoising strength: 0.7"
)
A1111_FORGE_FLUX = (
    "日本庭園の桜、朝霧\n"
    "Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 7, "
    "Size: 896x1152, Model hash: 275ef623d3, Model: flux1-dev-bnb-nf4-v2, "
    'Module 1: ae, Version: f2.0.1v1.10.1-previous-313-g8a042934'
)


def _a1111_expectations() -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            A1111_HIRES_LORA,
            dict(
                prompt="masterpiece, best quality, 1girl, solo, looking at viewer, <lora:add_detail:0.6>",
                negative_prompt="EasyNegative, (worst quality, low quality:1.4)",
                steps=28, sampler="DPM++ 2M", scheduler="Karras", cfg_scale=7.0, seed=2316537914,
                width=512, height=768, model="anything-v5", model_hash="7f96a1a9ca",
                denoising_strength=0.45, clip_skip=2,
                extra={
                    "Hires upscale": "2", "Hires steps": "15", "Hires upscaler": "4x-UltraSharp",
                    "Lora hashes": "add_detail: 7c6bad76eb54", "TI hashes": "EasyNegative: c74b4e810b03",
                    "Version": "v1.10.1",
                },
            ),
        ),
        (
            A1111_STEPS_IN_PROMPT,
            dict(
                prompt='a poster that reads "Steps: 3, Sampler: none, CFG scale: high"\n'
                "second line of the prompt, (detailed:1.2)",
                negative_prompt="blurry,\nlowres, text",
                steps=30, sampler="DPM++ 2M Karras", scheduler=None, cfg_scale=7.5, seed=42,
                width=768, height=512, model="sd_xl_base_1.0", model_hash="31e35c80fc", extra={},
            ),
        ),
        (
            A1111_NO_NEGATIVE,
            dict(
                prompt="a photo of an astronaut riding a horse on mars", negative_prompt="",
                steps=20, sampler="Euler a", cfg_scale=7.0, seed=965400086, width=512, height=512,
                model=None, model_hash="45dee52b", clip_skip=None, extra={},
            ),
        ),
        (
            A1111_IMG2IMG,
            dict(
                sampler="DPM++ SDE Karras", cfg_scale=6.5, model="realistic, vision: v5.1",
                denoising_strength=0.55,
                extra={
                    "Face restoration": "CodeFormer", "Variation seed": "17", "Variation seed strength": "0.3",
                    "ENSD": "31337", "Mask blur": "4", "ADetailer model": "face_yolov8n.pt",
                    "ADetailer prompt": "smile, detailed face", "ADetailer version": "24.1.2", "Version": "v1.6.0",
                },
            ),
        ),
        (
            A1111_OLD_HIRES,
            dict(
                prompt="((masterpiece)), castle on a hill, sunset", sampler="DDIM", cfg_scale=11.0,
                clip_skip=2, denoising_strength=0.7, model=None,
                extra={"Hires resize": "1024x1024", "Hires upscaler": "Latent"},
            ),
        ),
        (
            A1111_FORGE_FLUX,
            dict(
                prompt="日本庭園の桜、朝霧", negative_prompt="", sampler="Euler", scheduler="Simple", cfg_scale=1.0,
                width=896, height=1152,
                extra={
                    "Distilled CFG Scale": "3.5", "Module 1": "ae",
                    "Version": "f2.0.1v1.10.1-previous-313-g8a042934",
                },
            ),
        ),
    ]


@pytest.mark.parametrize(("text", "expected"), _a1111_expectations(), ids=lambda v: str(v)[:24])
def test_parse_a1111_fixtures(text: str, expected: dict[str, Any]) -> None:
    params = parse_a1111_parameters(text)
    assert params.source == "a1111"
    for name, value in expected.items():
        assert getattr(params, name) == value, name
    assert list(params.extra) == list(expected.get("extra", params.extra))


def test_parse_a1111_keeps_inner_blank_lines_and_drops_leading_ones() -> None:
    text = "  a cat\n\n  on a mat  \nNegative prompt:\nugly\n\nbad hands\nSteps: 20, Sampler: Euler, CFG scale: 7"
    params = parse_a1111_parameters(text)
    assert (params.prompt, params.negative_prompt) == ("a cat\n\non a mat", "ugly\n\nbad hands")


@pytest.mark.parametrize("text", [A1111_HIRES_LORA, A1111_NO_NEGATIVE, A1111_IMG2IMG])
def test_a1111_infotext_is_rewritten_byte_for_byte(text: str) -> None:
    assert format_a1111_parameters(parse_a1111_parameters(text)) == text


def test_format_a1111_orders_and_quotes_like_create_infotext() -> None:
    params = GenerationParameters(
        prompt="a cat\non two lines",
        negative_prompt="dog, blurry",
        steps=20,
        sampler="DPM++ 2M",
        scheduler="Karras",
        cfg_scale=7.5,
        seed=1234,
        width=512,
        height=640,
        model="my: model, v2",
        model_hash="abc",
        denoising_strength=0.75,
        clip_skip=2,
        extra={"Version": "v1.10.1", "Lora hashes": 'a: 1, b: "2"', "VAE": "vae-ft-mse", "Tiling": "True"},
    )
    assert format_a1111_parameters(params) == (
        "a cat\non two lines\n"
        "Negative prompt: dog, blurry\n"
        'Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1234, Size: 512x640, '
        'Model hash: abc, Model: "my: model, v2", VAE: vae-ft-mse, Denoising strength: 0.75, Clip skip: 2, '
        'Tiling: True, Lora hashes: "a: 1, b: \\"2\\"", Version: v1.10.1'
    )


def test_format_a1111_omits_empty_negative_prompt_and_unset_fields() -> None:
    params = GenerationParameters(prompt="a cat", steps=4, sampler="Euler", cfg_scale=1.0)
    assert format_a1111_parameters(params) == "a cat\nSteps: 4, Sampler: Euler, CFG scale: 1"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (GenerationParameters(prompt="a", steps=1), "at least 3"),
        (GenerationParameters(prompt="a", steps=1, sampler="x", cfg_scale=1.0, width=8), "Size"),
        (GenerationParameters(prompt="a", steps=1, sampler="x", cfg_scale=1.0, extra={"Seed": "3"}), "seed"),
        (GenerationParameters(prompt="a", steps=1, sampler="x", cfg_scale=1.0, extra={"bad:key": "3"}), "bad:key"),
        (GenerationParameters(prompt="x\nNegative prompt: y", steps=1, sampler="x", cfg_scale=1.0), "reword"),
    ],
)
def test_format_a1111_refuses_text_that_would_not_read_back(params: GenerationParameters, match: str) -> None:
    with pytest.raises(ExportError, match=match):
        format_a1111_parameters(params)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("just a prompt, no settings", "not a generation line"),
        ("a cat\nSteps: many, Sampler: Euler, CFG scale: 7", "'Steps: many' is not a whole number"),
        ("a cat\nSteps: 20, Sampler: Euler, CFG scale: high", "'CFG scale: high' is not a number"),
        ("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Size: big", "'Size: big' is not WIDTHxHEIGHT"),
    ],
)
def test_parse_a1111_errors_name_the_key_and_value(text: str, match: str) -> None:
    with pytest.raises(ImportMetadataError, match=match):
        parse_a1111_parameters(text)


_LINE = (
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(lambda line: line and not line.startswith("Negative prompt:"))
)
_ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_KEY = st.from_regex(r"[A-Za-z][A-Za-z0-9 _/-]{1,15}", fullmatch=True).filter(
    lambda key: key not in {"Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash",
                            "Model", "Denoising strength", "Clip skip"}
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prompt=st.lists(_LINE, max_size=3).map("\n".join),
    negative=st.lists(_LINE, max_size=3).map("\n".join),
    steps=st.integers(1, 150),
    sampler=_ANY_TEXT,
    scheduler=st.none() | _ANY_TEXT,
    cfg=st.floats(0, 30, allow_nan=False),
    seed=st.none() | st.integers(0, 2**32),
    size=st.none() | st.tuples(st.integers(8, 4096), st.integers(8, 4096)),
    model=st.none() | _ANY_TEXT,
    denoise=st.none() | st.floats(0, 1),
    clip_skip=st.none() | st.integers(1, 12),
    extra=st.dictionaries(_KEY, _ANY_TEXT, max_size=4),
)
def test_format_then_parse_round_trips(
    prompt: str, negative: str, steps: int, sampler: str, scheduler: str | None, cfg: float,
    seed: int | None, size: tuple[int, int] | None, model: str | None, denoise: float | None,
    clip_skip: int | None, extra: dict[str, str],
) -> None:  # fmt: skip
    params = GenerationParameters(
        prompt=prompt,
        negative_prompt=negative,
        steps=steps,
        sampler=sampler,
        scheduler=scheduler,
        cfg_scale=cfg,
        seed=seed,
        width=size[0] if size else None,
        height=size[1] if size else None,
        model=model,
        denoising_strength=denoise,
        clip_skip=clip_skip,
        extra=extra,
        source="a1111",
    )
    assert parse_a1111_parameters(format_a1111_parameters(params)) == params


# The default ComfyUI txt2img workflow, saved in API format (the PNG's "prompt" chunk).
COMFYUI_DEFAULT_GRAPH: dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
        },
        "_meta": {"title": "KSampler"},
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,", "clip": ["4", 1]},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}


def _sdxl_hires_graph() -> dict[str, Any]:
    """SDXL with a LoRA, combined and ControlNet'd conditioning, text and seed from primitive nodes, hires pass."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "10": {"class_type": "LoraLoader", "inputs": {
            "lora_name": "detail.safetensors", "strength_model": 0.8, "strength_clip": 0.8,
            "model": ["4", 0], "clip": ["4", 1]}},
        "11": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "a lighthouse in a storm,\ndramatic"}},
        "12": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            "text_g": ["11", 0], "text_l": ["11", 0], "width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0,
            "target_width": 1024, "target_height": 1024, "clip": ["10", 1]}},
        "13": {"class_type": "CLIPTextEncode", "inputs": {"text": "oil painting style", "clip": ["10", 1]}},
        "14": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["12", 0], "conditioning_2": ["13", 0]}},
        "15": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, lowres", "clip": ["10", 1]}},
        "16": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "canny.safetensors"}},
        "17": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "strength": 0.6, "start_percent": 0, "end_percent": 1, "positive": ["14", 0], "negative": ["15", 0],
            "control_net": ["16", 0], "image": ["18", 0]}},
        "18": {"class_type": "LoadImage", "inputs": {"image": "edges.png"}},
        "19": {"class_type": "PrimitiveInt", "inputs": {"value": 8675309}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
        "3": {"class_type": "KSamplerAdvanced", "inputs": {
            "add_noise": "enable", "noise_seed": ["19", 0], "steps": 30, "cfg": 6.5,
            "sampler_name": "dpmpp_2m", "scheduler": "karras", "start_at_step": 0, "end_at_step": 10000,
            "return_with_leftover_noise": "disable", "model": ["10", 0], "positive": ["17", 0],
            "negative": ["17", 1], "latent_image": ["5", 0]}},
        "20": {"class_type": "LatentUpscaleBy", "inputs": {
            "upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["3", 0]}},
        "21": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 12, "cfg": 6.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.5,
            "model": ["10", 0], "positive": ["17", 0], "negative": ["17", 1], "latent_image": ["20", 0]}},
    }  # fmt: skip


def test_parse_comfyui_default_graph() -> None:
    params = parse_comfyui_prompt(COMFYUI_DEFAULT_GRAPH)
    assert params == GenerationParameters(
        prompt="beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
        negative_prompt="text, watermark",
        steps=20,
        sampler="euler",
        scheduler="normal",
        cfg_scale=8.0,
        seed=156680208700286,
        width=512,
        height=512,
        model="v1-5-pruned-emaonly.safetensors",
        denoising_strength=1.0,
        source="comfyui",
    )


def test_parse_comfyui_follows_links_through_conditioning_and_reads_the_last_pass() -> None:
    params = parse_comfyui_prompt(_sdxl_hires_graph())
    # no save node: the last pass makes the image; the combined prompts are kept apart, never joined
    assert (params.prompt, params.prompts) == (
        "a lighthouse in a storm,\ndramatic",
        (ConditioningPrompt("a lighthouse in a storm,\ndramatic", node="12"), ConditioningPrompt("oil painting style", node="13")),
    )
    assert params.negative_prompt == "blurry, lowres"
    assert (params.seed, params.steps, params.cfg_scale) == (1, 12, 6.5)
    assert (params.sampler, params.scheduler, params.denoising_strength) == ("euler", "normal", 0.5)
    assert (params.width, params.height) == (1536, 1152)
    assert (params.model, params.loras) == ("sd_xl_base_1.0.safetensors", (("detail.safetensors", 0.8),))
    notes = "\n".join(params.notes)
    assert "the record is sampler node 21 (KSampler) (the graph saves no image; promptlab takes the last pass)" in notes
    assert "node 3 (KSamplerAdvanced) also samples (dpmpp_2m/karras, 30 steps, cfg 6.5, seed 8675309" in notes
    assert "node 17 (ControlNetApplyAdvanced: strength=0.6" in notes and "control_net='canny.safetensors'" in notes


def test_parse_comfyui_sampler_custom() -> None:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 768, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m_sde"}},
        "9": {"class_type": "BasicScheduler", "inputs": {"scheduler": "karras", "steps": 25, "denoise": 1, "model": ["4", 0]}},
        "10": {"class_type": "SamplerCustom", "inputs": {
            "add_noise": True, "noise_seed": 99, "cfg": 5, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "sampler": ["8", 0], "sigmas": ["9", 0], "latent_image": ["5", 0]}},
    }  # fmt: skip
    params = parse_comfyui_prompt(graph)
    assert (params.prompt, params.negative_prompt) == ("a red fox", "")
    assert (params.sampler, params.scheduler, params.steps, params.seed) == ("dpmpp_2m_sde", "karras", 25, 99)
    assert (params.cfg_scale, params.width, params.height) == (5.0, 768, 512)
    assert params.model == "dreamshaper_8.safetensors"


def _graph_with_text_from(node: dict[str, Any]) -> dict[str, Any]:
    graph = json.loads(json.dumps(COMFYUI_DEFAULT_GRAPH))
    graph["30"] = node
    graph["6"]["inputs"]["text"] = ["30", 0]
    return graph


def test_parse_comfyui_resolves_text_from_a_string_node() -> None:
    graph = _graph_with_text_from({"class_type": "Text Multiline", "inputs": {"text": "from a primitive"}})
    assert parse_comfyui_prompt(graph).prompt == "from a primitive"


@pytest.mark.parametrize(
    ("graph", "match"),
    [
        (
            _graph_with_text_from(
                {"class_type": "StringConcatenate", "inputs": {"string_a": ["31", 0], "string_b": "x", "delimiter": ", "}}
            ),
            r"node 6 \(CLIPTextEncode\) 'text' links to node 30 \(StringConcatenate\), which is not a simple value node",
        ),
        ({"1": {"class_type": "SaveImage", "inputs": {}}}, r"no sampler node .*SaveImage"),
        ({"1": "not a node"}, "not an API-format graph"),
        (
            {**COMFYUI_DEFAULT_GRAPH, "7": {"class_type": "CLIPVisionEncode", "inputs": {"image": ["9", 0]}}},
            r"'negative' comes from node 7 \(CLIPVisionEncode\), which has no text input",
        ),
    ],
)
def test_parse_comfyui_errors_name_the_node(graph: dict[str, Any], match: str) -> None:
    with pytest.raises(ImportMetadataError, match=match):
        parse_comfyui_prompt(graph)


INVOKEAI_V4_METADATA: dict[str, Any] = {
    "generation_mode": "txt2img",
    "positive_prompt": "a cozy cabin in snowy woods, warm light",
    "negative_prompt": "people",
    "width": 1024,
    "height": 1024,
    "seed": 3357917823,
    "rand_device": "cpu",
    "cfg_scale": 7.5,
    "cfg_rescale_multiplier": 0,
    "steps": 30,
    "scheduler": "dpmpp_2m_k",
    "clip_skip": 1,
    "model": {
        "key": "8f4c1b1e-4b0e-4c1f-9d3a-2d8c2c8e6b7a",
        "hash": "blake3:31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
        "name": "stable-diffusion-xl-base-1-0",
        "base": "sdxl",
        "type": "main",
    },
    "loras": [],
    "app_version": "4.2.9",
}


def test_parse_invokeai_metadata() -> None:
    params = parse_invokeai_metadata(INVOKEAI_V4_METADATA)
    assert params.source == "invokeai"
    assert (params.prompt, params.negative_prompt) == ("a cozy cabin in snowy woods, warm light", "people")
    assert (params.steps, params.sampler, params.cfg_scale, params.seed) == (30, "dpmpp_2m_k", 7.5, 3357917823)
    assert (params.width, params.height, params.clip_skip) == (1024, 1024, 2)
    assert params.model == "stable-diffusion-xl-base-1-0"
    assert params.model_hash is not None and params.model_hash.startswith("blake3:")
    assert params.extra == {
        "generation_mode": "txt2img", "rand_device": "cpu", "cfg_rescale_multiplier": "0", "app_version": "4.2.9",
    }  # fmt: skip
    assert params.loras == ()


def test_parse_invokeai_v3_model_name_and_legacy_sd_metadata() -> None:
    v3 = {"positive_prompt": "a cat", "steps": 20, "model": {"model_name": "sd-1.5", "base_model": "sd-1"}}
    assert parse_invokeai_metadata(v3).model == "sd-1.5"
    legacy = {
        "model": "stable diffusion", "model_weights": "stable-diffusion-1.5", "model_hash": "cc6cb27103",
        "app_id": "invoke-ai/InvokeAI", "app_version": "2.2.5",
        "image": {"prompt": [{"prompt": "a lighthouse [fog]", "weight": 1.0}], "steps": 50, "cfg_scale": 7.5,
                  "height": 512, "width": 512, "seed": 42, "sampler": "k_lms", "type": "txt2img"},
    }  # fmt: skip
    params = parse_invokeai_metadata(legacy)
    # InvokeAI 2 reads every [...] as negative prompt
    assert (params.prompt, params.negative_prompt) == ("a lighthouse", "fog")
    assert (params.steps, params.sampler, params.seed) == (50, "k_lms", 42)
    assert (params.model, params.model_hash) == ("stable-diffusion-1.5", "cc6cb27103")


def test_parse_invokeai_errors_name_the_key() -> None:
    with pytest.raises(ImportMetadataError, match="'steps' is 'thirty'"):
        parse_invokeai_metadata({**INVOKEAI_V4_METADATA, "steps": "thirty"})
    with pytest.raises(ImportMetadataError, match="no 'positive_prompt'"):
        parse_invokeai_metadata({"seed": 1})


def _image(color: tuple[int, int, int] = (200, 30, 60)) -> Image.Image:
    return Image.new("RGB", (16, 12), color)


def _png_with_chunks(path: Path, chunks: dict[str, str]) -> Path:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    _image().save(path, format="PNG", pnginfo=info)
    return path


def _chunk_types(data: bytes) -> dict[str, str]:
    """Keyword -> chunk type (tEXt/zTXt/iTXt) of a PNG's text chunks."""
    found, position = {}, 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8].decode("ascii")
        body = data[position + 8 : position + 8 + length]
        if kind in ("tEXt", "zTXt", "iTXt"):
            found[body.split(b"\0", 1)[0].decode("latin-1")] = kind
        position += 12 + length
    return found


UNICODE_PARAMS = GenerationParameters(
    prompt="猫の肖像, «café» au lait,\nsecond line: with colon",
    negative_prompt="blurry, \"quoted\" text",
    steps=25,
    sampler="DPM++ 2M",
    scheduler="Karras",
    cfg_scale=6.5,
    seed=2**40 + 3,
    width=512,
    height=768,
    model="tiny-sd, v1: ☃",
    model_hash="deadbeef",
    denoising_strength=0.5,
    clip_skip=2,
    extra={"Lora hashes": "a: 1, b: 2", "Comment": '"starts with a quote"'},
)


def test_write_png_round_trips_parameters_and_record(tmp_path: Path) -> None:
    record = {"run_id": 7, "experiment": "sweep α", "scores": {"clip": 0.31}, "tags": ["a", "b"]}
    path = tmp_path / "out" / "image.png"
    write_png(_image(), path, UNICODE_PARAMS, promptlab_record=record)

    meta = read_image_metadata(path)
    assert meta.parameters == replace(UNICODE_PARAMS, source="promptlab")
    assert meta.promptlab_record == record
    assert meta.path == path
    # what A1111's PNG Info and civitai read: the plain 'parameters' text chunk
    assert Image.open(path).text["parameters"] == format_a1111_parameters(UNICODE_PARAMS)
    assert _chunk_types(path.read_bytes()) == {"parameters": "iTXt", "promptlab": "iTXt"}


def test_latin1_text_goes_in_plain_text_chunks(tmp_path: Path) -> None:
    params = GenerationParameters(prompt="a cat", steps=20, sampler="Euler a", cfg_scale=7.0, seed=1)
    data = png_bytes(_image(), params, {"run_id": 1})
    assert _chunk_types(data) == {"parameters": "tEXt", "promptlab": "tEXt"}
    path = tmp_path / "cat.png"
    path.write_bytes(data)
    assert read_image_metadata(path).parameters == replace(params, source="promptlab")


def test_png_bytes_is_deterministic_and_is_what_write_png_writes(tmp_path: Path) -> None:
    record = {"run_id": 3, "prompt": "猫"}
    first = png_bytes(_image(), UNICODE_PARAMS, record)
    assert png_bytes(_image(), UNICODE_PARAMS, record) == first
    assert png_bytes(_image(), UNICODE_PARAMS, {"run_id": 4, "prompt": "猫"}) != first
    assert png_bytes(_image((0, 0, 0)), UNICODE_PARAMS, record) != first
    path = tmp_path / f"{hashlib.sha256(first).hexdigest()}.png"
    write_png(_image(), path, UNICODE_PARAMS, record)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
    assert list(tmp_path.iterdir()) == [path]


def test_png_bytes_refuses_a_record_that_is_not_json() -> None:
    with pytest.raises(ExportError, match="promptlab record cannot be stored as JSON"):
        png_bytes(_image(), UNICODE_PARAMS, {"when": object()})


def test_read_a1111_png(tmp_path: Path) -> None:
    path = _png_with_chunks(tmp_path / "00001-2316537914.png", {"parameters": A1111_HIRES_LORA})
    meta = read_image_metadata(path)
    assert meta.parameters == parse_a1111_parameters(A1111_HIRES_LORA)
    assert meta.promptlab_record is None
    assert meta.chunks == {"parameters": A1111_HIRES_LORA}


@pytest.mark.parametrize(("image_format", "encoding"), [("JPEG", "utf-16-be"), ("WEBP", "utf-16-be"), ("JPEG", "utf-16-le")])
def test_read_a1111_exif_user_comment(tmp_path: Path, image_format: str, encoding: str) -> None:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\0" + A1111_FORGE_FLUX.encode(encoding)
    path = tmp_path / f"image.{image_format.lower()}"
    _image().save(path, format=image_format, exif=exif)
    meta = read_image_metadata(path)
    assert meta.parameters == parse_a1111_parameters(A1111_FORGE_FLUX)
    assert meta.chunks == {"parameters": A1111_FORGE_FLUX}


def test_read_comfyui_png(tmp_path: Path) -> None:
    workflow = json.dumps({"last_node_id": 9, "nodes": [], "links": [], "version": 0.4})
    path = _png_with_chunks(tmp_path / "ComfyUI_00001_.png", {"prompt": json.dumps(COMFYUI_DEFAULT_GRAPH), "workflow": workflow})
    meta = read_image_metadata(path)
    assert meta.parameters == parse_comfyui_prompt(COMFYUI_DEFAULT_GRAPH)
    assert meta.chunks["workflow"] == workflow


def test_read_invokeai_png(tmp_path: Path) -> None:
    path = _png_with_chunks(
        tmp_path / "invoke.png",
        {"invokeai_metadata": json.dumps(INVOKEAI_V4_METADATA), "invokeai_graph": "{}"},
    )
    assert read_image_metadata(path).parameters == parse_invokeai_metadata(INVOKEAI_V4_METADATA)


def test_promptlab_chunk_wins_over_others(tmp_path: Path) -> None:
    path = _png_with_chunks(
        tmp_path / "both.png",
        {"parameters": A1111_NO_NEGATIVE, "promptlab": '{"run_id": 9}', "prompt": json.dumps(COMFYUI_DEFAULT_GRAPH)},
    )
    meta = read_image_metadata(path)
    assert meta.parameters.source == "promptlab"
    assert meta.parameters.prompt == "a photo of an astronaut riding a horse on mars"
    assert meta.promptlab_record == {"run_id": 9}


def _write_plain(path: Path, image_format: str) -> Path:
    _image().save(path, format=image_format)
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: _write_plain(d / "plain.png", "PNG"), r"plain\.png: no generation metadata \(text chunks: none\)"),
        (lambda d: _write_plain(d / "photo.jpg", "JPEG"), r"photo\.jpg: no generation metadata"),
        (lambda d: _png_with_chunks(d / "other.png", {"Software": "GIMP"}), r"other\.png: no generation metadata \(text chunks: 'Software'\)"),
        (lambda d: _png_with_chunks(d / "prose.png", {"parameters": "hello there"}), r"prose\.png: A1111 parameters: last line 'hello there'"),
        (lambda d: _png_with_chunks(d / "broken.png", {"prompt": "{not json"}), r"broken\.png: 'prompt' chunk is not valid JSON"),
        (lambda d: _png_with_chunks(d / "list.png", {"promptlab": "[1, 2]", "parameters": A1111_NO_NEGATIVE}), r"list\.png: 'promptlab' chunk holds list"),
        (lambda d: _png_with_chunks(d / "lone.png", {"promptlab": "{}"}), r"lone\.png: 'promptlab' chunk without the 'parameters' chunk"),
        (lambda d: d / "missing.png", r"missing\.png: no such file"),
        (lambda d: (d / "notes.txt").write_text("Steps: 20") and d / "notes.txt", r"notes\.txt: not an image file"),
    ],
    ids=["plain-png", "plain-jpeg", "unrelated-chunk", "prose", "bad-json", "record-not-object", "record-alone", "missing", "text-file"],
)  # fmt: skip
def test_read_errors_name_the_file_and_what_was_found(tmp_path: Path, make: Any, match: str) -> None:
    with pytest.raises(ImportMetadataError, match=match):
        read_image_metadata(make(tmp_path))


def test_zlib_compressed_chunks_are_read(tmp_path: Path) -> None:
    info = PngInfo()
    info.add_text("parameters", A1111_IMG2IMG, zip=True)
    path = tmp_path / "compressed.png"
    _image().save(path, format="PNG", pnginfo=info)
    assert _chunk_types(path.read_bytes()) == {"parameters": "zTXt"}
    assert read_image_metadata(path).parameters == parse_a1111_parameters(A1111_IMG2IMG)


@pytest.mark.parametrize("field", ["Steps", "CFG scale"])
def test_a_number_past_any_float_is_out_of_range_not_an_overflow(tmp_path: Path, field: str) -> None:
    # Found by test_import_hostile's hypothesis run: math.isfinite(10**400) raised OverflowError.
    path = _png_with_chunks(tmp_path / "huge.png", {"parameters": f"a cat\nSampler: Euler a, {field}: {'9' * 400}, Model: m"})
    with pytest.raises(ImportMetadataError, match=r"huge\.png: .* = (9+|inf) is out of range: expected"):
        read_image_metadata(path)


def test_run_png_is_the_runs_infotext_and_record_and_the_same_bytes_each_time(tmp_path: Path) -> None:
    from promptlab.metadata import run_png
    from promptlab.prompt import Prompt, Term
    from promptlab.store import RunRecord, ScoreRecord

    record = RunRecord(7, "v1", 42, Prompt("a fox", (Term("snow", 1.3, "weather"),)), "tiny-sd", "blurry",
                       params={"num_inference_steps": 4, "guidance_scale": 6.5, "scheduler": "Euler"})  # fmt: skip
    scores = [ScoreRecord("intent", "tiny-clip", 0.25, "a fox")]
    image = Image.new("RGB", (8, 6), (200, 40, 10))
    data = run_png(record, image, scores, "foxes")
    assert data == run_png(record, image, scores, "foxes")
    path = tmp_path / "run.png"
    path.write_bytes(data)
    meta = read_image_metadata(path)
    assert (meta.parameters.prompt, meta.parameters.negative_prompt) == ("a fox, (snow:1.3)", "blurry")
    assert (meta.parameters.seed, meta.parameters.steps, meta.parameters.cfg_scale) == (42, 4, 6.5)
    assert (meta.parameters.width, meta.parameters.height, meta.parameters.source) == (8, 6, "promptlab")
    assert meta.promptlab_record is not None
    assert (meta.promptlab_record["experiment"], meta.promptlab_record["variant_key"]) == ("foxes", "v1")
    assert meta.promptlab_record["scores"] == [dataclasses.asdict(scores[0])]
    with pytest.raises(ExportError, match=r"run \(experiment 7, variant v1, seed 42\) cannot be stored as JSON"):
        run_png(replace(record, params={"dtype": object()}), image, scores, "foxes")


def test_a_runs_loras_are_written_as_a1111_writes_them_and_read_back(tmp_path: Path) -> None:
    """A1111's extensions-builtin/Lora: the <lora:name:w> tags in the prompt and "Lora hashes" (name: the first
    12 hex digits of the addnet hash, the file's tensors without its header); A1111's parser keeps them."""
    from promptlab.importer import imported_prompt
    from promptlab.metadata import run_png
    from promptlab.prompt import Prompt
    from promptlab.store import RunRecord

    loras = [
        {"name": "detail", "source": "/l/detail.safetensors", "sha256": "a" * 64, "strength": 0.6, "a1111_hash": "7c6bad76eb54" + "0" * 52},
        {"name": "my,style", "source": "o/style", "sha256": None, "strength": 1.0, "a1111_hash": "c396551d82ee" + "0" * 52},
        {"name": "imported", "source": "imported.safetensors", "sha256": None, "strength": 0.5},
    ]  # fmt: skip
    record = RunRecord(7, "v1", 42, Prompt("a fox"), "micro", params={"num_inference_steps": 4, "guidance_scale": 6.5, "loras": loras})
    path = tmp_path / "run.png"
    path.write_bytes(run_png(record, Image.new("RGB", (8, 8)), (), "foxes"))
    meta = read_image_metadata(path)
    first_line = meta.chunks["parameters"].splitlines()[0]
    assert first_line == "a fox <lora:detail:0.6> <lora:my,style:1> <lora:imported:0.5>"
    # a name loses its "," and ":" in Lora hashes, as A1111 writes a mentioned name; a LoRA with no hash is left out
    assert meta.parameters.extra["Lora hashes"] == "detail: 7c6bad76eb54, mystyle: c396551d82ee"
    assert meta.parameters.loras == (("detail", 0.6), ("my,style", 1.0), ("imported", 0.5))
    assert imported_prompt(meta).loras == (("detail", 0.6), ("my,style", 1.0), ("imported", 0.5))
