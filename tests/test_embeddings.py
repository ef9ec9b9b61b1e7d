"""Textual-inversion embeddings on the tiny SD 1.x and SDXL models: formats, what they change, errors, records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from promptlab.errors import RenderError
from promptlab.render.conditioning import encode_prompts
from promptlab.render.embeddings import (
    apply_embeddings,
    read_embedding,
    textual_inversion_manager,
    unused_embeddings,
)
from promptlab.render.engine import render
from promptlab.render.models import load_model
from promptlab.render.params import (
    EmbeddingFile,
    RenderItem,
    RenderParams,
    parse_embedding,
)
from promptlab.render.tiny import tiny_embedding_file

SMALL = {"num_inference_steps": 2, "width": 64, "height": 64}


@pytest.fixture(scope="module", autouse=True)
def _threads(one_torch_thread: None) -> None:
    return None


def _vectors(family: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(tiny_embedding_file("tiny-sdxl-embedding" if family == "sdxl" else "tiny-sd-embedding")))


def _encode(model: str, texts: list[str], files: tuple[EmbeddingFile, ...]) -> torch.Tensor:
    loaded = load_model(model)
    apply_embeddings(loaded.pipe, loaded.family, files)
    with torch.inference_mode():
        return encode_prompts(loaded.pipe, loaded.family, texts, [""] * len(texts)).prompt_embeds.clone()


@pytest.mark.parametrize(
    ("model", "name"),
    [("tiny-sd", "tiny-sd-embedding"), pytest.param("tiny-sdxl", "tiny-sdxl-embedding", marks=pytest.mark.slow)],
)
def test_the_embedding_changes_the_conditioning_at_its_token_and_only_there(model: str, name: str) -> None:
    files = (EmbeddingFile(str(tiny_embedding_file(name)), "<tiny>"),)
    texts = ["a red fox", "a <tiny> fox"]
    before = _encode(model, texts, ())
    with_embedding = _encode(model, texts, files)
    after = _encode(model, texts, ())
    # A prompt without the token is untouched; unloading gives the model's own conditioning back.
    assert torch.equal(before[0], with_embedding[0])
    assert torch.equal(before, after)
    # CLIP's attention is causal: the start token and "a" come before the token and do not change.
    assert torch.equal(before[1, :2], with_embedding[1, :2])
    assert not torch.allclose(before[1, 2], with_embedding[1, 2])


def test_a_multi_vector_token_becomes_all_its_vectors_in_compel_as_in_diffusers() -> None:
    loaded = load_model("tiny-sd")
    apply_embeddings(loaded.pipe, loaded.family, (EmbeddingFile(str(tiny_embedding_file("tiny-sd-embedding")), "<tiny>"),))
    tokenizer = loaded.pipe.tokenizer
    first, second = tokenizer.convert_tokens_to_ids(["<tiny>", "<tiny>_1"])
    manager = textual_inversion_manager(loaded.pipe.text_encoder)
    assert manager.expand_textual_inversion_token_ids_if_necessary([320, first, 2368]) == [320, first, second, 2368]
    with torch.inference_mode():
        ours = encode_prompts(loaded.pipe, loaded.family, ["a <tiny> fox"], [""]).prompt_embeds
        theirs = loaded.pipe.encode_prompt(["a <tiny> fox"], "cpu", 1, do_classifier_free_guidance=False)[0]
        # Written in capitals, diffusers' text expansion misses the second vector; the id expansion does not.
        upper = encode_prompts(loaded.pipe, loaded.family, ["a <TINY> fox"], [""]).prompt_embeds
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(upper, theirs, atol=1e-5)
    apply_embeddings(loaded.pipe, loaded.family, ())


def test_unloading_removes_only_what_was_loaded() -> None:
    """A model's own added token (some fine-tunes ship one) stays, with its vector, when embeddings come and go."""
    loaded = load_model("tiny-sd")
    pipe = loaded.pipe
    own = torch.arange(32, dtype=torch.float32) / 32
    pipe.load_textual_inversion(own, token="<model-own>")
    try:
        apply_embeddings(pipe, loaded.family, (EmbeddingFile(str(tiny_embedding_file("tiny-sd-embedding")), "<tiny>"),))
        apply_embeddings(pipe, loaded.family, ())
        token_id = pipe.tokenizer.convert_tokens_to_ids("<model-own>")
        assert "<tiny>" not in pipe.tokenizer.get_vocab()
        assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[token_id], own)
    finally:
        pipe.unload_textual_inversion("<model-own>")


