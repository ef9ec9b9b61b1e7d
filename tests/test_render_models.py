"""Model resolution, loading, caching, family detection and errors, on the built-in tiny models."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from promptlab.builtin import TINY_MODELS
from promptlab.device import choose_device, choose_dtype
from promptlab.errors import ModelError, RenderError
from promptlab.render import models
from promptlab.render.models import ModelSpec, detect_family, load_model, model_info
from promptlab.render.tiny import TINY_BUILDERS, tiny_model_folder

EXPECTED_FAMILY = {
    "tiny-sd": "sd1",
    "tiny-sd-inpaint": "sd1",
    "tiny-sdxl": "sdxl",
    "tiny-sdxl-inpaint": "sdxl",
    "tiny-sd2-depth": "sd2",
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread: None) -> None:
    """Render tests run torch on one thread (see conftest)."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_tiny_model_has_an_expected_family() -> None:
    assert set(EXPECTED_FAMILY) == set(TINY_MODELS) == set(TINY_BUILDERS)


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_tiny_model_family_and_shapes(name: str) -> None:
    pipe = models.base_pipeline(name)
    assert detect_family(pipe.components) == EXPECTED_FAMILY[name]
    assert pipe.vae_scale_factor == 8
    assert pipe.vae.config.latent_channels == 4
    assert pipe.text_encoder.config.vocab_size == 49408
    assert pipe.text_encoder.config.max_position_embeddings == 77
    expected_channels = {"tiny-sd-inpaint": 9, "tiny-sdxl-inpaint": 9, "tiny-sd2-depth": 5}.get(name, 4)
    assert pipe.unet.config.in_channels == expected_channels


def test_tiny_sdxl_has_two_encoders_and_text_time_conditioning() -> None:
    pipe = models.base_pipeline("tiny-sdxl")
    unet = pipe.unet.config
    assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert unet.addition_embed_type == "text_time"
    pooled = pipe.text_encoder_2.config.projection_dim
    assert unet.projection_class_embeddings_input_dim == 6 * unet.addition_time_embed_dim + pooled
    assert unet.cross_attention_dim == pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert pipe.tokenizer_2.pad_token == "!"


@pytest.mark.slow
def test_tiny_model_is_built_once_and_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tiny_model_folder("tiny-sd")
    stamp = (first / "promptlab_tiny.json").stat().st_mtime_ns
    assert tiny_model_folder("tiny-sd") == first
    assert (first / "promptlab_tiny.json").stat().st_mtime_ns == stamp
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path / "other-cache"))
    second = tiny_model_folder("tiny-sd")
    assert second != first
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert _sha(second / part) == _sha(first / part)
    assert [p.name for p in second.parent.iterdir()] == ["tiny-sd"]


@pytest.mark.slow
def test_stale_tiny_model_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path))
    folder = tiny_model_folder("tiny-sd")
    (folder / "promptlab_tiny.json").write_text('{"version": 0}')
    (folder / "unet" / "leftover.txt").write_text("from an older build")
    assert tiny_model_folder("tiny-sd") == folder
    assert not (folder / "unet" / "leftover.txt").exists()
    assert sorted(p.name for p in tmp_path.joinpath("models").iterdir()) == ["tiny-sd"]


@pytest.mark.slow
def test_parallel_processes_build_one_complete_folder(tmp_path: Path) -> None:
    code = "from promptlab.render.tiny import tiny_model_folder; print(tiny_model_folder('tiny-sd'))"
    env = {**os.environ, "PROMPTLAB_CACHE": str(tmp_path)}
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert outputs[0] == outputs[1] == str(tmp_path / "models" / "tiny-sd")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-sd"]
    from diffusers import StableDiffusionPipeline

    assert StableDiffusionPipeline.from_pretrained(outputs[0]).unet.config.in_channels == 4


def _unet(cross_attention_dim: int, linear_projection: bool = False) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=2,
        norm_num_groups=8,
        use_linear_projection=linear_projection,
    )


