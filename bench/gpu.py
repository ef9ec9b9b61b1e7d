"""GPU throughput at real sizes: SD 1.5 at 512 px and SDXL at 1024 px, random weights, fp16.

    .venv/bin/python bench/gpu.py [--repeats 2] [--steps 20] [--batch-size 8] [--only sd15|sdxl]
    .venv/bin/python bench/gpu.py --smoke        # what runs on a CPU: the same code, tiny configs

Each pipeline is built from its published architecture config, written out below (UNet, VAE and
text encoders of runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0),
with random weights: nothing is downloaded, and the speed is a real model's (the images are
noise). It is saved as a diffusers folder and rendered through promptlab like any local model.
The experiment is bench/grid.py's: 16 prompt variants x 4 seeds. Contenders, alternated after a
warm-up round, as in bench/grid.py:

a. promptlab's runner: render, score (tiny-clip), write PNGs and rows, into a fresh experiment;
b. one bare ``pipe(...)`` call per cell (the X/Y-plot way);
c. bare ``pipe(...)`` calls on batches of a's size.

Achieved TFLOP/s count the UNet's forwards (two per step with guidance, batched), the VAE
decode and the text encoders, each measured once with torch's FlopCounterMode (one SD 1.5 UNet
forward at 64x64 latents is about 0.80 TFLOP), against the GPU's dense fp16 peak where its name
is known. Without CUDA (or with ``--smoke``) the configs shrink to a few channels, the images to
64 px and the grid to 4 styles on one seed, timed once without a warm-up, so that a test runs the whole
script on a CPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, emit, machine, median, note, temp_home  # noqa: E402

ROOT = temp_home("gpu")

# runwayml/stable-diffusion-v1-5: unet/config.json, vae/config.json, text_encoder/config.json.
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
}
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
# CLIP ViT-L/14's text tower (SD 1.5's encoder, and SDXL's first).
CLIP_L: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
# stabilityai/stable-diffusion-xl-base-1.0: unet/config.json, vae/config.json, text_encoder_2/config.json.
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
SDXL_VAE: dict[str, Any] = {**SD15_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
# OpenCLIP ViT-bigG/14's text tower.
CLIP_BIGG: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}

# Dense fp16/bf16 tensor-core peaks (no sparsity), TFLOP/s, by a part of the device's name.
PEAK_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 756.0, "A100": 312.0,
               "L40S": 362.0, "L4": 121.0, "A10G": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0}  # fmt: skip

EXPERIMENT = """
name = "bench-gpu-{name}-{number}"
model = "{model}"
task = "txt2img"
seeds = {seeds}
strategy = "grid"
scorer = "tiny-clip"
batch_size = {batch_size}

[params]
num_inference_steps = {steps}
guidance_scale = 7.5
width = {size}
height = {size}

[prompt]
subject = "fat cat lies on the couch"
negative_presets = ["minimal"]
terms = {{ medium = ["oil painting"] }}

[axes]
style = ["", "pop-art", "art nouveau", "steampunk"]
light = ["", "cinematic lighting:1.2", "golden hour", "soft light"]
"""


def shrink(config: dict[str, Any]) -> dict[str, Any]:
    """A config's shape with a few channels and layers: the smoke version of a model."""
    small = dict(config)
    if "block_out_channels" in small:
        small["block_out_channels"] = tuple(8 * (i + 1) for i in range(len(small["block_out_channels"])))
        small["layers_per_block"] = 1
        small["norm_num_groups"] = 8
    if "attention_head_dim" in small:
        heads = small["attention_head_dim"]
        small["attention_head_dim"] = tuple(2 for _ in heads) if isinstance(heads, tuple) else 2
    if "transformer_layers_per_block" in small:
        small["transformer_layers_per_block"] = tuple(1 for _ in small["transformer_layers_per_block"])
    if "cross_attention_dim" in small:
        small["cross_attention_dim"] = 64 if config["cross_attention_dim"] == 2048 else 32
    if "projection_class_embeddings_input_dim" in small:
        small["addition_time_embed_dim"] = 8
        small["projection_class_embeddings_input_dim"] = 6 * 8 + 32
    if "hidden_size" in small:
        small.update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
    return small