def _formats(tmp_path: Path) -> dict[str, EmbeddingFile]:
    vectors = _vectors("sd1")["emb_params"]
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": "old", "step": 3}, tmp_path / "a1111.pt")
    save_file({"emb_params": vectors}, str(tmp_path / "a1111.safetensors"))
    save_file({"<diffusers-own>": vectors}, str(tmp_path / "learned.safetensors"))
    (tmp_path / "folder").mkdir()
    save_file({"<in-folder>": vectors}, str(tmp_path / "folder" / "learned_embeds.safetensors"))
    return {
        "a1111.pt": EmbeddingFile(str(tmp_path / "a1111.pt")),
        "a1111.safetensors": EmbeddingFile(str(tmp_path / "a1111.safetensors")),
        "diffusers": EmbeddingFile(str(tmp_path / "learned.safetensors")),
        "folder": EmbeddingFile(str(tmp_path / "folder")),
    }


@pytest.mark.slow
def test_every_format_reads_the_same_vectors_with_its_own_token(tmp_path: Path) -> None:
    files = _formats(tmp_path)
    read = {name: read_embedding(file) for name, file in files.items()}
    # A1111 names an embedding by its file; a diffusers file by its one key.
    assert {name: (e.token, e.format, e.vectors) for name, (e, _) in read.items()} == {
        "a1111.pt": ("a1111", "a1111", 2),
        "a1111.safetensors": ("a1111", "a1111", 2),
        "diffusers": ("<diffusers-own>", "diffusers", 2),
        "folder": ("<in-folder>", "diffusers", 2),
    }
    reference = read["a1111.pt"][1]["text_encoder"]
    for _, vectors in read.values():
        assert torch.equal(vectors["text_encoder"], reference)
    # The same vectors under one token condition alike, whatever the file.
    texts = ["a <tiny> fox"]
    encoded = [_encode("tiny-sd", texts, (EmbeddingFile(file.path, "<tiny>"),)) for file in files.values()]
    for other in encoded[1:]:
        assert torch.equal(encoded[0], other)
    _encode("tiny-sd", texts, ())


@pytest.mark.slow
def test_render_records_each_embedding_and_unloads_it_after(tmp_path: Path) -> None:
    file = EmbeddingFile(str(tiny_embedding_file("tiny-sd-embedding")), "<tiny>")
    items = [RenderItem("a <tiny> fox", 1)]
    base = render(items, RenderParams(**SMALL), "tiny-sd")
    with_embedding = render(items, RenderParams(**SMALL, embeddings=(file,)), "tiny-sd")
    again = render(items, RenderParams(**SMALL), "tiny-sd")
    pixels = [np.asarray(r.images[0].image, dtype=int) for r in (base, with_embedding, again)]
    assert np.abs(pixels[0] - pixels[1]).max() > 0
    assert np.array_equal(pixels[0], pixels[2])
    (embedding,) = with_embedding.setup.embeddings
    assert (embedding.name, embedding.token, embedding.vectors) == ("tiny-sd-embedding", "<tiny>", 2)
    assert embedding.sha256 == with_embedding.setup.to_dict()["embeddings"][0]["sha256"] and len(embedding.sha256) == 64


@pytest.mark.parametrize(
    ("spec", "path", "token"),
    [("emb.pt", "emb.pt", None), ("a/emb.safetensors:<x>", "a/emb.safetensors", "<x>"), ("C:\\e\\emb.pt", "C:\\e\\emb.pt", None)],
)
def test_parse_embedding(spec: str, path: str, token: str | None) -> None:
    assert parse_embedding(spec) == EmbeddingFile(path, token)


def test_unused_tokens_are_named() -> None:
    files = [EmbeddingFile("a.pt", "<shiny>"), EmbeddingFile("b.pt", "<dull>")]
    assert unused_embeddings(files, ["a <SHINY> fox", ""]) == ["<dull>"]