def test_family_from_real_model_proportions() -> None:
    from diffusers import DDIMScheduler

    assert detect_family({"unet": _unet(768)}) == "sd1"
    assert detect_family({"unet": _unet(1024)}) == "sd2"
    assert detect_family({"unet": _unet(768, linear_projection=True)}) == "sd2"
    # v-prediction alone is no sign of SD 2: SD 1.x fine-tunes predict v too.
    v_scheduler = DDIMScheduler(prediction_type="v_prediction")
    assert detect_family({"unet": _unet(768), "scheduler": v_scheduler}) == "sd1"
    with pytest.raises(ModelError, match="no UNet"):
        detect_family({"transformer": object()})


def test_model_info_describes_components() -> None:
    info = model_info("tiny-sdxl")
    assert (info.pipeline_class, info.family) == ("StableDiffusionXLPipeline", "sdxl")
    components = {c.name: (c.class_name, c.library) for c in info.components}
    assert components["text_encoder_2"] == ("CLIPTextModelWithProjection", "transformers")
    assert components["unet"] == ("UNet2DConditionModel", "diffusers")
    assert components["scheduler"] == ("EulerDiscreteScheduler", "diffusers")
    assert info.source.kind == "builtin" and info.source.location == str(tiny_model_folder("tiny-sdxl"))


