"""ControlNet on the tiny SD 1.x and SDXL models (random ControlNets): sizes, the scale, errors, records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from promptlab.errors import ModelError, RenderError
from promptlab.render.engine import render
from promptlab.render.models import load_model
from promptlab.render.params import RenderItem, RenderParams

STEPS = {"num_inference_steps": 2}
CONTROLNETS = {"tiny-sd": "tiny-sd-controlnet", "tiny-sdxl": "tiny-sdxl-controlnet"}


@pytest.fixture(scope="module", autouse=True)
def _threads(one_torch_thread: None) -> None:
    return None


@pytest.fixture
def images(tmp_path: Path) -> dict[str, str]:
    """Control images: RGB and grayscale 64x96 with a pattern, and some the ControlNet cannot take."""
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 256, (96, 64), dtype=np.uint8)
    made = {
        "rgb": Image.fromarray(np.stack([pattern] * 3, axis=-1)),
        "gray": Image.fromarray(pattern),
        "rgba": Image.new("RGBA", (64, 96)),
        "sixteen": Image.new("I;16", (64, 96)),
        "odd": Image.new("RGB", (60, 96)),
        "init": Image.new("RGB", (64, 64), (40, 90, 200)),
    }
    paths = {}
    for name, image in made.items():
        paths[name] = str(tmp_path / f"{name}.png")
        image.save(paths[name])
    return paths


def _pixels(result: object) -> np.ndarray:
    return np.asarray(result.images[0].image, dtype=int)  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", ["tiny-sd", "tiny-sdxl"])
def test_scale_0_is_the_base_pipeline_and_scale_changes_the_image(model: str, images: dict[str, str]) -> None:
    items = [RenderItem("a red circle", 7)]
    control = {"controlnet": CONTROLNETS[model], "control_image": images["rgb"]}
    base = render(items, RenderParams(**STEPS, width=64, height=96), model)
    off = render(items, RenderParams(**STEPS, **control, controlnet_conditioning_scale=0.0), model)
    half = render(items, RenderParams(**STEPS, **control, controlnet_conditioning_scale=0.5), model)
    full = render(items, RenderParams(**STEPS, **control), model)
    # At scale 0 the residuals are zero: the base pipeline's image, pixel for pixel.
    assert np.array_equal(_pixels(base), _pixels(off))
    assert np.abs(_pixels(base) - _pixels(half)).max() > 0
    assert np.abs(_pixels(half) - _pixels(full)).max() > 0
    # The render takes the control image's size; the scale is recorded as rendered (diffusers' 1.0 by default).
    assert full.images[0].image.size == (64, 96)
    setup = full.setup
    assert setup.pipeline_class == ("StableDiffusionXLControlNetPipeline" if model == "tiny-sdxl" else "StableDiffusionControlNetPipeline")
    assert setup.params.controlnet_conditioning_scale == 1.0 and setup.controlnet is not None
    assert setup.controlnet.scale == 1.0 and setup.controlnet.source.model == CONTROLNETS[model]
    assert [(i.role, i.sha256) for i in setup.inputs] == [("control_image", setup.controlnet.image_sha256)]


def test_the_base_is_not_loaded_again(images: dict[str, str]) -> None:
    loaded = load_model("tiny-sd")
    render([RenderItem("a fox", 1)], RenderParams(**STEPS, controlnet="tiny-sd-controlnet", control_image=images["rgb"]), "tiny-sd")
    result = render([RenderItem("a fox", 1)], RenderParams(**STEPS, controlnet="tiny-sd-controlnet", control_image=images["gray"]), "tiny-sd")
    assert result.setup.load_seconds < 1.0
    assert load_model("tiny-sd").pipe.unet is loaded.pipe.unet


def test_grayscale_is_read_as_rgb_and_a_size_resizes(images: dict[str, str]) -> None:
    items = [RenderItem("a fox", 2)]
    control = {"controlnet": "tiny-sd-controlnet"}
    rgb = render(items, RenderParams(**STEPS, **control, control_image=images["rgb"]), "tiny-sd")
    gray = render(items, RenderParams(**STEPS, **control, control_image=images["gray"]), "tiny-sd")
    assert np.array_equal(_pixels(rgb), _pixels(gray))
    resized = render(items, RenderParams(**STEPS, **control, control_image=images["odd"], width=64, height=64), "tiny-sd")
    assert resized.images[0].image.size == (64, 64)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "task"), [("tiny-sd", "img2img"), ("tiny-sdxl", "img2img"), ("tiny-sd", "inpaint")])
def test_image_tasks_take_a_controlnet(model: str, task: str, images: dict[str, str], tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), (9, 9, 9)).save(tmp_path / "control.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "mask.png")
    inputs = {"image": images["init"], **({"mask_image": str(tmp_path / "mask.png")} if task == "inpaint" else {})}
    params = RenderParams(task=task, num_inference_steps=4, strength=0.5, controlnet=CONTROLNETS[model], control_image=str(tmp_path / "control.png"), **inputs)
    result = render([RenderItem("a fox", 1)], params, model)
    assert result.images[0].image.size == (64, 64)
    assert "ControlNet" in result.setup.pipeline_class and result.setup.task == task


def test_a_control_image_must_match_the_init_image(images: dict[str, str]) -> None:
    params = RenderParams(task="img2img", **STEPS, strength=1.0, image=images["init"], controlnet="tiny-sd-controlnet", control_image=images["rgb"])
    with pytest.raises(RenderError, match=r"control image '.*rgb.png' is 64x96 but image file '.*init.png' is 64x64"):
        render([RenderItem("a fox", 1)], params, "tiny-sd")


@pytest.mark.parametrize(
    ("model", "controlnet", "image", "error", "words"),
    [
        ("tiny-sd", "tiny-sd-controlnet", "rgba", RenderError, "has mode RGBA (an alpha channel)"),
        ("tiny-sd", "tiny-sd-controlnet", "sixteen", RenderError, "has mode I;16 (16-bit grayscale)"),
        ("tiny-sd", "tiny-sd-controlnet", "odd", RenderError, "is 60x96, not a multiple of 8"),
        ("tiny-sd", "tiny-sd-controlnet", "missing", RenderError, "does not exist"),
        ("tiny-sd", "tiny-sdxl-controlnet", "rgb", RenderError, "is made for SDXL (cross-attention 64 wide) but the model is SD 1.x"),
        ("tiny-sdxl", "tiny-sd-controlnet", "rgb", RenderError, "is made for another base (cross-attention 32 wide) but the model is SDXL"),
        ("tiny-sd", "./no/such-controlnet", "rgb", ModelError, "no such file or folder"),
        ("tiny-sd", "tiny-sd", "rgb", ModelError, "is a whole pipeline"),
    ],
)
def test_errors_name_the_file_and_the_fix(
    model: str, controlnet: str, image: str, error: type[Exception], words: str, images: dict[str, str], tmp_path: Path
) -> None:
    path = images.get(image, str(tmp_path / "missing.png"))
    with pytest.raises(error) as raised:
        render([RenderItem("a fox", 1)], RenderParams(**STEPS, controlnet=controlnet, control_image=path), model)
    assert words in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("nobody/no-such-controlnet", "controlnet 'nobody/no-such-controlnet' cannot be loaded"),
        ("{tmp}/broken.safetensors", "broken.safetensors' cannot be loaded"),
    ],
)
def test_a_controlnet_that_cannot_load_offline_fails_naming_it(
    model: str, words: str, images: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    model = model.format(tmp=tmp_path)
    with pytest.raises(ModelError) as raised:
        render([RenderItem("a fox", 1)], RenderParams(**STEPS, controlnet=model, control_image=images["rgb"]), "tiny-sd")
    assert words in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"controlnet": "tiny-sd-controlnet"}, "needs control_image too"),
        ({"control_image": "a.png"}, "needs controlnet too"),
        ({"controlnet": "x", "control_image": "a.png", "controlnet_conditioning_scale": -1.0}, "must be a finite number >= 0"),
        ({"controlnet_conditioning_scale": 0.5}, "needs a controlnet"),
    ],
)
def test_params_are_checked_up_front(values: dict[str, object], words: str) -> None:
    with pytest.raises(RenderError, match=words):
        RenderParams(**values)  # type: ignore[arg-type]


def test_cli_render_records_the_controlnet_and_renders_it_again(images: dict[str, str], tmp_path: Path) -> None:
    from promptlab.cli import app
    from promptlab.runner import rerender
    from promptlab.store import open_store

    args = [
        "render", "a fox", "--model", "tiny-sd", "--steps", "2", "--seed", "5", "--controlnet", "tiny-sd-controlnet",
        "--control-image", images["gray"], "--control-scale", "0.5", "--out", str(tmp_path / "out"), "--format", "json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.exception
    (made,) = json.loads(result.stdout)
    with Image.open(made["path"]) as image:
        text = image.text["parameters"]
        assert image.size == (64, 96)
    assert 'ControlNet 0: "Module: none, Model: tiny-sd-controlnet, Weight: 0.5' in text
    with open_store() as store:
        run = store.get_run(made["run_id"])
        assert run.params["controlnet_conditioning_scale"] == 0.5
        assert run.params["controlnet"]["model"] == "tiny-sd-controlnet"
        assert run.params["controlnet"]["image_sha256"] == next(i["sha256"] for i in run.params["inputs"] if i["role"] == "control_image")
        (again,) = rerender(run.id, store)
    assert again.identical


def test_cli_render_without_a_control_image_fails_and_records_nothing(tmp_path: Path) -> None:
    from promptlab.cli import app
    from promptlab.store import open_store

    result = CliRunner().invoke(app, ["render", "a fox", "--model", "tiny-sd", "--controlnet", "tiny-sd-controlnet", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "needs control_image too" in str(result.exception)
    with open_store() as store:
        assert store.list_runs() == []


# Experiment files.


def _experiment(tmp_path: Path, body: str, top: str = "") -> object:
    from promptlab.experiment import load_experiment

    Image.new("L", (64, 64), 90).save(tmp_path / "edges.png")
    Image.new("RGB", (64, 64), (200, 0, 0)).save(tmp_path / "other.png")
    Image.new("RGBA", (64, 64)).save(tmp_path / "rgba.png")
    (tmp_path / "e.toml").write_text(f'name = "e"\nmodel = "tiny-sd"\nseeds = 2\n{top}[prompt]\nsubject = "a red circle"\n{body}')
    return load_experiment(tmp_path / "e.toml")


def test_a_controlnet_block_with_a_scale_axis_and_an_image_axis(tmp_path: Path) -> None:
    from promptlab.experiment import expand
    from promptlab.runner.recipe import render_params

    spec = _experiment(tmp_path, '[controlnet]\nmodel = "tiny-sd-controlnet"\nimage = "edges.png"\n[axes]\ncontrolnet_conditioning_scale = [0, 0.5]\n')
    off, half = expand(spec)
    assert (off.params["controlnet"], off.params["controlnet_conditioning_scale"], half.params["controlnet_conditioning_scale"]) == ("tiny-sd-controlnet", 0.0, 0.5)
    params = render_params(half)
    assert (params.controlnet, params.control_image, params.controlnet_conditioning_scale) == ("tiny-sd-controlnet", str(tmp_path / "edges.png"), 0.5)
    by_image = expand(_experiment(tmp_path, '[controlnet]\nmodel = "tiny-sd-controlnet"\n[axes]\ncontrol_image = ["edges.png", "other.png"]\n'))
    assert [v.inputs["control_image"].name for v in by_image] == ["edges.png", "other.png"]
    assert len({v.key for v in by_image}) == 2


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[params]\ncontrolnet_conditioning_scale = 0.5\n", "a scale for a ControlNet"),
        ('[controlnet]\nmodel = "tiny-sd-controlnet"\n', "[controlnet] image"),
        ('[controlnet]\nmodel = "tiny-sd-controlnet"\nimage = "nope.png"\n', "an existing image file"),
        ('[controlnet]\nmodel = "tiny-sd-controlnet"\nimage = "rgba.png"\n', "has mode RGBA (an alpha channel)"),
        ('[controlnet]\nmodel = "tiny-sd-controlnet"\nimage = "edges.png"\n[axes]\ncontrol_image = ["other.png"]\n', "not both"),
        ('[controlnet]\nmodel = "tiny-sd-controlnet"\nimage = "edges.png"\n[axes]\ncontrolnet_conditioning_scale = [-1]\n', "a number >= 0"),
    ],
)
def test_experiment_controlnet_errors(tmp_path: Path, body: str, words: str) -> None:
    from promptlab.errors import ExperimentError

    with pytest.raises(ExperimentError) as raised:
        _experiment(tmp_path, body)
    assert words in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.slow
def test_an_experiment_sweeps_the_scale_and_an_embedding_and_analyses_both(tmp_path: Path) -> None:
    import shutil

    from promptlab.analysis import analyze
    from promptlab.render.tiny import tiny_embedding_file
    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    shutil.copy(tiny_embedding_file("tiny-sd-embedding"), tmp_path / "ink.safetensors")
    spec = _experiment(
        tmp_path,
        '[params]\nnum_inference_steps = 2\n[controlnet]\nmodel = "tiny-sd-controlnet"\nimage = "edges.png"\n'
        '[axes]\ncontrolnet_conditioning_scale = [0, 1.0]\nembedding = ["none", "ink.safetensors:<ink>"]\n',
        top='scorer = "tiny-clip"\n',
    )
    with open_store() as store:
        summary = run_experiment(spec, store)
        runs = store.list_runs()
        frame = store.runs_frame("e", "intent")
    assert summary.ok and summary.rendered == 8
    assert sorted(r.params["controlnet_conditioning_scale"] for r in runs) == [0.0] * 4 + [1.0] * 4
    assert {r.params["controlnet"]["model"] for r in runs} == {"tiny-sd-controlnet"}
    assert sorted(len(r.params.get("embeddings", ())) for r in runs) == [0] * 4 + [1] * 4
    # Axes like any other: each level's paired effect against the first, with its interval.
    effects = {(e.axis, str(e.level), str(e.reference)): e for e in analyze(frame, score_kind="intent").effects}
    assert set(effects) == {("controlnet_conditioning_scale", "1.0", "0.0"), ("embedding", "<ink>", "none")}
    assert all(e.n_seeds == 2 and e.ci_low <= e.mean_diff <= e.ci_high for e in effects.values())


@pytest.mark.slow
def test_a_lora_and_an_embedding_apply_alike_with_and_without_a_controlnet(tmp_path: Path) -> None:
    """SDXL: LoRA + embedding through the ControlNet pipeline at scale 0 is the same image as without one,
    and switching between the two pipelines keeps the model's state (no LoRA, no embedding: its own image)."""
    import copy

    import torch
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    from promptlab.render.adapters import parse_lora
    from promptlab.render.models import base_pipeline
    from promptlab.render.params import EmbeddingFile
    from promptlab.render.tiny import tiny_embedding_file

    unet = copy.deepcopy(base_pipeline("tiny-sdxl").unet)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionXLPipeline.save_lora_weights(tmp_path, unet_lora_layers=layers, weight_name="xl.safetensors")
    Image.new("RGB", (64, 64), (10, 200, 10)).save(tmp_path / "control.png")
    adapters = {
        "loras": (parse_lora(f"{tmp_path / 'xl.safetensors'}:1.0"),),
        "embeddings": (EmbeddingFile(str(tiny_embedding_file("tiny-sdxl-embedding")), "<t>"),),
    }
    control = {"controlnet": "tiny-sdxl-controlnet", "control_image": str(tmp_path / "control.png"), "controlnet_conditioning_scale": 0.0}
    items = [RenderItem("a <t> fox", 4)]
    plain = _pixels(render(items, RenderParams(**STEPS, width=64, height=64), "tiny-sdxl"))
    adapted = _pixels(render(items, RenderParams(**STEPS, width=64, height=64, **adapters), "tiny-sdxl"))
    through_controlnet = _pixels(render(items, RenderParams(**STEPS, **adapters, **control), "tiny-sdxl"))
    controlnet_alone = _pixels(render(items, RenderParams(**STEPS, **control), "tiny-sdxl"))
    assert np.abs(adapted - plain).max() > 0
    assert np.array_equal(adapted, through_controlnet)
    assert np.array_equal(plain, controlnet_alone)