def _errors(tmp_path: Path) -> dict[str, tuple[str, str, str]]:
    """Case -> (model, embedding spec, the message's words)."""
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00garbage" * 50)
    save_file({"lora_unet_down.alpha": torch.ones(1), "lora_unet_down.weight": torch.ones(2)}, str(tmp_path / "lora.safetensors"))
    save_file({"emb_params": torch.randn(1, 768)}, str(tmp_path / "sd15.safetensors"))
    save_file({"emb_params": torch.tensor([[float("nan")] * 32])}, str(tmp_path / "nan.safetensors"))
    sdxl = str(tiny_embedding_file("tiny-sdxl-embedding"))
    sd = str(tiny_embedding_file("tiny-sd-embedding"))
    return {
        "missing": ("tiny-sd", f"{tmp_path}/nope.pt:<t>", "no such file"),
        "corrupt": ("tiny-sd", f"{tmp_path}/corrupt.safetensors:<t>", "cannot be read as an embedding file"),
        "not an embedding": ("tiny-sd", f"{tmp_path}/lora.safetensors:<t>", "not a textual-inversion file"),
        "nan": ("tiny-sd", f"{tmp_path}/nan.safetensors:<t>", "NaN or infinite"),
        "sdxl on sd1": ("tiny-sd", f"{sdxl}:<t>", "is an SDXL embedding (clip_l and clip_g vectors) but the model is SD 1.x"),
        "sd1 on sdxl": ("tiny-sdxl", f"{sd}:<t>", "the model is SDXL, whose two text encoders need clip_l and clip_g"),
        "another width": ("tiny-sd", f"{tmp_path}/sd15.safetensors:<t>", "has 768-wide vectors but this SD 1.x model's text_encoder takes 32-wide"),
        "a vocabulary word": ("tiny-sd", f"{sd}:cat", "is a word the text encoder already knows"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "corrupt", "not an embedding", "nan", "sdxl on sd1", "sd1 on sdxl", "another width", "a vocabulary word"]
)
def test_bad_embeddings_fail_naming_the_file_and_leave_the_model_as_it_was(case: str, tmp_path: Path) -> None:
    model, spec, words = _errors(tmp_path)[case]
    file = parse_embedding(spec)
    loaded = load_model(model)
    size = loaded.pipe.text_encoder.get_input_embeddings().weight.shape
    with pytest.raises(RenderError) as raised:
        render([RenderItem(f"a {file.token} cat", 1)], RenderParams(**SMALL, embeddings=(file,)), model)
    message = str(raised.value)
    assert words in message and file.path.split("/")[-1] in message and "\n" not in message
    assert loaded.pipe.text_encoder.get_input_embeddings().weight.shape == size


def test_two_embeddings_with_one_token_are_refused() -> None:
    sd = str(tiny_embedding_file("tiny-sd-embedding"))
    with pytest.raises(RenderError, match="each token may be given once"):
        RenderParams(embeddings=(EmbeddingFile(sd, "<a>"), EmbeddingFile(sd, "<a>")))


# The CLI and the store.


def _cli(*args: str) -> tuple[int, str]:
    """Exit code, and stdout or the error ``promptlab.cli.main`` prints as one line (``test_cli_one_line_error``)."""
    from promptlab.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else f"{result.exception}\n"


@pytest.mark.slow
def test_cli_render_records_the_embedding_and_writes_ti_hashes(tmp_path: Path) -> None:
    from promptlab.store import RunEmbedding, open_store

    sd = str(tiny_embedding_file("tiny-sd-embedding"))
    code, output = _cli(
        "render", "a <tiny> fox", "--model", "tiny-sd", "--steps", "2", "--size", "64x64", "--seed", "3",
        "--embedding", f"{sd}:<tiny>", "--out", str(tmp_path), "--format", "json",
    )  # fmt: skip
    assert code == 0, output
    (made,) = json.loads(output)
    with Image.open(made["path"]) as image:
        text = image.text["parameters"]
    with open_store() as store:
        run = store.get_run(made["run_id"])
        with store.engine.connect() as conn:
            rows = conn.execute(RunEmbedding.__table__.select()).mappings().all()
    sha256 = run.params["embeddings"][0]["sha256"]
    assert f'TI hashes: "<tiny>: {sha256[:12]}"' in text
    assert [(r["run_id"], r["name"], r["token"], r["sha256"]) for r in rows] == [(run.id, "tiny-sd-embedding", "<tiny>", sha256)]


@pytest.mark.parametrize(
    ("prompt", "spec", "words"),
    [
        ("a fox", "{sd}:<tiny>", "its token '<tiny>' is in neither the prompt nor the negative prompt"),
        ("a <t> fox", "{tmp}/nope.safetensors:<t>", "no such file"),
        ("a <t> fox", "{sdxl}:<t>", "is an SDXL embedding"),
    ],
)
def test_cli_errors_are_one_line_exit_1_and_record_nothing(prompt: str, spec: str, words: str, tmp_path: Path) -> None:
    from promptlab.store import open_store

    spec = spec.format(sd=tiny_embedding_file("tiny-sd-embedding"), sdxl=tiny_embedding_file("tiny-sdxl-embedding"), tmp=tmp_path)
    code, output = _cli("render", prompt, "--model", "tiny-sd", "--steps", "2", "--size", "64x64", "--embedding", spec, "--out", str(tmp_path))
    assert code == 1
    assert words in output and output.count("\n") == 1 and "Traceback" not in output
    with open_store() as store:
        assert store.list_runs() == []


