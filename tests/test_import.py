"""Importing prompts from other tools' images and style files, and into the store and the vocabulary."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from promptlab.errors import ImportMetadataError, VocabError
from promptlab.export import export_best
from promptlab.importer import (
    import_image,
    import_paths,
    import_styles,
    imported_prompt,
    load_styles,
    save_styles_as_vocab,
    store_imported,
)
from promptlab.metadata import GenerationParameters, ImageMetadata, run_png, write_png
from promptlab.prompt import Prompt, Term, parse_a1111, parse_compel
from promptlab.render.schedulers import A1111_SCHEDULE_TWINS, COMFYUI_SAMPLERS, INVOKEAI_SCHEDULERS, SCHEDULERS
from promptlab.store import open_store
from promptlab.vocab import load_vocab

A1111_LABELS = {spec.label for spec in SCHEDULERS.values()}

A1111_INFOTEXT = (
    "masterpiece, (red fox:1.2), [blurry], in the snow, <lora:add_detail:0.6>\n"
    "Negative prompt: EasyNegative, (worst quality, low quality:1.4)\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 2316537914, Size: 512x768, "
    "Model hash: 7f96a1a9ca, Model: anything-v5, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, "
    "Version: v1.10.1"
)
COMFYUI_GRAPH: dict[str, Any] = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "dpmpp_2m_sde_gpu", "scheduler": "karras",
        "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a [glass] bottle, (purple galaxy:1.3), \\(night\\)", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}  # fmt: skip
INVOKEAI_METADATA: dict[str, Any] = {
    "generation_mode": "txt2img",
    "positive_prompt": "a cozy cabin, (warm light)1.2, snow-",
    "negative_prompt": "people",
    "width": 768,
    "height": 512,
    "seed": 3357917823,
    "steps": 30,
    "cfg_scale": 7.5,
    "scheduler": "dpmpp_2m_k",
    "model": {"name": "stable-diffusion-v1-5", "hash": "abc", "base": "sd-1"},
    "clip_skip": 0,
}
FOOOCUS_STYLES = [
    {
        "name": "Fooocus Sharp",
        "prompt": "cinematic still {prompt} . emotional, harmonious, vignette, 4k epic detailed, shot on kodak, film grain",
        "negative_prompt": "anime, cartoon, graphic, (blur, blurry, bokeh), text, painting, ugly",
    },
    {
        "name": "Fooocus Masterpiece",
        "prompt": "(masterpiece), (best quality), (ultra-detailed), {prompt}, illustration, detailed eyes",
        "negative_prompt": "longbody, lowres, bad anatomy, bad hands, missing fingers,extra digit, worst quality",
    },
    {"name": "Fooocus V2"},
    {"name": "sai-anime", "prompt": "anime artwork {prompt} . anime style, key visual, vibrant", "negative_prompt": ""},
]


def _png(path: Path, chunks: dict[str, str], colour: tuple[int, int, int] = (10, 120, 30)) -> Path:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 24), colour).save(path, pnginfo=info)
    return path


def _terms(prompt: Prompt) -> tuple[str, list[tuple[str, float]]]:
    """Subject and (text, weight) pairs; weights to 6 decimals, as compel text writes them (0.909091 for A1111's [x])."""
    return prompt.subject, [(t.text, round(t.weight, 6)) for t in prompt.terms]


def test_a1111_png(tmp_path: Path) -> None:
    path = _png(tmp_path / "00012-2316537914.png", {"parameters": A1111_INFOTEXT})
    got = import_image(path)
    assert got.source == "a1111" and got.file == path
    # A1111 takes <lora:...> out of the prompt before encoding; the LoRA is in loras
    assert _terms(parse_compel(got.prompt)) == _terms(parse_a1111(A1111_INFOTEXT.split("\n")[0].replace("<lora:add_detail:0.6>", "")))
    assert parse_compel(got.prompt).terms[0] == Term("red fox", 1.2)
    assert _terms(parse_compel(got.negative_prompt)) == ("EasyNegative", [("worst quality", 1.4), ("low quality", 1.4)])
    assert (got.seed, got.num_inference_steps, got.guidance_scale, got.width, got.height) == (2316537914, 28, 6.5, 512, 768)
    assert (got.scheduler, got.source_sampler, got.source_scheduler) == ("DPM++ 2M Karras", "DPM++ 2M", "Karras")
    assert (got.model, got.clip_skip, got.strength, got.model_hash) == ("anything-v5", 1, 0.45, "7f96a1a9ca")
    assert got.loras == (("add_detail", 0.6),)
    assert "made with LoRAs (add_detail 0.6; kept in loras); promptlab does not load them" in got.notes
    # every field the record has no place for is named
    assert "not in the record (the file keeps them): Hires upscale: 2; Version: v1.10.1" in got.notes


def test_to_dict_prints_what_was_read(tmp_path: Path) -> None:
    data = import_image(_png(tmp_path / "a.png", {"parameters": A1111_INFOTEXT})).to_dict()
    assert json.loads(json.dumps(data)) == data
    wanted = {"prompt", "negative_prompt", "seed", "steps", "num_inference_steps", "cfg_scale", "guidance_scale",
              "sampler", "scheduler", "width", "height", "model"}  # fmt: skip
    assert wanted <= set(data)
    assert (data["steps"], data["cfg_scale"], data["sampler"]) == (28, 6.5, "DPM++ 2M Karras")
    assert data["num_inference_steps"] == data["steps"] and data["guidance_scale"] == data["cfg_scale"]


def test_comfyui_png(tmp_path: Path) -> None:
    path = _png(tmp_path / "ComfyUI_00001_.png", {"prompt": json.dumps(COMFYUI_GRAPH), "workflow": "{}"})
    got = import_image(path)
    assert got.source == "comfyui"
    # ComfyUI reads [glass] as text and \( \) as literal brackets
    assert _terms(parse_compel(got.prompt)) == ("a [glass] bottle", [("purple galaxy", 1.3), ("(night)", 1.0)])
    assert got.negative_prompt == "text, watermark"
    assert (got.scheduler, got.source_sampler, got.source_scheduler) == ("DPM++ 2M SDE Karras", "dpmpp_2m_sde_gpu", "karras")
    assert (got.seed, got.num_inference_steps, got.guidance_scale, got.width, got.height) == (156680208700286, 20, 8.0, 512, 640)
    assert got.model == "v1-5-pruned-emaonly.safetensors" and got.notes == ()


def test_invokeai_png(tmp_path: Path) -> None:
    got = import_image(_png(tmp_path / "invoke.png", {"invokeai_metadata": json.dumps(INVOKEAI_METADATA)}))
    assert got.source == "invokeai"
    assert _terms(parse_compel(got.prompt)) == ("a cozy cabin", [("warm light", 1.2), ("snow", 0.9)])
    assert (got.scheduler, got.model, got.clip_skip) == ("DPM++ 2M Karras", "stable-diffusion-v1-5", 0)
    assert (got.seed, got.num_inference_steps, got.guidance_scale, got.width, got.height) == (3357917823, 30, 7.5, 768, 512)


def test_promptlab_png_keeps_its_own_record(tmp_path: Path) -> None:
    prompt = Prompt("a red fox", (Term("oil painting", 1.21), Term("pop-art")))
    params = GenerationParameters(
        prompt=prompt.to_a1111(), negative_prompt="blurry", steps=4, sampler="euler_a", cfg_scale=7.0, seed=3,
        width=64, height=64, model="tiny-sd",
    )  # fmt: skip
    record = {"prompt": prompt.to_compel(), "negative_prompt": "blurry", "model": "tiny-sd", "params": {"scheduler": "euler_a"}}
    path = tmp_path / "run.png"
    write_png(Image.new("RGB", (64, 64)), path, params, promptlab_record=record)
    got = import_image(path)
    assert (got.source, got.prompt, got.negative_prompt, got.scheduler) == ("promptlab", prompt.to_compel(), "blurry", "euler_a")
    assert (got.seed, got.num_inference_steps, got.model) == (3, 4, "tiny-sd")
    assert got.to_prompt() == Prompt("a red fox", prompt.terms, negative="blurry")


def _meta(source: str, sampler: str | None, scheduler: str | None) -> ImageMetadata:
    params = GenerationParameters(prompt="a fox", sampler=sampler, scheduler=scheduler, source=source)  # type: ignore[arg-type]
    return ImageMetadata(path=Path("x.png"), parameters=params, chunks={})


@pytest.mark.parametrize("sampler", sorted(COMFYUI_SAMPLERS))
@pytest.mark.parametrize("schedule", ["normal", "karras", "exponential"])
def test_every_comfyui_sampler_maps_to_a_renderable_name_or_says_why_not(sampler: str, schedule: str) -> None:
    got = imported_prompt(_meta("comfyui", sampler, schedule))
    if got.scheduler is None:
        assert got.notes and sampler in got.notes[0] and schedule in got.notes[0]
        assert schedule != "normal"
    else:
        assert got.scheduler in A1111_LABELS and got.notes == ()
        assert got.scheduler.endswith("Karras") == (schedule == "karras")
    assert (got.source_sampler, got.source_scheduler) == (sampler, schedule)


def test_comfyui_examples_from_the_issue() -> None:
    assert imported_prompt(_meta("comfyui", "dpmpp_2m", "karras")).scheduler == "DPM++ 2M Karras"
    assert imported_prompt(_meta("comfyui", "euler_ancestral", "normal")).scheduler == "Euler a"
    assert imported_prompt(_meta("comfyui", "ddim", "ddim_uniform")).scheduler == "DDIM"
    assert imported_prompt(_meta("comfyui", "lcm", "normal")).scheduler is None


@pytest.mark.parametrize("name", sorted(INVOKEAI_SCHEDULERS))
def test_every_invokeai_scheduler_maps_to_a_renderable_name(name: str) -> None:
    assert imported_prompt(_meta("invokeai", name, None)).scheduler in A1111_LABELS


def test_schedule_twins_are_the_single_names_a1111_wrote_before_1_9() -> None:
    # the names A1111 gave a sampler and its schedule before 1.9 (modules/sd_samplers_kdiffusion.py), for the
    # samplers promptlab renders: derived from SCHEDULERS, checked here against that list
    karras = ["LMS", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE"]
    assert A1111_SCHEDULE_TWINS["Karras"] == {sampler: f"{sampler} Karras" for sampler in karras}
    assert A1111_SCHEDULE_TWINS["Exponential"] == {"DPM++ 2M SDE": "DPM++ 2M SDE Exponential"}
    assert set(COMFYUI_SAMPLERS.values()) | set(INVOKEAI_SCHEDULERS.values()) <= set(SCHEDULERS)


def test_a1111_karras_twins_are_renderable_and_schedule_types_join() -> None:
    assert A1111_SCHEDULE_TWINS["Karras"]["DPM++ SDE"] == "DPM++ SDE Karras"
    assert {sampler for twins in A1111_SCHEDULE_TWINS.values() for pair in twins.items() for sampler in pair} <= A1111_LABELS
    assert imported_prompt(_meta("a1111", "DPM++ SDE", "Karras")).scheduler == "DPM++ SDE Karras"
    assert imported_prompt(_meta("a1111", "Euler a", "Automatic")).scheduler == "Euler a"
    assert imported_prompt(_meta("a1111", "DPM++ 2M Karras", None)).scheduler == "DPM++ 2M Karras"
    unset = imported_prompt(_meta("a1111", "Euler", "Simple"))
    assert unset.scheduler is None and "'Simple'" in unset.notes[0]


@pytest.mark.parametrize(
    ("sampler", "schedule", "expected"),
    [
        # A1111 1.9+'s Automatic is the sampler's own schedule (modules/sd_samplers_kdiffusion.py)
        ("DPM++ 2M", "Automatic", "DPM++ 2M Karras"),
        ("DPM2 a", "Automatic", "DPM2 a Karras"),
        ("DPM++ 2M SDE", "Automatic", "DPM++ 2M SDE Exponential"),
        ("Euler", "Automatic", "Euler"),
        ("DPM++ 2M", "Uniform", "DPM++ 2M"),
        ("DPM++ 2M SDE", "Exponential", "DPM++ 2M SDE Exponential"),
        # an infotext from before 1.9 names the schedule in the sampler, or means the model's own
        ("DPM++ 2M", None, "DPM++ 2M"),
        ("DPM++ 2M SDE Karras", None, "DPM++ 2M SDE Karras"),
        # timestep samplers take no schedule type
        ("UniPC", "Automatic", "UniPC"),
        ("PLMS", None, "PLMS"),
    ],
)
def test_a1111_schedule_types_read_as_a1111_reads_them(sampler: str, schedule: str | None, expected: str) -> None:
    got = imported_prompt(_meta("a1111", sampler, schedule))
    assert (got.scheduler, got.notes) == (expected, ())
    assert expected in A1111_LABELS


def test_a1111_schedule_types_promptlab_cannot_name_are_noted() -> None:
    spaced = imported_prompt(_meta("a1111", "DPM++ 2M", "SGM Uniform"))
    assert spaced.scheduler == "DPM++ 2M" and "'SGM Uniform'" in spaced.notes[0] and "own timestep spacing" in spaced.notes[0]
    heun = imported_prompt(_meta("a1111", "DPM++ 2M SDE Heun", "Automatic"))
    assert heun.scheduler is None and "'Automatic' (Exponential)" in heun.notes[0]


_A1111_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "interop-samples" / "AUTOMATIC1111_automatic1111_cropped.png"


@pytest.mark.skipif(not _A1111_SAMPLE.is_file(), reason=f"no {_A1111_SAMPLE}: the real A1111 image lives in ../shared")
def test_real_a1111_image_reads_as_written() -> None:
    with Image.open(_A1111_SAMPLE) as image:
        text = image.info["parameters"]
    got = import_image(_A1111_SAMPLE)
    # an A1111 from before 1.9: "Sampler: UniPC" and no schedule type
    assert (got.prompt, got.negative_prompt, got.scheduler, got.seed) == ("photo of a duck", "monochrome", "UniPC", 235284042)
    # its model hash is sha256[:10], the form promptlab writes
    assert re.search(r"Model hash: [0-9a-f]{10},", text)


_ROUND_TRIP_PROMPT = "a (red)1.5 circle on a black background, ((large)1.2, (left)0.8)"
_ROUND_TRIP_NEGATIVE = "ugly, blurry++, (text)1.3, (gold star)-"


def _fragments(text: str) -> list[tuple[str, float]]:
    """compel's (text, weight) fragments, whitespace aside, weights to 1e-6."""
    from promptlab.prompt import compel_parts

    return [(" ".join(t.split()), round(w, 6)) for part in compel_parts(text) for t, w in part if t.strip()]


@pytest.mark.parametrize(
    ("model", "scheduler"),
    [
        ("micro", None),
        ("micro", "DPM++ 2M Karras"),
        ("micro", "DPM++ 2M"),
        ("micro", "DEIS"),
        ("micro", "DPM++ SDE"),
        ("tiny-sd", None),
        ("tiny-sd", "Euler a"),
        ("tiny-sd", "DPM++ 2M SDE Exponential"),
        ("tiny-sd", "UniPC"),
    ],
)
def test_promptlab_parameters_alone_import_back_to_the_same_run(tmp_path: Path, model: str, scheduler: str | None) -> None:
    from typer.testing import CliRunner

    from promptlab.cli import app
    from promptlab.render.engine import _json_safe
    from promptlab.render.models import base_pipeline
    from promptlab.render.schedulers import build_scheduler, find_scheduler

    args = ["render", _ROUND_TRIP_PROMPT, "--negative", _ROUND_TRIP_NEGATIVE, "--model", model, "--steps", "3",
            "--seed", "11", "--guidance", "6.5", "--size", "64x64", "--out", str(tmp_path), "--format", "json"]
    result = CliRunner().invoke(app, args + (["--scheduler", scheduler] if scheduler else []))
    assert result.exit_code == 0, result.output
    rendered = Path(json.loads(result.stdout)[0]["path"])
    with Image.open(rendered) as image:
        parameters, record = image.info["parameters"], json.loads(image.info["promptlab"])
    assert "Negative prompt: ugly, (blurry:1.21), (text:1.3), (gold star:0.9)\n" in parameters
    assert "Sampler: " in parameters and "Denoising strength" not in parameters
    alone = _png(tmp_path / "parameters-only.png", {"parameters": parameters})
    got = import_image(alone)
    assert got.source == "a1111"
    assert _fragments(got.prompt) == _fragments(_ROUND_TRIP_PROMPT)
    assert _fragments(got.negative_prompt) == _fragments(_ROUND_TRIP_NEGATIVE)
    assert (got.seed, got.num_inference_steps, got.guidance_scale, got.width, got.height, got.model) == (
        11, 3, 6.5, 64, 64, model)
    # the same sampler: the imported name builds, on this model, the scheduler the render used
    base = base_pipeline(model).scheduler
    built = build_scheduler(find_scheduler(got.scheduler, base), base.config)
    assert type(built).__name__ == record["params"]["scheduler_class"]
    assert _json_safe(dict(built.config)) == record["params"]["scheduler_config"]


def test_prompts_without_an_a1111_form_go_in_as_compel_and_say_so(tmp_path: Path) -> None:
    from promptlab.store import RunRecord

    negative = '("blurry", "grainy").blend(0.7, 0.3)'  # compel's blend has no A1111 form
    params = {"num_inference_steps": 4, "guidance_scale": 7.0, "scheduler": "Euler"}
    with open_store() as store:
        experiment = store.get_or_create_experiment("blend", {"name": "blend"}, None)
        assert experiment.id is not None
        record = RunRecord(experiment.id, "v", 1, Prompt("a fox", (Term("snow", 1.2),)), "tiny-sd", negative, params=params)
        run = store.record_run(record, run_png(record, Image.new("RGB", (8, 8)), (), experiment.name))
        with Image.open(store.image_path(run.image_sha256)) as image:
            parameters = image.info["parameters"]
    assert parameters.startswith("a fox, (snow)1.2\nNegative prompt: " + negative + "\n")
    assert parameters.endswith(", Prompt syntax: compel")
    got = import_image(_png(tmp_path / "alone.png", {"parameters": parameters}))
    assert (got.prompt, got.negative_prompt) == ("a fox, (snow)1.2", negative)


def test_model_hash_is_a1111s_short_hash_of_a_single_file(tmp_path: Path) -> None:
    import dataclasses

    from promptlab.render.models import resolve_model
    from promptlab.store import RunRecord

    checkpoint = tmp_path / "my-model.safetensors"
    checkpoint.write_bytes(b"not really weights, but hashed all the same" * 50_000)
    source = resolve_model(str(checkpoint))
    prompt = Prompt("a fox")
    params = {"num_inference_steps": 4, "guidance_scale": 7.0, "scheduler": "Euler", "model_source": dataclasses.asdict(source)}
    with open_store() as store:
        experiment = store.get_or_create_experiment("hash", {"name": "hash"}, None)
        assert experiment.id is not None
        record = RunRecord(experiment.id, "v", 1, prompt, str(checkpoint), params=params)
        run = store.record_run(record, run_png(record, Image.new("RGB", (8, 8)), (), experiment.name))
        with Image.open(store.image_path(run.image_sha256)) as image:
            parameters = image.info["parameters"]
    # A1111's modules/hashes.calculate_sha256 (the whole file) and sd_models' shorthash (its first 10 digits)
    assert f"Model hash: {hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:10]}," in parameters



def test_images_without_readable_metadata_name_the_file(tmp_path: Path) -> None:
    bare = _png(tmp_path / "bare.png", {"Software": "GIMP"})
    with pytest.raises(ImportMetadataError, match=r"bare\.png: no generation metadata \(text chunks: 'Software'\)"):
        import_image(bare)
    garbled = _png(tmp_path / "garbled.png", {"prompt": "{not json"})
    with pytest.raises(ImportMetadataError, match=r"garbled\.png: 'prompt' chunk is not valid JSON"):
        import_image(garbled)
    comment = json.dumps({"steps": 28, "sampler": "k_euler", "seed": 1, "scale": 5.0, "uc": ""})
    emphasis = _png(tmp_path / "nai.png", {"Description": "1.5::a fox::", "Software": "NovelAI", "Comment": comment})
    with pytest.raises(ImportMetadataError, match=r"nai\.png: novelai prompt '1\.5::a fox::' .*numeric emphasis"):
        import_image(emphasis)
    with pytest.raises(ImportMetadataError, match=r"nothing\.png: no such file"):
        import_paths([tmp_path / "nothing.png"])


def test_store_imported_records_a_run_with_the_file_unchanged(tmp_path: Path) -> None:
    path = _png(tmp_path / "fox.png", {"parameters": A1111_INFOTEXT})
    imported = import_image(path)
    with open_store() as store:
        run = store_imported(store, imported)
        again = store_imported(store, imported)
        frame = store.runs_frame("imported")
        view = store.get_run(run.id)
        # another image with the same metadata is another run
        twin = _png(tmp_path / "twin.png", {"parameters": A1111_INFOTEXT}, colour=(1, 2, 3))
        assert store_imported(store, import_image(twin)).id != run.id
        assert len(store.runs_frame("imported")) == 2
    assert len(frame) == 1 and again.id == run.id
    row = frame.iloc[0]
    # the prompt as imported, verbatim (the comma a removed <lora:...> tag leaves is a token too)
    assert (row["prompt"], row["negative_prompt"], row["seed"], row["model"]) == (
        imported.prompt, imported.negative_prompt, 2316537914, "anything-v5")
    assert imported.prompt.endswith("in the snow,")
    assert (row["num_inference_steps"], row["guidance_scale"], row["scheduler"], row["width"]) == (28, 6.5, "DPM++ 2M Karras", 512)
    assert math.isnan(row["score"])
    assert view.params["imported_from"] == "a1111" and view.params["source_strength"] == 0.45
    assert Path(row["image"]).read_bytes() == path.read_bytes()
    assert view.image_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # the stored file imports to the same prompt
    assert import_image(Path(row["image"])).prompt == imported.prompt


def test_store_imported_jpeg_becomes_a_png_with_its_infotext(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\0" + A1111_INFOTEXT.encode("utf-16-be")
    path = tmp_path / "fox.jpg"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path, format="JPEG", exif=exif)
    imported = import_image(path)
    with open_store() as store:
        store_imported(store, imported)
        frame = store.runs_frame("imported")
    stored = Path(frame.iloc[0]["image"])
    assert stored.read_bytes().startswith(b"\x89PNG")
    again = import_image(stored)
    assert (again.prompt, again.seed, again.scheduler) == (imported.prompt, imported.seed, imported.scheduler)


def test_store_imported_unknown_seed_is_minus_one(tmp_path: Path) -> None:
    path = _png(tmp_path / "invoke.png", {"invokeai_metadata": json.dumps({**INVOKEAI_METADATA, "seed": None})})
    with open_store() as store:
        run = store_imported(store, import_image(path))
    assert run.seed == -1


def _styles_csv(path: Path, rows: list[dict[str, str]], header: tuple[str, ...] = ("name", "prompt", "negative_prompt")) -> Path:
    with open(path, "w", encoding="utf-8-sig", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a1111_styles_csv(tmp_path: Path) -> None:
    path = _styles_csv(
        tmp_path / "styles.csv",
        [
            {"name": "Cinematic", "prompt": "{prompt}, cinematic, (film grain:1.2)", "negative_prompt": "cartoon, (lowres:1.3)"},
            {"name": "# a comment row", "prompt": "", "negative_prompt": ""},
            {"name": "Plain add-on", "prompt": "sharp focus", "negative_prompt": ""},
            {"name": "Cinematic", "prompt": "{prompt}, cinematic, anamorphic", "negative_prompt": "cartoon"},
        ],
    )
    styles = import_styles(path)
    assert [s.name for s in styles] == ["Cinematic", "Plain add-on"]
    cinematic, plain = styles
    assert (cinematic.prompt, cinematic.negative_prompt, cinematic.source) == ("{prompt}, cinematic, anamorphic", "cartoon", "a1111")
    assert cinematic.apply("a fox") == "a fox, cinematic, anamorphic"
    assert plain.apply("a fox") == "a fox, sharp focus" and plain.apply_negative("blurry") == "blurry"
    old = _styles_csv(tmp_path / "old.csv", [{"name": "Old", "text": "{prompt}, old style"}], header=("name", "text"))
    assert [(s.name, s.prompt, s.negative_prompt) for s in import_styles(old)] == [("Old", "{prompt}, old style", "")]


def test_exported_styles_import_back(tmp_path: Path) -> None:
    prompts = [Prompt("a fox", (Term("oil painting", 1.21), Term("pop-art", 0.9))), Prompt("a fox", (Term("sketch"),))]
    frame = pd.DataFrame(
        [
            {"run_id": i, "variant_key": f"v{v}", "label": f"variant {v}", "seed": i % 2, "subject": "a fox",
             "score": float(v * 10 + i), "image": f"{i}.png", "prompt": p.to_compel(), "negative_prompt": "(blurry)1.2"}
            for i, (v, p) in enumerate([(0, prompts[0]), (0, prompts[0]), (1, prompts[1]), (1, prompts[1])])
        ]
    )  # fmt: skip
    csv_path = tmp_path / "styles.csv"
    csv_path.write_text(export_best(frame, "a1111-styles", experiment="fox", top=2), encoding="utf-8", newline="")
    json_path = tmp_path / "fooocus.json"
    json_path.write_text(export_best(frame, "fooocus-styles", experiment="fox", top=2), encoding="utf-8")
    for styles in (import_styles(csv_path), import_styles(json_path)):
        assert [s.name for s in styles] == ["fox #1 variant 1", "fox #2 variant 0"]
        applied = [parse_a1111(s.apply("a fox")) for s in styles]
        assert [_terms(p) for p in applied] == [_terms(prompts[1]), _terms(prompts[0])]
        assert parse_a1111(styles[0].negative_prompt).terms == (Term("blurry", 1.2),)


def test_fooocus_styles_and_saving_them_as_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "sdxl_styles_fooocus.json"
    path.write_text(json.dumps(FOOOCUS_STYLES), encoding="utf-8")
    styles = import_styles(path)
    assert [s.key for s in styles] == ["fooocus-sharp", "fooocus-masterpiece", "fooocus-v2", "sai-anime"]
    assert styles[2].prompt == "" and styles[0].source == "fooocus"
    assert styles[1].apply("a fox").startswith("(masterpiece), (best quality), (ultra-detailed), a fox, illustration")
    vocab_dir = tmp_path / "vocab"
    vocab_dir.mkdir()
    (vocab_dir / "negative.toml").write_text('# mine\n[mine]\ntext = "jpeg artifacts"\n', encoding="utf-8")
    saved = save_styles_as_vocab(styles, vocab_dir)
    assert saved.presets == ["fooocus-sharp", "fooocus-masterpiece"]
    assert saved.templates == ["fooocus-sharp", "fooocus-masterpiece", "sai-anime"]
    # the vocabulary loader reads the presets (and still loads with the templates folder there)
    vocab = load_vocab([vocab_dir], use_env=False)
    assert vocab.negative_preset("mine").text == "jpeg artifacts"
    sharp = vocab.negative_preset("fooocus-sharp")
    assert _terms(parse_compel(sharp.text)) == _terms(parse_a1111(FOOOCUS_STYLES[0]["negative_prompt"]))
    assert "Fooocus style 'Fooocus Sharp'" in sharp.description
    assert (vocab_dir / "negative.toml").read_text(encoding="utf-8").startswith("# mine\n")
    # the templates read back as written
    templates = load_styles(vocab_dir)
    assert [(t.name, t.prompt, t.negative_prompt) for t in templates] == [
        (s.name, s.prompt, s.negative_prompt) for s in styles if s.prompt
    ]
    compel = templates[1].compel_prompt()
    assert _terms(parse_compel(compel)) == _terms(parse_a1111(templates[1].prompt))
    assert compel.startswith("masterpiece+, (best quality)+, (ultra-detailed)+, {prompt}, ")
    with pytest.raises(VocabError, match="already has fooocus-sharp, fooocus-masterpiece"):
        save_styles_as_vocab(styles, vocab_dir)


def test_style_name_clash_is_refused_before_writing(tmp_path: Path) -> None:
    path = _styles_csv(
        tmp_path / "styles.csv",
        [{"name": "Film Look", "prompt": "{prompt}, film", "negative_prompt": "x"},
         {"name": "film-look", "prompt": "{prompt}, film", "negative_prompt": "y"}],
    )  # fmt: skip
    with pytest.raises(VocabError, match="'Film Look' and 'film-look' both become the name 'film-look'"):
        save_styles_as_vocab(import_styles(path), tmp_path / "vocab")
    assert not (tmp_path / "vocab").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", "{not json", r"bad\.json: not valid JSON"),
        ("dict.json", '{"name": "x"}', r"dict\.json: a Fooocus style file is a JSON list"),
        ("noname.json", '[{"prompt": "x"}]', r"noname\.json: entry 1 is .*non-empty \"name\""),
        ("number.json", '[{"name": "x", "prompt": 3}]', r"number\.json: entry 1 \('x'\): 'prompt' is 3"),
        ("header.csv", "title,prompt\nx,y\n", r"header\.csv: A1111 styles\.csv needs the columns name,prompt"),
        ("styles.txt", "x", r"styles\.txt: not a style file"),
    ],
)
def test_style_file_errors_name_the_file(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportMetadataError, match=message):
        import_styles(path)


def test_import_paths_reads_images_and_style_files_in_order(tmp_path: Path) -> None:
    a1111 = _png(tmp_path / "a.png", {"parameters": A1111_INFOTEXT})
    comfy = _png(tmp_path / "c.png", {"prompt": json.dumps(COMFYUI_GRAPH)})
    styles = _styles_csv(tmp_path / "styles.csv", [{"name": "S", "prompt": "{prompt}, s", "negative_prompt": ""}])
    batch = import_paths([comfy, styles, a1111])
    assert [p.source for p in batch.prompts] == ["comfyui", "a1111"] and [s.name for s in batch.styles] == ["S"]
    data = json.loads(json.dumps(batch.to_dict()))
    assert [p["file"] for p in data["prompts"]] == [str(comfy), str(a1111)] and data["styles"][0]["source"] == "a1111"



# Saving styles as vocabulary (issue 22): a hostile style never makes a vocabulary unreadable.


def test_a_style_with_characters_toml_cannot_hold_raw_keeps_the_vocabulary_readable(tmp_path: Path) -> None:
    from promptlab.importer import Style

    vocab_dir = tmp_path / "vocab"
    hostile = 'ugly \x7f "quoted" back\\slash\ttab\nnew line \x00 \x1b[31m'
    style = Style("Bad Chars", "a \x7f {prompt}", hostile, "a1111", None)
    saved = save_styles_as_vocab([style], vocab_dir)
    # Before: written raw, U+007F made every later command fail with "Illegal character '\x7f'".
    vocab = load_vocab([vocab_dir], use_env=False)
    assert vocab.negative_preset("bad-chars").text == style.compel_negative_prompt()
    assert saved.presets == ["bad-chars"] and (vocab_dir / "templates" / "styles.toml").is_file()


def test_a_style_no_file_can_hold_writes_nothing(tmp_path: Path) -> None:
    from promptlab.importer import Style

    vocab_dir = tmp_path / "vocab"
    save_styles_as_vocab([Style("Good", "fine {prompt}", "blurry", "a1111", None)], vocab_dir)
    before = {p: p.read_bytes() for p in vocab_dir.rglob("*") if p.is_file()}
    with pytest.raises(VocabError, match=r"style 'Lone' text: character 5 is a lone surrogate \(\\uD800\)"):
        save_styles_as_vocab([Style("Lone", "x {prompt}", "bad \ud800", "fooocus", None)], vocab_dir)
    assert {p: p.read_bytes() for p in vocab_dir.rglob("*") if p.is_file()} == before
    load_vocab([vocab_dir], use_env=False)


def test_an_imported_images_loras_are_the_runs_loras(tmp_path: Path) -> None:
    """A1111's <lora:...> tags come out of the prompt and into the run's loras and the store's run_lora rows (the file unknown)."""
    from sqlalchemy import text

    path = _png(tmp_path / "fox.png", {"parameters": A1111_INFOTEXT})
    with open_store() as store:
        run = store.get_run(store_imported(store, import_image(path)).id)
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT name, sha256, strength FROM run_lora WHERE run_id = :id"), {"id": run.id}).all()
    assert run.params["loras"] == [{"name": "add_detail", "source": "add_detail", "sha256": None, "strength": 0.6}]
    assert run.params["source_loras"] == [["add_detail", 0.6]]
    assert rows == [("add_detail", None, 0.6)]
