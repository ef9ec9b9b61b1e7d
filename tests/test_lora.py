"""LoRAs on the micro model: real LoRA files made here with peft (diffusers' format) and in kohya's (A1111's)
format, loaded through diffusers, swept in experiments, recorded, written into A1111 parameters and imported.

The LoRA files are small and random (a LoRA's up-weights drawn from a seeded normal), so each changes
micro's images plainly; an SDXL LoRA is made the same way on the tiny SDXL model.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from promptlab.cli import app
from promptlab.errors import (
    ExperimentError,
    ModelError,
    PromptlabError,
    PromptSyntaxError,
    RenderError,
)
from promptlab.experiment import cells, expand, parse_experiment
from promptlab.prompt.a1111 import LoraTag, a1111_parts, lora_tags
from promptlab.render.adapters import (
    LORA_DIR_ENV,
    LoraSpec,
    addnet_sha256,
    loaded_loras,
    parse_lora,
    split_strength,
)

cli = CliRunner()
PROMPT = "a red circle on a black background"
STEPS = 2


def _peft_lora(pipe: Any, seed: int) -> dict[str, Any]:
    """A random LoRA for ``pipe``'s UNet in diffusers' format (peft's, converted as diffusers' training scripts do)."""
    import torch
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    unet = copy.deepcopy(pipe.unet)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))


def _kohya(diffusers_file: Path, target: Path) -> None:
    """The same LoRA in kohya's format, as A1111 and kohya's sd-scripts write SD 1.x LoRAs:
    ``lora_unet_<module path with _>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``."""
    import torch
    from safetensors.torch import load_file, save_file

    kohya = {}
    for key, tensor in load_file(diffusers_file).items():
        module, rest = key.removeprefix("unet.").split(".lora.")
        name = "lora_unet_" + module.replace(".", "_")
        side = "down" if rest.startswith("down") else "up"
        kohya[f"{name}.lora_{side}.weight"] = tensor
        if side == "down":
            kohya[f"{name}.alpha"] = torch.tensor(float(tensor.shape[0]))
    save_file(kohya, target)


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """detail (diffusers' format), detail-kohya (the same weights, kohya's), style (another), xl (for SDXL), broken."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from promptlab.render.models import base_pipeline

    folder = tmp_path_factory.mktemp("loras")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMPTLAB_CACHE", str(tmp_path_factory.getbasetemp() / "promptlab-cache"))
        micro = base_pipeline("micro")
        StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=_peft_lora(micro, 1), weight_name="detail.safetensors")
        StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=_peft_lora(micro, 2), weight_name="style.safetensors")
        xl = base_pipeline("tiny-sdxl")
        StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=_peft_lora(xl, 3), weight_name="xl.safetensors")
    _kohya(folder / "detail.safetensors", folder / "detail-kohya.safetensors")
    (folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json" + bytes(40))
    yield {path.stem: path for path in folder.glob("*.safetensors")}


def _render(*specs: LoraSpec) -> np.ndarray:
    from promptlab.render import RenderItem, RenderParams, render

    result = render([RenderItem(PROMPT, 1)], RenderParams(num_inference_steps=STEPS, loras=specs), "micro")
    return np.asarray(result.images[0].image, dtype=np.int16)


# Reading LoRA specs


def test_a_lora_is_written_name_colon_strength() -> None:
    assert split_strength("detail.safetensors:0.6") == ("detail.safetensors", 0.6)
    assert split_strength("owner/name:-1") == ("owner/name", -1.0)
    assert split_strength(r"C:\loras\detail.safetensors") == (r"C:\loras\detail.safetensors", None)
    assert split_strength("detail") == ("detail", None)


def test_a_lora_is_found_by_path_by_name_in_the_lora_folder_or_taken_as_a_hub_id(
    loras: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    by_path = parse_lora(f"{loras['detail']}:0.6")
    assert (by_path.name, by_path.strength, by_path.kind) == ("detail", 0.6, "file")
    assert by_path.sha256 == hashlib.sha256(loras["detail"].read_bytes()).hexdigest()
    assert parse_lora("detail", lora_dir=loras["detail"].parent) == LoraSpec(
        str(loras["detail"]), 1.0, "detail", by_path.sha256, str(loras["detail"]), by_path.a1111_hash
    )
    monkeypatch.setenv(LORA_DIR_ENV, str(loras["detail"].parent))
    assert parse_lora("detail.safetensors:0.5").path == str(loras["detail"])
    hub = parse_lora("someone/detail-lora:0.8")
    assert (hub.kind, hub.name, hub.sha256, hub.identity) == ("hub", "detail-lora", None, "hub:someone/detail-lora")


def test_a1111_names_a_lora_by_the_sha256_of_its_tensors_without_the_header(loras: dict[str, Path]) -> None:
    data = loras["detail"].read_bytes()
    header = int.from_bytes(data[:8], "little")
    assert addnet_sha256(loras["detail"]) == hashlib.sha256(data[8 + header :]).hexdigest()
    assert parse_lora(str(loras["detail"])).a1111_hash == addnet_sha256(loras["detail"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.safetensors", r"LoRA 'missing.safetensors': no such file .*looked for .*missing.safetensors"),
        ("detail:11", r"strength 11.0 must be a number from -10 to 10"),
        ("./weights.ckpt", r"no such file"),
    ],
)
def test_a_lora_that_cannot_be_found_is_named_with_the_fix(spec: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=message):
        parse_lora(spec, lora_dir=tmp_path)


def test_a_pickle_lora_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.pt").write_bytes(b"pickle")
    with pytest.raises(ModelError, match=r"LoRA 'old.pt' is a pickle file .*Use the LoRA's .safetensors file"):
        parse_lora("old.pt", base_dir=tmp_path)


# Rendering


@pytest.mark.slow
def test_both_formats_load_change_the_image_and_switch_without_reloading_the_base(loras: dict[str, Path]) -> None:
    from promptlab.render.models import base_pipeline, loaded_models

    plain = _render()
    base = base_pipeline("micro")
    held = loaded_models()
    detail = _render(parse_lora(str(loras["detail"])))
    kohya = _render(parse_lora(str(loras["detail-kohya"])))
    assert np.abs(detail - plain).max() > 20  # the LoRA changes the image
    assert np.abs(kohya - detail).max() <= 1  # kohya's file holds the same weights: the same image
    assert np.abs(_render(parse_lora(f"{loras['detail']}:0")) - plain).max() == 0  # strength 0 is off
    both = _render(parse_lora(f"{loras['detail']}:0.5"), parse_lora(f"{loras['style']}:0.5"))
    assert np.abs(both - detail).max() > 0
    # back to no LoRA: the model renders exactly as before any was loaded
    assert np.abs(_render() - plain).max() == 0
    # one base model the whole time, its adapters loaded once each
    assert base_pipeline("micro") is base and loaded_models() == held
    assert len(loaded_loras(base)) == 3


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("xl", (r"LoRA file .*xl.safetensors does not fit model 'micro' \(sd1\): its layer down_blocks.1.* is 32 wide, "
                r"the model's is 64; it was made for another base model. Use a LoRA trained for the same base")),
        ("broken", r"LoRA file .*broken.safetensors cannot be read as a LoRA .*: the file is damaged or not a LoRA; download it again"),
    ],
)  # fmt: skip
def test_a_lora_for_another_base_or_a_damaged_file_fails_in_one_line_naming_it(
    loras: dict[str, Path], name: str, message: str
) -> None:
    from promptlab.render import RenderParams
    from promptlab.render.engine import check_render
    from promptlab.render.models import base_pipeline

    with pytest.raises(ModelError, match=message) as caught:
        check_render(RenderParams(num_inference_steps=STEPS, loras=(parse_lora(str(loras[name])),)), "micro")
    assert "\n" not in str(caught.value)
    assert not any(adapter.startswith(name) for adapter in loaded_loras(base_pipeline("micro")))