@pytest.mark.slow
def test_cli_one_line_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = f"{tiny_embedding_file('tiny-sdxl-embedding')}:<t>"
    args = ["render", "a <t> fox", "--model", "tiny-sd", "--steps", "2", "--embedding", spec, "--out", str(tmp_path)]
    code = "from promptlab.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code, *args], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: embedding ") and "tiny-sdxl-embedding" in result.stderr


def test_a_store_from_before_embeddings_upgrades(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, insert, inspect

    from promptlab.store import MIGRATIONS, open_store
    from promptlab.store.migrations import MIGRATION_TABLE
    from promptlab.store.schema import utc_now

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        MIGRATION_TABLE.create(conn)
        for name, step in MIGRATIONS.items():
            if name >= "m005":
                break
            step(conn)
            conn.execute(insert(MIGRATION_TABLE).values(name=name, applied_at=utc_now()))
    engine.dispose()
    with open_store(url) as store:
        columns = {c["name"] for c in inspect(store.engine).get_columns("run")}
        assert "controlnet_conditioning_scale" in columns
        assert inspect(store.engine).has_table("run_embedding")
        assert store.list_runs() == []


# Experiment files.


def _experiment(tmp_path: Path, body: str, prompt: str = 'subject = "a red circle"') -> object:
    import shutil

    from promptlab.experiment import load_experiment

    shutil.copy(tiny_embedding_file("tiny-sd-embedding"), tmp_path / "ink.safetensors")
    (tmp_path / "e.toml").write_text(f'name = "e"\nmodel = "tiny-sd"\nseeds = 2\n{body}\n[prompt]\n{prompt}\n')
    return load_experiment(tmp_path / "e.toml")


def test_an_embedding_axis_works_like_a_term_axis(tmp_path: Path) -> None:
    from promptlab.experiment import expand
    from promptlab.runner.recipe import render_params

    spec = _experiment(tmp_path, '[axes]\nembedding = ["none", "ink.safetensors:<ink>"]\n')
    none, ink = expand(spec)
    assert (none.axis_values, ink.axis_values) == ({"embedding": "none"}, {"embedding": "<ink>"})
    assert none.prompt.to_compel() == "a red circle" and ink.prompt.to_compel() == "a red circle, <ink>"
    assert "embeddings" not in none.params and [e["token"] for e in ink.params["embeddings"]] == ["<ink>"]
    assert render_params(ink).embeddings == (EmbeddingFile(str((tmp_path / "ink.safetensors").resolve()), "<ink>"),)
    # The key counts the file by content: the same file elsewhere gives the same key.
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "ink.safetensors").write_bytes((tmp_path / "ink.safetensors").read_bytes())
    moved = _experiment(tmp_path, '[axes]\nembedding = ["none", "moved/ink.safetensors:<ink>"]\n')
    assert expand(moved)[1].key == ink.key


def test_a_fixed_embedding_loads_for_every_variant_where_its_token_is_written(tmp_path: Path) -> None:
    from promptlab.experiment import expand

    spec = _experiment(tmp_path, 'embeddings = ["ink.safetensors:<neg>"]\n', 'subject = "a red circle"\nnegative = "<neg>"')
    (variant,) = expand(spec)
    assert [e["token"] for e in variant.params["embeddings"]] == ["<neg>"] and variant.negative_prompt == "<neg>"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('embeddings = ["ink.safetensors:<neg>"]\n', "the token '<neg>' of"),
        ('embeddings = ["nope.pt:<t>"]\n', 'embeddings = "nope.pt:<t>": embedding'),
        ('[axes]\nembedding = ["none", "ink.safetensors:<a>", "ink.safetensors:<a>"]\n', "each embedding once"),
        ('[axes]\nembedding = ["none", "ink.safetensors:cat"]\n', "is a word"),
        ('[axes]\nembedding = ["none", "ink.safetensors:pop-art"]\n', "is also a term of the vocabulary (category style)"),
    ],
)
def test_experiment_embedding_errors(tmp_path: Path, body: str, words: str) -> None:
    from promptlab.errors import ExperimentError
    from promptlab.experiment import expand

    with pytest.raises((ExperimentError, RenderError)) as raised:
        expand(_experiment(tmp_path, body))
        # A token that is a vocabulary word is found when the run loads the embedding.
        render([RenderItem("a cat", 1)], RenderParams(**SMALL, embeddings=(EmbeddingFile(str(tmp_path / "ink.safetensors"), "cat"),)), "tiny-sd")
    assert words in str(raised.value)
