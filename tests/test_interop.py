"""Import reads what other tools really write: their chunks, built here in each tool's own format, and real files.

The real files are ``../shared/interop-samples/`` (next to the repository); their tests read
the truth from the files' own chunks and skip, saying why, where that folder is missing.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from promptlab.cli import app
from promptlab.errors import ImportMetadataError
from promptlab.importer import import_image, novelai_to_a1111, store_imported
from promptlab.metadata import (
    ConditioningPrompt,
    parse_comfyui_prompt,
    parse_invokeai_dream,
    parse_invokeai_metadata,
    read_image_metadata,
)
from promptlab.prompt import convert
from promptlab.store import open_store

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "interop-samples"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"no {SAMPLES}: the real-file checks need ../shared/interop-samples beside the repository"
)
runner = CliRunner()


def _png(path: Path, chunks: dict[str, str], image: Image.Image | None = None) -> Path:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    (image or Image.new("RGB", (16, 16), (40, 90, 200))).save(path, pnginfo=info)
    return path


def _notes(notes: tuple[str, ...] | list[str]) -> str:
    return "\n".join(notes)


# ComfyUI API-format graphs, as SaveImage writes them into the "prompt" chunk (ComfyUI's own examples, trimmed).
FLUX_GRAPH: dict[str, Any] = {
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a (red:1.2) fox in the snow", "clip": ["11", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "10": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    "11": {"class_type": "DualCLIPLoader", "inputs": {
        "clip_name1": "t5xxl_fp16.safetensors", "clip_name2": "clip_l.safetensors", "type": "flux"}},
    "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
    "13": {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["25", 0], "guider": ["22", 0], "sampler": ["16", 0], "sigmas": ["17", 0], "latent_image": ["27", 0]}},
    "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1, "model": ["30", 0]}},
    "22": {"class_type": "BasicGuider", "inputs": {"model": ["30", 0], "conditioning": ["26", 0]}},
    "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 219670278747233}},
    "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
    "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
    "30": {"class_type": "ModelSamplingFlux", "inputs": {
        "max_shift": 1.15, "base_shift": 0.5, "width": 1024, "height": 768, "model": ["31", 0]}},
    "31": {"class_type": "LoraLoaderModelOnly", "inputs": {
        "lora_name": "flux_realism.safetensors", "strength_model": 0.8, "model": ["12", 0]}},
}  # fmt: skip
SD3_GRAPH: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd3.5_medium.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "13": {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["25", 0], "guider": ["22", 0], "sampler": ["16", 0], "sigmas": ["17", 0], "latent_image": ["27", 0]}},
    "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
    "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "karras", "steps": 28, "denoise": 1, "model": ["4", 0]}},
    "22": {"class_type": "CFGGuider", "inputs": {"cfg": 4.5, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0]}},
    "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
    "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
}  # fmt: skip
SDXL_REFINER_GRAPH: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "evening sunset scenery blue sky nature", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "10": {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "enable", "noise_seed": 721897303308196, "steps": 25, "cfg": 8, "sampler_name": "euler",
        "scheduler": "normal", "start_at_step": 0, "end_at_step": 20, "return_with_leftover_noise": "enable",
        "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "11": {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "disable", "noise_seed": 0, "steps": 25, "cfg": 8, "sampler_name": "euler",
        "scheduler": "normal", "start_at_step": 20, "end_at_step": 10000, "return_with_leftover_noise": "disable",
        "model": ["12", 0], "positive": ["15", 0], "negative": ["16", 0], "latent_image": ["10", 0]}},
    "12": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"}},
    "15": {"class_type": "CLIPTextEncode", "inputs": {"text": "evening sunset scenery blue sky nature", "clip": ["12", 1]}},
    "16": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["12", 1]}},
    "17": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["12", 2]}},
    "19": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["17", 0]}},
}  # fmt: skip
AREA_GRAPH: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "anything-v3.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 704, "height": 1280, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful landscape, (sky:1.1)", "clip": ["44", 0]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "(hands), text", "clip": ["44", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "10": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["11", 0], "conditioning_2": ["6", 0]}},
    "11": {"class_type": "ConditioningSetArea", "inputs": {
        "width": 704, "height": 384, "x": 0, "y": 0, "strength": 1.2, "conditioning": ["14", 0]}},
    "14": {"class_type": "CLIPTextEncode", "inputs": {"text": "(night:1.3) sky, (stars:1.2)", "clip": ["44", 0]}},
    "15": {"class_type": "ConditioningSetAreaPercentage", "inputs": {
        "width": 1.0, "height": 0.25, "x": 0, "y": 0.75, "strength": 1.0, "conditioning": ["17", 0]}},
    "17": {"class_type": "CLIPTextEncode", "inputs": {"text": "morning sky", "clip": ["44", 0]}},
    "19": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["15", 0], "conditioning_2": ["10", 0]}},
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 335608130539327, "steps": 13, "cfg": 8.5, "sampler_name": "dpmpp_sde", "scheduler": "normal",
        "denoise": 1.0, "model": ["4", 0], "positive": ["19", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "44": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["4", 1]}},
}  # fmt: skip
HIRES_GRAPH: dict[str, Any] = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 5, "steps": 20, "cfg": 7, "sampler_name": "euler", "scheduler": "normal", "denoise": 1,
        "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle", "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["10", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "first", "images": ["8", 0]}},
    "10": {"class_type": "LoraLoader", "inputs": {
        "lora_name": "castles.safetensors", "strength_model": 0.7, "strength_clip": 1.0, "model": ["13", 0], "clip": ["13", 1]}},
    "13": {"class_type": "LoraLoader", "inputs": {
        "lora_name": "detail.safetensors", "strength_model": 0.5, "strength_clip": 0.5, "model": ["14", 0], "clip": ["4", 1]}},
    "14": {"class_type": "HypernetworkLoader", "inputs": {"hypernetwork_name": "anime.pt", "strength": 0.3, "model": ["4", 0]}},
    "20": {"class_type": "LatentUpscaleBy", "inputs": {"upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["3", 0]}},
    "21": {"class_type": "KSampler", "inputs": {
        "seed": 6, "steps": 10, "cfg": 7, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.5,
        "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["20", 0]}},
    "22": {"class_type": "VAEDecode", "inputs": {"samples": ["21", 0], "vae": ["4", 2]}},
    "23": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["24", 0], "image": ["22", 0]}},
    "24": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
    "25": {"class_type": "SaveImage", "inputs": {"filename_prefix": "final", "images": ["23", 0]}},
}  # fmt: skip


def test_comfyui_sampler_custom_advanced_flux_graph() -> None:
    params = parse_comfyui_prompt(FLUX_GRAPH)
    assert (params.prompt, params.negative_prompt) == ("a (red:1.2) fox in the snow", "")
    assert (params.sampler, params.scheduler, params.steps, params.seed) == ("euler", "simple", 20, 219670278747233)
    # BasicGuider runs no classifier-free guidance: CFG scale 1; Flux's guidance is Forge's "Distilled CFG Scale"
    assert (params.cfg_scale, params.extra["Distilled CFG Scale"]) == (1.0, "3.5")
    assert (params.width, params.height, params.denoising_strength) == (1024, 768, 1.0)
    assert (params.model, params.loras) == ("flux1-dev.safetensors", (("flux_realism.safetensors", 0.8),))
    assert params.extra["VAE"] == "ae.safetensors"
    assert params.extra["Text encoders"] == "t5xxl_fp16.safetensors, clip_l.safetensors"
    assert "node 30 (ModelSamplingFlux: max_shift=1.15" in _notes(params.notes)


def test_comfyui_sampler_custom_advanced_with_cfg_guider() -> None:
    params = parse_comfyui_prompt(SD3_GRAPH)
    assert (params.prompt, params.negative_prompt, params.cfg_scale) == ("a lighthouse at dusk", "blurry", 4.5)
    assert (params.sampler, params.scheduler, params.steps, params.seed) == ("dpmpp_2m", "karras", 28, 42)
    assert (params.width, params.height, params.model, params.notes) == (1024, 1024, "sd3.5_medium.safetensors", ())


def test_comfyui_refiner_is_the_record_and_the_base_pass_is_named() -> None:
    params = parse_comfyui_prompt(SDXL_REFINER_GRAPH)
    notes = _notes(params.notes)
    assert params.model == "sd_xl_refiner_1.0.safetensors" and params.seed is None
    assert "the record is sampler node 11 (KSamplerAdvanced), which makes the image saved by node 19" in notes
    assert "sampler node 11 adds no noise" in notes and "runs only steps 20 to 25 of 25" in notes
    assert re.search(r"node 10 \(KSamplerAdvanced\) also samples \(euler/normal, 25 steps, cfg 8, seed 721897303308196, "
                     r"prompt 'evening sunset.*'\): the record's sampling starts from its output", notes)


def test_comfyui_area_prompts_are_kept_each_with_its_weights() -> None:
    params = parse_comfyui_prompt(AREA_GRAPH)
    assert params.prompts == (
        ConditioningPrompt("morning sky", 1.0, "100%x25% of the image at x=0%, y=75%", "17"),
        ConditioningPrompt("(night:1.3) sky, (stars:1.2)", 1.2, "704x384 at x=0, y=0", "14"),
        ConditioningPrompt("beautiful landscape, (sky:1.1)", 1.0, "", "6"),
    )
    # never one concatenated string: the prompt is the one for the whole image, and a note says so
    assert params.prompt == "beautiful landscape, (sky:1.1)"
    assert "combines 3 prompts, each kept in prompts" in _notes(params.notes)
    assert (params.clip_skip, params.negative_prompt, params.negative_prompts) == (2, "(hands), text", ())


def test_comfyui_area_prompts_reach_the_imported_record_in_compel(tmp_path: Path) -> None:
    got = import_image(_png(tmp_path / "area.png", {"prompt": json.dumps(AREA_GRAPH)}))
    texts = ["morning sky", "(night:1.3) sky, (stars:1.2)", "beautiful landscape, (sky:1.1)"]
    assert [(p.text, p.strength) for p in got.prompts] == [(convert(t, "a1111", "compel"), s) for t, s in zip(texts, (1.0, 1.2, 1.0))]
    assert got.prompt == convert(texts[2], "a1111", "compel")
    assert got.to_dict()["prompts"][1] == {"text": convert(texts[1], "a1111", "compel"), "strength": 1.2, "scope": "704x384 at x=0, y=0", "node": "14"}


def test_comfyui_the_saved_image_picks_the_record_and_every_other_sampler_is_named() -> None:
    last = parse_comfyui_prompt(HIRES_GRAPH)
    notes = _notes(last.notes)
    assert (last.seed, last.steps, last.denoising_strength, last.width, last.height) == (6, 10, 0.5, 768, 768)
    assert "the graph saves 2 images (node 9, node 25); promptlab cannot tell which one this file is, and takes the last pass" in notes
    assert "node 3 (KSampler) also samples (euler/normal, 20 steps, cfg 7, seed 5, denoise 1, prompt 'a castle')" in notes
    assert "it makes the image saved by node 9" in notes
    assert "after sampling, the saved image goes through node 23 (ImageUpscaleWithModel: upscale_model='4x-UltraSharp.pth')" in notes
    assert "node 20 (LatentUpscaleBy: upscale_method='nearest-exact', scale_by=1.5)" in notes
    # the file's own size tells the images apart
    first = parse_comfyui_prompt(HIRES_GRAPH, image_size=(512, 512))
    assert (first.seed, first.steps, first.width) == (5, 20, 512)
    assert "this file's size, 512x512, is that image's" in _notes(first.notes)


def test_comfyui_lora_loaders_become_a_list_and_the_rest_of_the_model_chain_is_named() -> None:
    params = parse_comfyui_prompt(HIRES_GRAPH)
    assert params.loras == (("detail.safetensors", 0.5), ("castles.safetensors", 0.7))
    assert params.model == "v1-5-pruned-emaonly.safetensors"
    notes = _notes(params.notes)
    assert "LoRA 'castles.safetensors' (node 10 (LoraLoader)) has strength 0.7 on the model and 1 on the text encoder" in notes
    assert "node 14 (HypernetworkLoader: hypernetwork_name='anime.pt', strength=0.3) changes the model" in notes


def test_comfyui_controlnet_and_unclip_are_named_not_dropped() -> None:
    graph = json.loads(json.dumps(SD3_GRAPH))
    graph["22"]["inputs"].update(positive=["30", 0], negative=["30", 1])
    graph["30"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "strength": 0.6, "start_percent": 0, "end_percent": 1, "positive": ["6", 0], "negative": ["7", 0],
        "control_net": ["31", 0], "image": ["32", 0]}}  # fmt: skip
    graph["31"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "canny.safetensors"}}
    graph["32"] = {"class_type": "LoadImage", "inputs": {"image": "edges.png", "upload": "image"}}
    params = parse_comfyui_prompt(graph)
    assert (params.prompt, params.negative_prompt) == ("a lighthouse at dusk", "blurry")
    assert params.notes == (
        "node 30 (ControlNetApplyAdvanced: strength=0.6, start_percent=0, end_percent=1, "
        "control_net='canny.safetensors', image='edges.png') changes the conditioning; promptlab does not carry it over",
    )


def test_comfyui_img2img_names_its_source_picture() -> None:
    graph = json.loads(json.dumps(SD3_GRAPH))
    graph["13"]["inputs"]["latent_image"] = ["40", 0]
    graph["40"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["41", 0], "vae": ["4", 2]}}
    graph["41"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}}
    params = parse_comfyui_prompt(graph)
    assert (params.width, params.height) == (None, None)
    assert params.notes == ("img2img: the sampling starts from a picture, encoded by node 40 (VAEEncode: pixels='photo.png')",)


def test_comfyui_graph_without_a_sampler_is_refused_naming_its_nodes() -> None:
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    with pytest.raises(ImportMetadataError, match=r"no sampler node .*SamplerCustomAdvanced.*'LoadImage', 'SaveImage'"):
        parse_comfyui_prompt(graph)


# InvokeAI 2.x: the Dream chunk (ldm/invoke/args.py dream_prompt_str) and sd-metadata (2.3).
DREAM = '"a lighthouse in a storm, (dramatic) [blurry, text]" -s 30 -S 1234 -W 512 -H 768 -C 7.5 -A k_euler_a -G 0.8 -ft gfpgan -U 2 0.75'


def test_invokeai_dream_chunk() -> None:
    params = parse_invokeai_dream(DREAM)
    assert (params.prompt, params.negative_prompt) == ("a lighthouse in a storm, (dramatic)", "blurry, text")
    assert (params.steps, params.seed, params.width, params.height, params.cfg_scale) == (30, 1234, 512, 768, 7.5)
    assert (params.sampler, params.source) == ("k_euler_a", "invokeai")
    assert params.extra == {"facetool_strength": "0.8", "facetool": "gfpgan", "upscale": "2 0.75"}
    # later 2.x versions leave the prompt unquoted
    bare = parse_invokeai_dream("a cat [dog] -s 10 -S 7 -W 256 -H 256 -C 5 -I init.png -f 0.6 -A ddim")
    assert (bare.prompt, bare.negative_prompt, bare.denoising_strength, bare.extra) == ("a cat", "dog", 0.6, {"init_img": "init.png"})


def test_invokeai_dream_png_imports_and_names_the_switches_it_drops(tmp_path: Path) -> None:
    got = import_image(_png(tmp_path / "000001.1234.png", {"Dream": DREAM}))
    assert got.prompt == convert("a lighthouse in a storm, (dramatic)", "compel", "compel")
    assert (got.negative_prompt, got.scheduler, got.seed) == ("blurry, text", "Euler a", 1234)
    assert got.notes == ("not in the record (the file keeps them): facetool_strength: 0.8; facetool: gfpgan; upscale: 2 0.75",)


def test_invokeai_23_sd_metadata_splits_the_negative_out_of_brackets() -> None:
    metadata = {
        "model": "stable diffusion", "model_weights": "deliberate_v2", "model_hash": "9aba26ab", "app_id": "invoke-ai/InvokeAI",
        "app_version": "2.3.0",
        "image": {"prompt": [{"prompt": "portrait of a knight, (oil painting)1.2 [cartoon, lowres]", "weight": 1.0}],
                  "steps": 40, "cfg_scale": 7, "height": 640, "width": 512, "seed": 99, "sampler": "k_dpmpp_2", "type": "txt2img",
                  "postprocessing": None, "variations": []},
    }  # fmt: skip
    params = parse_invokeai_metadata(metadata)
    assert (params.prompt, params.negative_prompt) == ("portrait of a knight, (oil painting)1.2", "cartoon, lowres")
    assert (params.model, params.model_hash, params.steps, params.seed) == ("deliberate_v2", "9aba26ab", 40, 99)
    # a weighted blend of several prompts is written in compel's blend syntax, never as text with ":weight"
    metadata["image"]["prompt"] = [{"prompt": "a cat [dog]", "weight": 0.7}, {"prompt": "a tiger", "weight": 0.3}]
    blend = parse_invokeai_metadata(metadata)
    assert (blend.prompt, blend.negative_prompt) == ('("a cat", "a tiger").blend(0.7, 0.3)', "dog")


def test_invokeai_loras_become_name_weight_pairs() -> None:
    v3 = {"positive_prompt": "a cat", "loras": [{"lora": {"model_name": "pixel-art", "base_model": "sdxl"}, "weight": 0.75}]}
    v4 = {"positive_prompt": "a cat", "loras": [{"model": {"key": "k", "hash": "h", "name": "pixel-art", "base": "sdxl", "type": "lora"}, "weight": 0.5}]}
    assert parse_invokeai_metadata(v3).loras == (("pixel-art", 0.75),)
    assert parse_invokeai_metadata(v4).loras == (("pixel-art", 0.5),)
    with pytest.raises(ImportMetadataError, match=r"'loras\[0\]' is 'pixel-art'"):
        parse_invokeai_metadata({"positive_prompt": "a cat", "loras": ["pixel-art"]})


# Fooocus's JSON scheme (modules/meta_parser.py FooocusMetadataParser: json.dumps of sorted keys).
FOOOCUS = {
    "adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion", "base_model_hash": "aeb7e9e689",
    "clip_skip": 2, "full_negative_prompt": ["(worst quality, low quality:1.4), [text]", "anime, cartoon"],
    "full_prompt": ["cinematic still a red fox . (film grain:1.2), moody", "a red fox, intricate, highly detailed"],
    "guidance_scale": 4, "loras": [["sd_xl_offset_example-lora_1.0", 0.1, "4852686128"]], "metadata_scheme": "fooocus",
    "negative_prompt": "", "performance": "Speed", "prompt": "a red fox", "prompt_expansion": "a red fox, intricate, highly detailed",
    "refiner_model": "None", "refiner_switch": 0.5, "resolution": "(896, 1152)", "sampler": "dpmpp_2m_sde_gpu",
    "scheduler": "karras", "seed": "6952411511246973023", "sharpness": 2, "steps": 30,
    "styles": "['Fooocus V2', 'Fooocus Cinematic']", "vae": "Default (model)", "version": "Fooocus v2.5.5",
}  # fmt: skip


def test_fooocus_json_reads_what_fooocus_rendered(tmp_path: Path) -> None:
    path = _png(tmp_path / "fooocus.png", {"parameters": json.dumps(FOOOCUS, sort_keys=True), "fooocus_scheme": "fooocus"})
    params = read_image_metadata(path).parameters
    assert params.source == "fooocus"
    assert params.prompt == "cinematic still a red fox . (film grain:1.2), moody BREAK a red fox, intricate, highly detailed"
    assert params.negative_prompt == "(worst quality, low quality:1.4), [text] BREAK anime, cartoon"
    assert (params.seed, params.steps, params.cfg_scale, params.width, params.height) == (6952411511246973023, 30, 4.0, 896, 1152)
    assert (params.model, params.model_hash, params.clip_skip) == ("juggernautXL_v8Rundiffusion", "aeb7e9e689", 2)
    assert params.loras == (("sd_xl_offset_example-lora_1.0", 0.1),)
    got = import_image(path)
    assert got.prompt and got.num_inference_steps == 30 and got.scheduler == "DPM++ 2M SDE Karras"
    notes = _notes(got.notes)
    assert "joined here with BREAK" in notes and "Raw prompt: a red fox" in notes and "sharpness: 2" in notes
    assert "made with LoRAs (sd_xl_offset_example-lora_1.0 0.1; kept in loras)" in notes


def test_ruinedfooocus_and_swarmui_json(tmp_path: Path) -> None:
    ruined = {
        "Prompt": "a sunflower field, (vignette:1.2)", "Negative": "blur", "steps": 30, "cfg": 8.5, "width": 1152,
        "height": 896, "seed": 3864674281, "sampler_name": "dpmpp_2m_sde_gpu", "scheduler": "karras",
        "base_model_name": "sd_xl_base_1.0_0.9vae.safetensors", "base_model_hash": "be9edd61",
        "loras": [["4852686128", "0.1 - sd_xl_offset_example-lora_1.0.safetensors"]], "start_step": 0, "denoise": None,
        "clip_skip": 1, "software": "RuinedFooocus",
    }  # fmt: skip
    got = import_image(_png(tmp_path / "ruined.png", {"parameters": json.dumps(ruined)}))
    assert (got.source, got.prompt, got.negative_prompt) == ("ruinedfooocus", convert(ruined["Prompt"], "a1111", "compel"), "blur")
    assert (got.seed, got.width, got.scheduler, got.loras) == (3864674281, 1152, "DPM++ 2M SDE Karras", (("sd_xl_offset_example-lora_1.0.safetensors", 0.1),))
    swarm = {
        "sui_image_params": {
            "prompt": "a cat on a roof, (sunset:1.2)", "negativeprompt": "blurry", "model": "sdxl/juggernautXL", "seed": 12345,
            "steps": 30, "cfgscale": 7.0, "aspectratio": "Custom", "width": 1024, "height": 1536, "sampler": "euler",
            "scheduler": "karras", "loras": ["detail"], "loraweights": ["0.6"], "clipstopatlayer": -2,
            "swarm_version": "0.9.5.2",
        },
        "sui_models": [{"name": "detail.safetensors", "param": "loras", "hash": "0xabc"}],
    }  # fmt: skip
    got = import_image(_png(tmp_path / "swarm.png", {"parameters": json.dumps(swarm, indent=2)}))
    prompt = convert(swarm["sui_image_params"]["prompt"], "a1111", "compel")
    assert (got.source, got.prompt, got.negative_prompt, got.clip_skip) == ("swarmui", prompt, "blurry", 1)
    assert (got.seed, got.height, got.guidance_scale, got.model, got.loras) == (12345, 1536, 7.0, "sdxl/juggernautXL", (("detail", 0.6),))
    assert "swarm_version: 0.9.5.2" in _notes(got.notes) and "sui_models" in _notes(got.notes)


def test_unknown_json_in_parameters_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _png(tmp_path / "mystery.png", {"parameters": json.dumps({"positive": "a cat", "cfg": 7})})
    with pytest.raises(ImportMetadataError, match=r"mystery\.png: 'parameters' chunk holds JSON with keys \['cfg', 'positive'\]"):
        import_image(path)
    result = runner.invoke(app, ["import", str(path)])
    assert result.exit_code != 0 and "neither A1111's infotext nor the JSON of Fooocus" in str(result.exception)


# NovelAI: tEXt chunks Title, Description (the prompt), Software, Source, Comment (JSON).
NOVELAI = {
    "Title": "AI generated image", "Description": "masterpiece, {{cat}}, [space], (icon)", "Software": "NovelAI",
    "Source": "Stable Diffusion XL C1E1DE52",
    "Comment": json.dumps({"prompt": "masterpiece, {{cat}}, [space], (icon)", "steps": 28, "height": 1216, "width": 832,
                           "scale": 5.0, "uncond_scale": 1.0, "cfg_rescale": 0.0, "seed": 2253955223, "n_samples": 1,
                           "noise_schedule": "native", "sampler": "k_euler_ancestral", "sm": False, "sm_dyn": False,
                           "strength": 0.7, "noise": 0.0, "uc": "lowres, {bad anatomy}"}),
}  # fmt: skip


def test_novelai_comment_and_its_emphasis(tmp_path: Path) -> None:
    got = import_image(_png(tmp_path / "nai.png", NOVELAI))
    assert (got.source, got.seed, got.num_inference_steps, got.guidance_scale) == ("novelai", 2253955223, 28, 5.0)
    assert (got.width, got.height, got.scheduler, got.model_hash) == (832, 1216, "Euler a", "C1E1DE52")
    # {x} is x1.05 and [x] /1.05 to NovelAI; its round brackets are plain text
    assert novelai_to_a1111(NOVELAI["Description"]) == "masterpiece, (cat:1.1025), (space:0.952380952), \\(icon\\)"
    assert got.prompt == convert(novelai_to_a1111(NOVELAI["Description"]), "a1111", "compel")
    assert got.negative_prompt == convert("lowres, (bad anatomy:1.05)", "a1111", "compel")
    notes = _notes(got.notes)
    assert "uncond_scale: 1.0" in notes and "cfg_rescale: 0.0" in notes


def _stealth_png(path: Path, text: str, signature: str) -> Path:
    """An RGBA image carrying ``text`` in its pixels' lowest bits, as A1111's stealth-pnginfo writes it."""
    payload = gzip.compress(text.encode()) if signature.endswith("comp") else text.encode()
    data = signature.encode() + (len(payload) * 8).to_bytes(4, "big") + payload
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    pixels = np.full((32, 48, 4), 200, dtype=np.uint8)
    planes = pixels[:, :, 3:] if "png" in signature else pixels[:, :, :3]
    column_major = planes.transpose(1, 0, 2).reshape(-1).copy()
    column_major[: len(bits)] = (column_major[: len(bits)] & 0xFE) | bits
    planes[...] = column_major.reshape(planes.shape[1], planes.shape[0], planes.shape[2]).transpose(1, 0, 2)
    Image.fromarray(pixels, "RGBA").save(path)
    return path


@pytest.mark.parametrize("signature", ["stealth_pnginfo", "stealth_pngcomp", "stealth_rgbinfo", "stealth_rgbcomp"])
def test_a1111_stealth_infotext_in_the_pixels(tmp_path: Path, signature: str) -> None:
    text = "a circle\nNegative prompt: a square\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 48x32"
    meta = read_image_metadata(_stealth_png(tmp_path / "stealth.png", text, signature))
    assert meta.chunks == {"parameters": text}
    assert (meta.parameters.prompt, meta.parameters.seed, meta.parameters.width) == ("a circle", 5, 48)
    assert meta.parameters.notes == (f"read from the pixels' lowest bits ({signature})",)


def test_a1111_lora_tags_leave_the_prompt_as_a1111_takes_them_out(tmp_path: Path) -> None:
    infotext = (
        "a knight, <lora:add_detail:0.6> (armor:1.2), <lora:style:0.4:0.9>, <hypernet:anime:1>\n"
        "Negative prompt: blurry, <lora:bad_hands:-1>\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 3, Size: 512x512, Lora hashes: \"add_detail: 7c6bad76eb54\""
    )
    got = import_image(_png(tmp_path / "knight.png", {"parameters": infotext}))
    assert got.loras == (("add_detail", 0.6), ("style", 0.9), ("bad_hands", -1.0))
    assert "<" not in got.prompt and "<" not in got.negative_prompt
    notes = _notes(got.notes)
    assert "<lora:style:0.4:0.9> weighs the text encoder 0.4 and the UNet 0.9; loras keeps the UNet's" in notes
    assert "<hypernet:anime:1> is taken out of the prompt, as a1111 takes it out; promptlab does not apply it" in notes
    assert "not in the record (the file keeps them): Lora hashes: add_detail: 7c6bad76eb54" in notes


def test_store_keeps_what_the_record_holds_beyond_its_columns(tmp_path: Path) -> None:
    path = _png(tmp_path / "area.png", {"prompt": json.dumps(HIRES_GRAPH)})
    imported = import_image(path)
    with open_store() as store:
        run = store_imported(store, imported)
        view = store.get_run(run.id)
    assert view.params["source_loras"] == [["detail.safetensors", 0.5], ["castles.safetensors", 0.7]]
    assert view.params["import_notes"] == list(imported.notes)


# The real files: each one's chunks, read with Pillow, are the truth the import is held to.


def _info(name: str) -> dict[str, Any]:
    with Image.open(SAMPLES / name) as image:
        return dict(image.info)


def _a1111_truth(text: str) -> dict[str, Any]:
    lines = text.split("\n")
    fields = dict(re.findall(r"(\w[\w ]*): ([^,]+)", lines[-1]))
    width, height = map(int, fields["Size"].split("x"))
    return {"prompt": lines[0], "negative": lines[1].removeprefix("Negative prompt: "), "seed": int(fields["Seed"]),
            "steps": int(fields["Steps"]), "cfg": float(fields["CFG scale"]), "size": (width, height), "model": fields["Model"]}  # fmt: skip


def _a1111_got(got: Any) -> dict[str, Any]:
    return {"prompt": got.source_prompt, "negative": got.source_negative_prompt, "seed": got.seed, "steps": got.num_inference_steps,
            "cfg": got.guidance_scale, "size": (got.width, got.height), "model": got.model}  # fmt: skip


@needs_samples
def test_sample_a1111_png_and_jpeg() -> None:
    png = import_image(SAMPLES / "AUTOMATIC1111_automatic1111_cropped.png")
    assert _a1111_got(png) == _a1111_truth(_info("AUTOMATIC1111_automatic1111_cropped.png")["parameters"])
    assert (png.prompt, png.scheduler, png.notes) == ("photo of a duck", "UniPC", ())
    with Image.open(SAMPLES / "AUTOMATIC1111_automatic1111_cropped.jpg") as image:
        raw = image.getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment]
    assert raw[:8] == b"UNICODE\0"
    jpeg = import_image(SAMPLES / "AUTOMATIC1111_automatic1111_cropped.jpg")
    assert _a1111_got(jpeg) == _a1111_truth(raw[8:].decode("utf-16-be"))


@needs_samples
def test_import_prints_each_value_once_aligned() -> None:
    """The text output names each value once, by diffusers' name (JSON keeps A1111's as aliases)."""
    result = runner.invoke(app, ["import", str(SAMPLES / "AUTOMATIC1111_automatic1111_cropped.png")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()[1:]
    keys = [line.split(":")[0].strip() for line in lines]
    assert "num_inference_steps" in keys and not {"steps", "cfg_scale", "sampler"} & set(keys)
    assert len({line.index(value) for line, value in zip(lines, ["a1111", "photo of a duck"])}) == 1
    assert "  source_negative_prompt: monochrome" in lines


@needs_samples
def test_sample_a1111_stealth() -> None:
    with Image.open(SAMPLES / "AUTOMATIC1111_automatic1111_stealth.png") as image:
        assert image.mode == "RGBA" and "parameters" not in image.info
        bits = np.asarray(image)[:, :, 3].T.reshape(-1) & 1
    data = np.packbits(bits).tobytes()
    assert data[:15] == b"stealth_pngcomp"
    text = gzip.decompress(data[19 : 19 + int.from_bytes(data[15:19], "big") // 8]).decode()
    got = import_image(SAMPLES / "AUTOMATIC1111_automatic1111_stealth.png")
    assert _a1111_got(got) == _a1111_truth(text)
    assert (got.scheduler, got.clip_skip, got.model_hash) == ("Euler", 1, "15012c538f")
    assert got.notes[0] == "read from the pixels' lowest bits (stealth_pngcomp)"


def _graph(name: str) -> dict[str, Any]:
    return dict(json.loads(_info(name)["prompt"]))


@needs_samples
def test_sample_comfyui_img2img() -> None:
    graph = _graph("ComfyUI_img2img_cropped.png")
    got = import_image(SAMPLES / "ComfyUI_img2img_cropped.png")
    sampler = graph["3"]["inputs"]
    assert (got.seed, got.num_inference_steps, got.guidance_scale, got.strength) == (
        sampler["seed"], sampler["steps"], sampler["cfg"], sampler["denoise"])
    assert (got.source_prompt, got.source_negative_prompt) == (graph["6"]["inputs"]["text"], graph["7"]["inputs"]["text"])
    assert got.model == graph["4"]["inputs"]["ckpt_name"]
    # ComfyUI's first versions named samplers after k-diffusion's functions
    assert (got.source_sampler, got.scheduler) == ("sample_dpmpp_2m", "DPM++ 2M")
    assert got.notes == ("img2img: the sampling starts from a picture, encoded by node 12 (VAEEncode: pixels='example.png')",)


@needs_samples
def test_sample_comfyui_area_prompts() -> None:
    graph = _graph("ComfyUI_night_evening_day_morning_cropped.png")
    # cropped to 1x1, the file cannot say which of its two saved images it is: the last pass is the record
    got = import_image(SAMPLES / "ComfyUI_night_evening_day_morning_cropped.png")
    assert (got.seed, got.source_prompt) == (graph["24"]["inputs"]["seed"], graph["26"]["inputs"]["text"])
    assert "node 3 (KSampler) also samples" in _notes(got.notes) and "and 4 more prompts" in _notes(got.notes)
    # at the first pass's size, the first pass is the record: five prompts, each with its area and strength
    first = parse_comfyui_prompt(graph, image_size=(704, 1280))
    areas = {node: graph[node]["inputs"] for node in ("34", "18", "11", "15")}
    assert first.prompts == tuple(
        ConditioningPrompt(graph[area["conditioning"][0]]["inputs"]["text"], area["strength"],
                           f"{area['width']}x{area['height']} at x={area['x']}, y={area['y']}", area["conditioning"][0])
        for area in areas.values()
    ) + (ConditioningPrompt(graph["6"]["inputs"]["text"], 1.0, "", "6"),)  # fmt: skip
    assert first.prompt == graph["6"]["inputs"]["text"] and first.clip_skip == 2


@needs_samples
def test_sample_comfyui_six_samplers() -> None:
    graph = _graph("ComfyUI_noisy_latents_3_subjects_cropped.png")
    got = import_image(SAMPLES / "ComfyUI_noisy_latents_3_subjects_cropped.png")
    assert (got.seed, got.num_inference_steps, got.guidance_scale) == (1084614416978598, 9, 5.5)
    assert got.source_prompt == graph["54"]["inputs"]["text"]
    notes = _notes(got.notes)
    samplers = sorted(node for node, value in graph.items() if "Sampler" in value["class_type"])
    assert len(samplers) == 6
    for node in samplers:
        if node != "24":
            assert f"node {node} ({graph[node]['class_type']}) also samples" in notes


@needs_samples
def test_sample_comfyui_unclip_two_passes() -> None:
    graph = _graph("ComfyUI_unclip_2pass_cropped.png")
    got = import_image(SAMPLES / "ComfyUI_unclip_2pass_cropped.png")
    assert (got.seed, got.model, got.source_prompt) == (graph["41"]["inputs"]["seed"], "cardosAnimated_v20.safetensors", graph["49"]["inputs"]["text"])
    first = parse_comfyui_prompt(graph, image_size=(1280, 704))
    assert (first.seed, first.model) == (graph["3"]["inputs"]["seed"], graph["32"]["inputs"]["ckpt_name"])
    assert first.prompt == graph["6"]["inputs"]["text"]
    notes = _notes(first.notes)
    assert "node 19 (unCLIPConditioning: strength=0.5" in notes and "'mountains.png'" in notes and "'sunset.png'" in notes


@needs_samples
def test_sample_fooocus() -> None:
    data = json.loads(_info("Fooocus_fooocus1_cropped.png")["parameters"])
    got = import_image(SAMPLES / "Fooocus_fooocus1_cropped.png")
    assert got.source == "fooocus" and got.prompt
    assert got.source_prompt == " BREAK ".join(data["full_prompt"])
    assert got.source_negative_prompt == " BREAK ".join(data["full_negative_prompt"])
    assert (got.seed, got.num_inference_steps, got.guidance_scale) == (int(data["seed"]), data["steps"], data["guidance_scale"])
    assert (got.width, got.height) == tuple(int(n) for n in re.findall(r"\d+", data["resolution"]))
    assert (got.model, got.model_hash, got.scheduler) == (data["base_model"], data["base_model_hash"], "DPM++ 2M SDE Karras")
    assert f"Raw prompt: {data['prompt']}" in _notes(got.notes)


@needs_samples
def test_sample_invokeai_2_dream_and_sd_metadata() -> None:
    dream = _info("InvokeAI_invokeai_dream1.png")["Dream"]
    quoted = re.match(r'"(.*)"', dream).group(1)  # type: ignore[union-attr]
    for name in ("InvokeAI_invokeai_dream1.png", "InvokeAI_invokeai_sdmeta1.png"):
        got = import_image(SAMPLES / name)
        assert got.source_prompt == re.sub(r"\s*\[.*?\]", "", quoted).strip()
        assert got.source_negative_prompt == re.search(r"\[(.*?)\]", quoted).group(1)  # type: ignore[union-attr]
        assert (got.num_inference_steps, got.seed, got.width, got.height, got.guidance_scale) == (50, 2980747362, 512, 768, 5.0)
        assert got.scheduler == "LMS"
    sd_metadata = json.loads(_info("InvokeAI_invokeai_sdmeta1.png")["sd-metadata"])
    got = import_image(SAMPLES / "InvokeAI_invokeai_sdmeta1.png")
    assert (got.model, got.model_hash) == (sd_metadata["model_weights"], sd_metadata["model_hash"])


@needs_samples
def test_sample_invokeai_3() -> None:
    data = json.loads(_info("InvokeAI_invokeai_imeta1.png")["invokeai_metadata"])
    got = import_image(SAMPLES / "InvokeAI_invokeai_imeta1.png")
    assert (got.source_prompt, got.source_negative_prompt) == (data["positive_prompt"], data["negative_prompt"])
    assert (got.seed, got.num_inference_steps, got.guidance_scale, got.width) == (data["seed"], data["steps"], data["cfg_scale"], data["width"])
    assert (got.model, got.scheduler) == (data["model"]["model_name"], "Euler")
    assert "ipAdapters" in _notes(got.notes)


@needs_samples
def test_sample_novelai() -> None:
    info = _info("NovelAI_novelai1_cropped.png")
    comment = json.loads(info["Comment"])
    got = import_image(SAMPLES / "NovelAI_novelai1_cropped.png")
    assert (got.source_prompt, got.source_negative_prompt) == (info["Description"], comment["uc"])
    assert (got.seed, got.num_inference_steps, got.guidance_scale) == (comment["seed"], comment["steps"], comment["scale"])
    assert (got.scheduler, got.model) == ("Euler a", info["Source"])


@needs_samples
def test_cli_imports_every_sample() -> None:
    files = sorted(str(path) for path in SAMPLES.iterdir() if path.suffix in (".png", ".jpg"))
    result = runner.invoke(app, ["import", *files, "--format", "json"])
    assert result.exit_code == 0, result.output
    prompts = json.loads(result.stdout)["prompts"]
    assert [p["file"] for p in prompts] == files
    assert all(p["prompt"] and p["seed"] is not None for p in prompts)