def test_a_lora_trained_on_sdxls_text_width_is_named_as_an_sdxl_lora(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from promptlab.render import RenderParams
    from promptlab.render.engine import check_render

    layer = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
    path = tmp_path / "sdxl-style.safetensors"
    save_file({f"{layer}.lora.down.weight": torch.zeros(4, 2048), f"{layer}.lora.up.weight": torch.zeros(64, 4)}, path)
    with pytest.raises(ModelError, match=r"attn2.to_k is 2048 wide, the model's is 64; made for SDXL; it was made for another base"):
        check_render(RenderParams(num_inference_steps=STEPS, loras=(parse_lora(str(path)),)), "micro")


def test_a_hub_lora_not_on_this_machine_offline_names_the_download(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlab.render import RenderParams
    from promptlab.render.engine import check_render

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"LoRA 'nobody/no-such-lora' is not on this machine .*hf download nobody/no-such-lora"):
        check_render(RenderParams(num_inference_steps=STEPS, loras=(parse_lora("nobody/no-such-lora"),)), "micro")


# A1111 prompts


def test_lora_tags_come_out_of_an_a1111_prompt_with_their_weights() -> None:
    assert lora_tags("a fox <lora:detail:0.8>, <LORA:style> snow") == (
        "a fox ,  snow",
        (LoraTag("detail", 0.8, "<lora:detail:0.8>"), LoraTag("style", 1.0, "<LORA:style>")),
    )
    assert lora_tags("a fox <hypernet:x:1>") == ("a fox <hypernet:x:1>", ())
    with pytest.raises(PromptSyntaxError, match="weighs the text encoder and the UNet differently"):
        lora_tags("<lora:detail:1:0.5>")
    with pytest.raises(PromptSyntaxError, match="a LoRA tag loads a LoRA, which promptlab does for a prompt it renders"):
        a1111_parts("a fox <lora:detail:0.8>")


# Experiments


def _experiment(folder: Path, body: str, *, syntax: str = "compel") -> str:
    return (
        f'name = "loras"\nmodel = "micro"\nseeds = [1]\nscorer = "micro-clip"\nsyntax = "{syntax}"\n'
        f'lora_dir = "{folder}"\n{body}\n[params]\nnum_inference_steps = {STEPS}\n'
    )


def test_an_experiment_sweeps_a_lora_axis_and_the_strength_of_its_fixed_lora(loras: dict[str, Path]) -> None:
    spec = parse_experiment(
        _experiment(
            loras["detail"].parent,
            f'loras = ["detail"]\n[prompt]\nsubject = "{PROMPT}"\n[axes]\nlora_strength = [0, 0.5, 1.0]\nlora = ["none", "style:0.5"]\n',
        )
    )
    variants = expand(spec)
    assert [v.axis_values for v in variants[:2]] == [
        {"lora_strength": 0.0, "lora": "none"},
        {"lora_strength": 0.0, "lora": "style:0.5"},
    ]
    assert [[lora.describe() for lora in v.loras] for v in variants] == [
        ["detail:0"], ["detail:0", "style:0.5"], ["detail:0.5"], ["detail:0.5", "style:0.5"], ["detail:1"], ["detail:1", "style:0.5"],
    ]  # fmt: skip
    assert len({v.key for v in variants}) == 6
    # a batch never mixes two LoRA settings
    from promptlab.runner import render_groups

    assert [len(group) for group in render_groups(cells(spec))] == [1] * 6


def test_a1111_lora_tags_in_a_subject_load_the_named_lora_from_the_lora_folder(loras: dict[str, Path]) -> None:
    spec = parse_experiment(
        _experiment(loras["detail"].parent, f'[prompt]\nsubject = "{PROMPT} <lora:detail:0.7>"\n', syntax="a1111")
    )
    (variant,) = expand(spec)
    assert variant.prompt.subject == PROMPT
    assert [(lora.name, lora.strength, lora.path) for lora in variant.loras] == [("detail", 0.7, str(loras["detail"]))]
    assert spec.raw["prompt"]["subject"].endswith("<lora:detail:0.7>")  # the file is kept as written


def test_a_subjects_lora_tag_for_a_lora_given_elsewhere_is_refused(loras: dict[str, Path]) -> None:
    with pytest.raises(ExperimentError, match=r"\[prompt\] subject = \"<lora:detail:0.7>\": expected a LoRA tag for a LoRA that loras"):
        parse_experiment(
            _experiment(loras["detail"].parent, f'loras = ["detail"]\n[prompt]\nsubject = "{PROMPT} <lora:detail:0.7>"\n', syntax="a1111")
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('loras = ["missing"]\n[prompt]\nsubject = "x"\n', r'loras = "missing": LoRA \'missing\': no such file'),
        ('[prompt]\nsubject = "x"\n[axes]\nlora_strength = [0, 1]\n', r"strengths of the one LoRA in loras"),
        ('loras = ["detail"]\n[prompt]\nsubject = "x"\n[axes]\nlora = ["none", "detail:0.5"]\n', r"a LoRA that is not also in loras"),
        ('loras = ["detail"]\n[prompt]\nsubject = "x"\n[axes]\nlora_strength = [0, "strong"]\n', r"a strength: a number"),
        ('loras = ["detail", "detail:0.5"]\n[prompt]\nsubject = "x"\n', r"each LoRA once"),
    ],
)
def test_an_experiment_with_a_bad_lora_fails_naming_the_key(loras: dict[str, Path], body: str, message: str) -> None:
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(_experiment(loras["detail"].parent, body))