def test_model_is_loaded_once_and_tasks_share_components() -> None:
    txt = load_model("tiny-sd", "txt2img")
    again = load_model(ModelSpec("tiny-sd"), "txt2img")
    img = load_model("tiny-sd", "img2img")
    inpaint = load_model("tiny-sd", "inpaint")
    assert again.pipe is txt.pipe
    assert type(img.pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert type(inpaint.pipe).__name__ == "StableDiffusionInpaintPipeline"
    assert img.pipe.unet is txt.pipe.unet is inpaint.pipe.unet
    assert models.base_pipeline("tiny-sd").unet is txt.pipe.unet


def test_dtype_override_is_applied_and_recorded() -> None:
    loaded = load_model(ModelSpec("tiny-sd", dtype="bf16"), "img2img")
    assert loaded.dtype == "bfloat16"
    assert loaded.pipe.unet.dtype == torch.bfloat16
    # from_pipe would cast shared weights to float32 unless given the dtype; the float32 load is untouched.
    assert load_model("tiny-sd", "img2img").pipe.unet.dtype == torch.float32


def test_device_and_dtype_choice() -> None:
    assert choose_dtype("cpu") == "float32"
    assert choose_dtype("cuda") == "float16"
    assert choose_dtype("mps") == "float16"
    assert choose_dtype("cuda", "bfloat16") == "bfloat16"
    assert choose_dtype("cpu", "FP32") == "float32"
    with pytest.raises(ModelError, match="dtype 'float8'"):
        choose_dtype("cpu", "float8")
    assert choose_device("cpu") == "cpu"
    with pytest.raises(ModelError, match="device 'toaster'"):
        choose_device("toaster")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_missing_cuda_is_an_error() -> None:
    assert choose_device() in {"cpu", "mps"}
    with pytest.raises(ModelError, match="CUDA is not available"):
        choose_device("cuda")


def test_uncached_hub_model_offline_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as caught:
        load_model("runwayml/stable-diffusion-v1-5")
    message = str(caught.value)
    assert "'runwayml/stable-diffusion-v1-5'" in message
    assert "local diffusers folder" in message and ".safetensors" in message
    assert "Traceback" not in message and len(message) < 1000


@pytest.mark.slow
def test_hub_model_from_local_cache_records_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-sd"
    shutil.copytree(tiny_model_folder("tiny-sd"), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model("someone/tiny-sd")
    assert (loaded.source.kind, loaded.source.revision, loaded.family) == ("hub", commit, "sd1")


@pytest.mark.parametrize(
    ("model", "named"),
    [
        ("./no/such/model", "no such file or folder"),
        ("/nowhere/model.safetensors", "no such file or folder"),
        ("not a model!", "not a hub id"),
    ],
)
def test_missing_local_models_are_model_errors(model: str, named: str) -> None:
    with pytest.raises(ModelError, match=f"model {model!r}.*{named}".replace(".", r"\.").replace("\\.*", ".*")):
        load_model(model)


def test_pickle_checkpoint_needs_allow_pickle(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, path)
    with pytest.raises(ModelError, match=r"pickle checkpoint \(\.ckpt\).*allow_pickle=True"):
        load_model(str(path))
    with pytest.raises(ModelError, match="Stable Diffusion 1.x, 2.x and XL checkpoints only"):
        load_model(ModelSpec(str(path), allow_pickle=True))


def test_unrecognised_safetensors_file_is_a_model_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "lora.safetensors"
    save_file({"lora_up.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(ModelError, match=r"lora\.safetensors'.*checkpoints only"):
        load_model(str(path))
    path.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot be read as a checkpoint"):
        load_model(str(path))


def test_folder_that_is_not_diffusers_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a diffusers folder"):
        load_model(str(tmp_path))


@pytest.mark.parametrize(
    ("model", "task", "named"),
    [
        ("tiny-sdxl", "depth2img", "diffusers has no depth2img pipeline for sdxl"),
        ("tiny-sd", "depth2img", "no depth2img pipeline for sd1"),
        ("tiny-sd-inpaint", "txt2img", "an inpainting model"),
        ("tiny-sd2-depth", "img2img", "a depth model"),
        ("tiny-sd", "upscale", "task 'upscale'"),
    ],
)
def test_task_the_model_cannot_run_is_a_render_error(model: str, task: str, named: str) -> None:
    with pytest.raises(RenderError, match=named):
        load_model(model, task)


def test_depth2img_on_a_standard_sd2_model_needs_a_depth_model() -> None:
    assert models.check_task("depth2img", "sd2", 5, "m") == "StableDiffusionDepth2ImgPipeline"
    with pytest.raises(RenderError, match=r"'stabilityai/stable-diffusion-2-1' is a standard model.*needs a depth model"):
        models.check_task("depth2img", "sd2", 4, "stabilityai/stable-diffusion-2-1")


@pytest.mark.slow
def test_vae_swap_from_folder_and_builtin() -> None:
    vae_folder = tiny_model_folder("tiny-sdxl") / "vae"
    from_folder = load_model(ModelSpec("tiny-sd", vae=str(vae_folder)))
    assert from_folder.pipe.vae.config.scaling_factor == pytest.approx(0.13025)
    assert from_folder.vae is not None and from_folder.vae.kind == "folder"
    plain = load_model("tiny-sd")
    assert plain.pipe.vae.config.scaling_factor == pytest.approx(0.18215) and plain.vae is None
    from_builtin = load_model(ModelSpec("tiny-sd", vae="tiny-sdxl"))
    assert from_builtin.pipe.vae.config.scaling_factor == pytest.approx(0.13025)


def test_bad_vae_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="vae './missing-vae'"):
        load_model(ModelSpec("tiny-sd", vae="./missing-vae"))
    (tmp_path / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(ModelError, match="cannot be loaded as an AutoencoderKL"):
        load_model(ModelSpec("tiny-sd", vae=str(tmp_path)))
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "vae.safetensors"))
    with pytest.raises(ModelError, match=r"vae '.*vae\.safetensors' cannot be loaded.*use a VAE folder"):
        load_model(ModelSpec("tiny-sd", vae=str(tmp_path / "vae.safetensors")))


def test_sd_checkpoint_file_offline_names_the_missing_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "sd15-finetune.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)}, str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"sd15-finetune\.safetensors' cannot be loaded with from_single_file.*local diffusers folder"):
        load_model(str(path))
    assert models.resolve_model(str(path)).sha256 == _sha(path)


def test_micro_is_a_builtin_sd1_model_shipped_with_the_package() -> None:
    from promptlab.micro import MICRO_MODELS

    source = models.resolve_model("micro")
    assert source.kind == "builtin" and source.location == str(MICRO_MODELS["micro"])
    assert "micro" in models.BUILTIN_MODELS
    pipe = models.base_pipeline("micro")
    assert detect_family(pipe.components) == "sd1"
    # 64x64 pixels <-> 16x16x4 latents.
    assert pipe.vae_scale_factor == 4 and pipe.unet.config.sample_size == 16


def test_micro_without_its_weights_says_how_to_remake_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(models.MICRO_MODELS, "micro", tmp_path / "micro")
    with pytest.raises(ModelError, match="built-in model 'micro' has no weights at .*promptlab micro train"):
        models.resolve_model("micro")