def build(name: str, folder: Path, smoke: bool) -> Path:
    """Build ``name``'s pipeline (sd15 or sdxl) with random weights and save it as a diffusers folder."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from promptlab.render.tiny import SD_BETAS, START_ID
    from promptlab.tokens import END_TOKEN, save_clip_tokenizer

    size = shrink if smoke else dict

    def text_config(config: dict[str, Any], pad_id: int) -> Any:
        return CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=START_ID, eos_token_id=49407,
                              pad_token_id=pad_id, **size(config))  # fmt: skip

    def tokenizer(pad_token: str) -> Any:
        where = folder / ("tokenizer" if pad_token == END_TOKEN else "tokenizer-2")
        save_clip_tokenizer(where, pad_token=pad_token)
        return CLIPTokenizer.from_pretrained(str(where))

    torch.manual_seed(0)
    scheduler = EulerDiscreteScheduler(**SD_BETAS, timestep_spacing="leading")
    if name == "sd15":
        pipe = StableDiffusionPipeline(
            vae=AutoencoderKL(**size(SD15_VAE)), text_encoder=CLIPTextModel(text_config(CLIP_L, 49407)),
            tokenizer=tokenizer(END_TOKEN), unet=UNet2DConditionModel(**size(SD15_UNET)), scheduler=scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip
    else:
        pipe = StableDiffusionXLPipeline(
            vae=AutoencoderKL(**size(SDXL_VAE)), text_encoder=CLIPTextModel(text_config(CLIP_L, 49407)),
            text_encoder_2=CLIPTextModelWithProjection(text_config(CLIP_BIGG, 0)),
            tokenizer=tokenizer(END_TOKEN), tokenizer_2=tokenizer("!"),
            unet=UNet2DConditionModel(**size(SDXL_UNET)), scheduler=scheduler,
        )  # fmt: skip
    target = folder / name
    pipe.to(torch.float16 if not smoke else torch.float32).save_pretrained(str(target))
    return target


def flops_per_image(pipe: Any, size: int, steps: int) -> float:
    """FLOPs of one image with guidance: 2 UNet forwards a step, the VAE decode, the text encoders (measured once)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device, dtype = pipe.unet.device, pipe.unet.dtype
    latent = size // 8
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        embeds = pipe.encode_prompt("a cat", device=device, num_images_per_prompt=1, do_classifier_free_guidance=True)
    text = counter.get_total_flops()
    sample = torch.randn(2, 4, latent, latent, device=device, dtype=dtype)
    kwargs: dict[str, Any] = {"encoder_hidden_states": torch.cat([embeds[1], embeds[0]])}
    if len(embeds) == 4:  # SDXL: pooled text and the size/crop numbers
        pooled = torch.cat([embeds[3], embeds[2]])
        time_ids = torch.tensor([[size, size, 0, 0, size, size]] * 2, device=device, dtype=dtype)
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        pipe.unet(sample, torch.tensor(500, device=device), **kwargs)
    unet = counter.get_total_flops()  # a batch of 2: the guided step
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        pipe.vae.decode(sample[:1].to(pipe.vae.dtype))
    vae = counter.get_total_flops()
    note(f"FLOP: text {text / 1e12:.3f}T, UNet forward {unet / 2e12:.3f}T (x2 per step), VAE decode {vae / 1e12:.3f}T")
    return float(steps * unet + vae + text)


def peak_tflops(device_name: str) -> float | None:
    return next((peak for part, peak in PEAK_TFLOPS.items() if part in device_name), None)