def test_variant_keys_without_loras_are_unchanged(loras: dict[str, Path]) -> None:
    from promptlab.experiment import variant_key
    from promptlab.prompt import Prompt

    prompt = Prompt(PROMPT)
    bare = variant_key(prompt=prompt, negative_prompt="", model="micro", task="txt2img", params={})
    assert variant_key(prompt=prompt, negative_prompt="", model="micro", task="txt2img", params={}, loras=()) == bare
    with_lora = variant_key(
        prompt=prompt, negative_prompt="", model="micro", task="txt2img", params={}, loras=(parse_lora(str(loras["detail"])),)
    )
    assert with_lora != bare


@pytest.mark.slow
def test_a_lora_strength_sweep_is_recorded_exported_and_analysed(loras: dict[str, Path], tmp_path: Path) -> None:
    from promptlab.analysis import effects_table
    from promptlab.importer.images import imported_prompt
    from promptlab.metadata import read_image_metadata
    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    spec = parse_experiment(
        _experiment(
            loras["detail"].parent,
            f'loras = ["detail"]\nseeds = [1, 2]\n[prompt]\nsubject = "{PROMPT}"\n[axes]\nlora_strength = [0, 1.0]\n',
        ).replace("seeds = [1]\n", "")
    )
    with open_store() as store:
        summary = run_experiment(spec, store)
        assert (summary.rendered, summary.failed) == (4, 0)
        runs = sorted(store.list_runs(), key=lambda run: (run.axes["lora_strength"], run.seed))
        detail = parse_lora(str(loras["detail"]))
        assert [run.params["loras"] for run in runs][-1] == [
            {"name": "detail", "source": str(loras["detail"]), "sha256": detail.sha256, "strength": 1.0, "a1111_hash": detail.a1111_hash}
        ]
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT name, sha256, strength FROM run_lora ORDER BY run_id")).all()
        assert sorted(rows) == sorted([("detail", detail.sha256, 0.0)] * 2 + [("detail", detail.sha256, 1.0)] * 2)
        frame = store.runs_frame(spec.name)
    effects = effects_table(frame)
    assert [(effect.axis, effect.level, effect.reference) for effect in effects] == [("lora_strength", 1.0, 0.0)]
    # exported as A1111 takes a LoRA: the variant's tag after its A1111 prompt, and in its style
    from promptlab.export import export_rows
    from promptlab.export.styles import style_template

    rows = {row.label: row for row in export_rows(frame, top=None)}
    assert rows["lora_strength=1.0"].prompt_a1111 == f"{PROMPT} <lora:detail:1>"
    assert style_template(rows["lora_strength=0.0"]) == "{prompt} <lora:detail:0>"
    # the image's A1111 parameters: the tag in the prompt, the hash under Lora hashes, as A1111 writes them
    assert runs[-1].image_path is not None
    written = read_image_metadata(runs[-1].image_path)
    infotext = written.chunks["parameters"]
    assert infotext.splitlines()[0] == f"{PROMPT} <lora:detail:1>"
    assert f'Lora hashes: "detail: {detail.a1111_hash[:12]}"' in infotext or f"Lora hashes: detail: {detail.a1111_hash[:12]}" in infotext
    # and promptlab's import reads the LoRA back
    assert imported_prompt(written).loras == (("detail", 1.0),)


def test_comfyui_lora_loaders_come_back_as_the_runs_loras(tmp_path: Path) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from promptlab.importer import import_image, store_imported
    from promptlab.store import open_store

    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5.safetensors"}},
        "10": {"class_type": "LoraLoader", "inputs": {
            "lora_name": "detail.safetensors", "strength_model": 0.8, "strength_clip": 0.8, "model": ["4", 0], "clip": ["4", 1]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in the snow", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 7, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    }  # fmt: skip
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    path = tmp_path / "comfy.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    with open_store() as store:
        run = store.get_run(store_imported(store, import_image(path)).id)
        assert run.params["loras"] == [{"name": "detail", "source": "detail.safetensors", "sha256": None, "strength": 0.8}]
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT name, sha256, strength FROM run_lora")).all() == [("detail", None, 0.8)]


# The CLI


@pytest.mark.slow
def test_promptlab_render_takes_loras_and_a1111_tags(loras: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlab.runner import rerender
    from promptlab.store import open_store

    monkeypatch.setenv(LORA_DIR_ENV, str(loras["detail"].parent))
    base = ["render", "--model", "micro", "--steps", str(STEPS), "--seed", "1", "--out", str(tmp_path), "--format", "json"]
    by_option = cli.invoke(app, [*base, PROMPT, "--lora", "detail:0.7"])
    by_tag = cli.invoke(app, [*base, f"{PROMPT} <lora:detail:0.7>", "--syntax", "a1111"])
    assert by_option.exit_code == 0, by_option.output
    assert by_tag.exit_code == 0, by_tag.output
    # the same LoRA at the same strength on the same text: the same cell, recorded once
    assert json.loads(by_option.output)[0]["run_id"] == json.loads(by_tag.output)[0]["run_id"]
    with open_store() as store:
        (run,) = store.list_runs()
        assert [(lora["name"], lora["strength"]) for lora in run.params["loras"]] == [("detail", 0.7)]
        # rendered again from its record, LoRA and all: the same image
        (again,) = rerender(run.id, store)
        assert again.identical, again
    # a LoRA file changed since the run is named, not silently replaced
    changed = tmp_path / "loras"
    changed.mkdir()
    (changed / "detail.safetensors").write_bytes(loras["style"].read_bytes())
    monkeypatch.setenv(LORA_DIR_ENV, str(changed))
    result = cli.invoke(app, [*base, PROMPT, "--lora", "detail:0.7"])
    assert result.exit_code == 0
    with open_store() as store:
        moved = next(r for r in store.list_runs() if r.params.get("loras") and r.params["loras"][0]["source"].startswith(str(changed)))
        (changed / "detail.safetensors").write_bytes(loras["detail"].read_bytes())
        with pytest.raises(RenderError, match=r"its LoRA .*detail.safetensors has changed since the run \(sha256 differs\)"):
            rerender(moved.id, store)


@pytest.mark.parametrize("name", ["xl", "broken", "missing"])
def test_promptlab_run_with_a_bad_lora_fails_in_one_line_and_records_no_run(loras: dict[str, Path], tmp_path: Path, name: str) -> None:
    from promptlab.store import open_store

    path = tmp_path / "bad.toml"
    lora = str(loras[name]) if name in loras else str(tmp_path / "missing.safetensors")
    path.write_text(_experiment(tmp_path, f'loras = ["{lora}"]\n[prompt]\nsubject = "{PROMPT}"\n'))
    result = cli.invoke(app, ["run", str(path)])
    # The CLI's entry point prints a PromptlabError as its one line and exits 1.
    assert result.exit_code == 1 and isinstance(result.exception, PromptlabError), result.output
    assert lora in str(result.exception) and "\n" not in str(result.exception)
    with open_store() as store:
        assert store.list_runs() == []


# The dashboard


def test_builds_comparison_sweeps_a_loras_strength(loras: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(LORA_DIR_ENV, str(loras["detail"].parent))
    at = AppTest.from_string("from promptlab.dashboard import build\nbuild.page()", default_timeout=300).run()
    at.text_input(key="cmp_lora").set_value("detail").run()
    at.text_input(key="cmp_lora_strengths").set_value("0, 0.5, 1").run()
    at.text_input(key="cmp_name").set_value("lora-strength").run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert at.metric[-1].value == str(3 * 4)  # 3 strengths x 4 draft seeds
    code = next(c.value for c in at.code if c.value.startswith('name = "lora-strength"'))
    assert 'loras = [\n    "detail",\n]' in code and "lora_strength = [\n    0.0,\n    0.5,\n    1.0,\n]" in code, code
    at.text_input(key="cmp_lora_strengths").set_value("0, strong").run()
    assert at.error and "'0, strong' are not numbers" in at.error[0].value
    at.text_input(key="cmp_lora_strengths").set_value("").run()
    at.text_input(key="cmp_lora").set_value("no-such-lora").run()
    assert at.error and "LoRA 'no-such-lora': no such file" in at.error[0].value


def test_an_experiment_with_a_hub_lora_not_here_offline_fails_before_loading_anything(
    loras: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = parse_experiment(_experiment(loras["detail"].parent, f'loras = ["nobody/no-such-lora:0.5"]\n[prompt]\nsubject = "{PROMPT}"\n'))
    with open_store() as store:
        with pytest.raises(ModelError, match=r"LoRA 'nobody/no-such-lora' is not on this machine .*HF_HUB_OFFLINE=1"):
            run_experiment(spec, store, scorer=lambda name: pytest.fail("the scorer loads after the offline check"))
        assert store.list_runs() == []


def test_a_render_setup_with_loras_reads_back_from_json(loras: dict[str, Path]) -> None:
    import dataclasses

    from promptlab.render import RenderParams

    params = RenderParams(num_inference_steps=STEPS, loras=(parse_lora(f"{loras['detail']}:0.5"),))
    again = RenderParams(**json.loads(json.dumps(dataclasses.asdict(params))))
    assert again == params


def test_a_built_in_lora_is_found_by_name_or_named_with_the_command_that_remakes_it(
    loras: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptlab.render import adapters

    monkeypatch.setitem(adapters.BUILTIN_LORAS, "micro-teal", (tmp_path / "micro-teal-lora", "promptlab micro train-lora"))
    with pytest.raises(ModelError, match=r"built-in LoRA 'micro-teal' has no weights at .*micro-teal-lora; .*`promptlab micro train-lora`"):
        parse_lora("micro-teal:0.5")
    (tmp_path / "micro-teal-lora").mkdir()
    (tmp_path / "micro-teal-lora" / "pytorch_lora_weights.safetensors").write_bytes(loras["detail"].read_bytes())
    teal = parse_lora("micro-teal:0.5")
    assert (teal.name, teal.strength, Path(teal.source).name) == ("micro-teal", 0.5, "pytorch_lora_weights.safetensors")


@pytest.mark.slow
def test_a_render_with_a_lora_is_diffusers_own_pixel_for_pixel(loras: dict[str, Path]) -> None:
    """promptlab's render at a strength equals a fresh diffusers pipeline with load_lora_weights + set_adapters."""
    import torch
    from diffusers import StableDiffusionPipeline

    from promptlab.builtin import MICRO_MODELS
    from promptlab.render import RenderItem, RenderParams, render

    pipe = StableDiffusionPipeline.from_pretrained(str(MICRO_MODELS["micro"]), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(loras["detail-kohya"]), adapter_name="detail")
    pipe.set_adapters(["detail"], adapter_weights=[0.6])
    with torch.inference_mode():
        theirs = pipe(PROMPT, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(3), width=64, height=64).images[0]
    params = RenderParams(num_inference_steps=STEPS, width=64, height=64, loras=(parse_lora(f"{loras['detail-kohya']}:0.6"),))
    mine = render([RenderItem(PROMPT, 3)], params, "micro").images[0].image
    assert np.abs(np.asarray(theirs, dtype=np.int16) - np.asarray(mine, dtype=np.int16)).max() == 0


def test_readmes_lora_strength_file_parses() -> None:
    import re

    from promptlab.builtin import MICRO_TEAL_LORA

    if not any(MICRO_TEAL_LORA.glob("*.safetensors")):
        pytest.skip(f"micro's teal LoRA is not at {MICRO_TEAL_LORA} (promptlab micro train-lora makes it)")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### LoRAs") :]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None
    variants = expand(parse_experiment(block.group(1)))
    assert len(variants) == 2 * 5
    assert [lora.describe() for lora in variants[-1].loras] == ["micro-teal:1"]