def bench_model(name: str, folder: Path, size: int, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from promptlab.experiment import cells, parse_experiment
    from promptlab.render.models import load_model
    from promptlab.runner import run_experiment
    from promptlab.scoring import load_scorer
    from promptlab.store import open_store

    def experiment(number: int) -> str:
        return EXPERIMENT.format(name=name, number=number, model=folder, batch_size=args.batch_size, steps=args.steps,
                                 size=size, seeds=1 if args.smoke else 4)  # fmt: skip

    def experiment_(number: int) -> str:
        # The smoke version keeps one level of the light axis: 4 cells, so a test runs it in seconds.
        text = experiment(number)
        return text.replace('light = ["", "cinematic lighting:1.2", "golden hour", "soft light"]', 'light = [""]') if args.smoke else text

    spec = parse_experiment(experiment_(0), f"bench-gpu-{name}")
    grid = cells(spec)
    pipe = load_model(spec.model).pipe
    pipe.set_progress_bar_config(disable=True)
    load_scorer(spec.scorer)
    prompts = [c.variant.prompt.to_plain() for c in grid]
    negatives = [c.variant.negative_prompt for c in grid]
    seeds = [c.seed for c in grid]
    batch = args.batch_size
    counter = itertools.count()
    url = f"sqlite:///{ROOT}/home/promptlab.db"
    call = {"num_inference_steps": args.steps, "width": size, "height": size, "guidance_scale": 7.5}

    def promptlab_runner() -> None:
        number = next(counter)
        with open_store(url) as store:
            summary = run_experiment(parse_experiment(experiment_(number), f"bench-gpu-{number}"), store)
        # Random weights in fp16 may overflow to an all-black image, which the runner records as failed.
        assert summary.rendered + summary.failed == len(grid), summary.to_dict()

    def generators(chunk: list[int]) -> list[Any]:
        return [torch.Generator("cpu").manual_seed(s) for s in chunk]

    def per_cell() -> None:
        for prompt, negative, seed in zip(prompts, negatives, seeds):
            pipe(prompt, negative_prompt=negative, generator=generators([seed])[0], **call)

    def bare_batched() -> None:
        for start in range(0, len(grid), batch):
            part = slice(start, start + batch)
            pipe(prompts[part], negative_prompt=negatives[part], generator=generators(seeds[part]), **call)

    def synced(fn: Any) -> Any:
        def run() -> None:
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()

        return run

    flops = flops_per_image(pipe, size, args.steps)
    contenders = {"a": synced(promptlab_runner), "b": synced(per_cell), "c": synced(bare_batched)}
    times = alternate(contenders, args.repeats, warmup=0 if args.smoke else 1)
    n = len(grid)
    rates = {key: n / median(values) for key, values in times.items()}
    device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = peak_tflops(device_name)
    achieved = {key: rate * flops / 1e12 for key, rate in rates.items()}
    return {
        "size": size,
        "images": n,
        "dtype": str(pipe.unet.dtype).removeprefix("torch."),
        "images_per_s_promptlab": round(rates["a"], 3),
        "images_per_s_per_cell": round(rates["b"], 3),
        "images_per_s_bare_batched": round(rates["c"], 3),
        "tflop_per_image": round(flops / 1e12, 4),
        "tflops_promptlab": round(achieved["a"], 2),
        "tflops_bare_batched": round(achieved["c"], 2),
        "peak_tflops_fp16": peak,
        "fraction_of_peak_promptlab": round(achieved["a"] / peak, 3) if peak else None,
        "seconds": {key: [round(t, 3) for t in values] for key, values in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="num_inference_steps (default 20; 2 in the smoke version)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--only", choices=["sd15", "sdxl"], default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny configs at 64 px (the default without CUDA)")
    args = parser.parse_args()

    import torch

    smoke = args.smoke = args.smoke or not torch.cuda.is_available()
    args.steps = args.steps or (2 if smoke else 20)
    if smoke:
        args.repeats = 1
    sizes = {"sd15": 64 if smoke else 512, "sdxl": 64 if smoke else 1024}
    results = {}
    for name, size in sizes.items():
        if args.only not in (None, name):
            continue
        note(f"{name}: building the pipeline from its config ({'smoke' if smoke else 'full size'})")
        folder = build(name, ROOT / "models", smoke)
        results[name] = bench_model(name, folder, size, args)
    emit(
        {
            "smoke": smoke,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "steps": args.steps,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "models": results,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
