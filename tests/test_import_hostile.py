"""Hostile files for ``promptlab import`` and ``score`` (issue 22): every one ends in a result or one
error line, within a time bound, never a traceback.

Hypothesis writes PNGs whose chunks nest deep, run long, hold control characters, lone surrogates
(through JSON's ``\\ud800``) and numbers no tool writes; hand-made files cover Pillow's limits.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from promptlab.errors import PromptlabError
from promptlab.importer import import_paths, store_imported
from promptlab.metadata import RE_PARAM, a1111_pairs, parse_a1111_parameters
from promptlab.store import open_store

# Generous, for a loaded machine: a file takes milliseconds to read, and storing one runs compel's parser
# (some 0.2 ms a character) over a prompt of up to 10,000 characters; a quadratic reader took minutes.
SECONDS_PER_FILE = 30.0
GENERATION = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8"
CHUNKS = ("parameters", "prompt", "invokeai_metadata", "sd-metadata", "promptlab", "Dream", "Comment")


def write_png(path: Path, chunks: dict[str, str]) -> Path:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8), (40, 80, 120)).save(path, pnginfo=info)
    return path


def deep_json(depth: int, kind: str) -> str:
    return ('{"a":' * depth + "1" + "}" * depth) if kind == "object" else ("[" * depth + "]" * depth)


def number_text() -> st.SearchStrategy[str]:
    huge = st.sampled_from(["18446744073709551616", "-1", "1e309", "inf", "-inf", "nan", "NaN", "9" * 400, "0x10", "1_000"])
    return st.one_of(huge, st.integers(-(2**70), 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr))


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)  # control characters included
JSON_TEXT = st.text(st.characters(blacklist_categories=()), max_size=30)  # surrogates too: json escapes them


@st.composite
def hostile_chunks(draw: st.DrawFn) -> dict[str, str]:
    chunk = draw(st.sampled_from(CHUNKS))
    kind = draw(st.sampled_from(["deep", "a1111", "json", "long", "control"]))
    if kind == "deep":
        text = deep_json(draw(st.integers(1, 3000)), draw(st.sampled_from(["object", "array"])))
    elif kind == "a1111":
        fields = draw(st.lists(st.sampled_from(["Steps", "CFG scale", "Seed", "Size", "Denoising strength", "Clip skip"]), min_size=1, max_size=4))
        values = ", ".join(f"{field}: {draw(number_text())}" for field in fields)
        text = f"{draw(TEXT)}\nNegative prompt: {draw(TEXT)}\nSampler: Euler a, {values}, Model: m"
    elif kind == "json":
        prompt = draw(JSON_TEXT)
        value = draw(st.one_of(number_text(), JSON_TEXT.map(json.dumps)))
        text = json.dumps({"positive_prompt": prompt, "prompt": prompt, "seed": 1, "cfg_scale": 7}).replace("1,", f"{value},", 1)
    elif kind == "long":
        unit = draw(st.sampled_from(["word ", "w", "a: ", '"\\', ", "]))
        text = "a cat\n" + GENERATION + ", " + unit * draw(st.integers(1000, 60_000))
    else:
        text = draw(TEXT) + "\n" + GENERATION + ", Extra: " + draw(TEXT)
    chunks = {chunk: text}
    if chunk == "promptlab":
        chunks["parameters"] = "a cat\n" + GENERATION
    if chunk == "Comment":
        chunks["Software"] = "NovelAI"
    return chunks


def assert_one_line(error: BaseException) -> None:
    assert isinstance(error, PromptlabError), f"{type(error).__name__}: {error}"
    assert "\n" not in str(error), str(error)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chunks=hostile_chunks())
def test_hostile_chunks_end_in_a_result_or_one_line_error_in_bounded_time(chunks: dict[str, str], tmp_path: Path) -> None:
    path = write_png(tmp_path / f"hostile-{random.getrandbits(32)}.png", chunks)
    started = time.perf_counter()
    try:
        batch = import_paths([path])
        with open_store() as store:
            store_imported(store, batch.prompts[0])
        json.dumps(batch.to_dict(), allow_nan=False).encode("utf-8")
    except Exception as error:  # noqa: BLE001 - asserting what kind it is
        assert_one_line(error)
    assert time.perf_counter() - started < SECONDS_PER_FILE


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(['a', 'b', ' ', ':', ',', '"', '\\', '-', '/', '\t', 'é', '1', '_', '\x1c']), max_size=40))
def test_the_linear_generation_line_reader_finds_what_a1111s_regex_finds(line: str) -> None:
    assert a1111_pairs(line) == RE_PARAM.findall(line)


def test_a_long_last_line_reads_in_linear_time() -> None:
    # Before: 4,000 characters 0.08 s, 16,000 1.3 s, 32,000 5.2 s (quadratic); bench/import_a1111.py times it.
    text = "a cat\n" + GENERATION + ", " + "word " * 200_000  # a million characters
    started = time.perf_counter()
    params = parse_a1111_parameters(text)
    assert params.steps == 20 and params.seed == 1
    assert time.perf_counter() - started < SECONDS_PER_FILE


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(path: Path, width: int, height: int, texts: tuple[tuple[str, bytes], ...] = (), compressed: tuple[tuple[str, bytes], ...] = ()) -> Path:
    """A PNG whose header claims any size: what a decompression bomb looks like before decoding."""
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))]
    parts += [_chunk(b"tEXt", key.encode() + b"\0" + value) for key, value in texts]
    parts += [_chunk(b"zTXt", key.encode() + b"\0\0" + zlib.compress(value, 9)) for key, value in compressed]
    parts += [_chunk(b"IDAT", zlib.compress(b"\0" * (width * 3 + 1))), _chunk(b"IEND", b"")]
    path.write_bytes(b"".join(parts))
    return path


def _hostile_file(name: str, folder: Path) -> Path:
    """The files the issue's audit used, made small where the point allows."""
    if name == "bomb.png":
        return raw_png(folder / name, 30_000, 30_000)
    if name == "ztxt-5mb.png":
        return raw_png(folder / name, 8, 8, compressed=(("parameters", b"a" * 5_000_000 + b"\n" + GENERATION.encode()),))
    if name == "text-2x40mb.png":
        return raw_png(folder / name, 8, 8, texts=(("Comment", b"x" * 40_000_000), ("parameters", b"y" * 40_000_000)))
    if name == "deep-styles.json":
        (folder / name).write_text(deep_json(100_000, "array"))
        return folder / name
    if name == "big-field-styles.csv":
        (folder / name).write_text("name,prompt,negative_prompt\nbig," + "a" * 200_000 + ",x\n")
        return folder / name
    chunks = {
        "deep-comfyui.png": {"prompt": deep_json(100_000, "array")},
        "deep-invokeai.png": {"invokeai_metadata": deep_json(50_000, "object")},
        "deep-promptlab.png": {"promptlab": deep_json(50_000, "object"), "parameters": "a\n" + GENERATION},
        "deep-parameters-json.png": {"parameters": deep_json(50_000, "object")},
        "seed-2-64.png": {"parameters": f"a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {2**64}, Size: 8x8"},
        "cfg-inf.png": {"parameters": "a cat\nSteps: 20, Sampler: Euler a, CFG scale: inf, Seed: 1, Size: 8x8"},
        "cfg-nan.png": {"parameters": "a cat\nSteps: 20, Sampler: Euler a, CFG scale: nan, Seed: 1, Size: 8x8"},
        "surrogate-comfyui.png": {"prompt": json.dumps({"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a \ud800"}}})},
    }[name]
    return write_png(folder / name, chunks)


HOSTILE_FILES = {
    "bomb.png": "larger than promptlab reads (Pillow's limit, 89,478,485 pixels)",
    "ztxt-5mb.png": "text chunks are larger than promptlab reads (Decompressed data too large",
    "text-2x40mb.png": "text chunks are larger than promptlab reads (Too much memory used in text chunks",
    "deep-comfyui.png": "'prompt' chunk: JSON nested deeper than 64 levels",
    "deep-invokeai.png": "'invokeai_metadata' chunk: JSON nested deeper than 64 levels",
    "deep-promptlab.png": "'promptlab' chunk: JSON nested deeper than 64 levels",
    "deep-parameters-json.png": "'parameters' chunk: JSON nested deeper than 64 levels",
    "deep-styles.json": "JSON nested deeper than 64 levels",
    "big-field-styles.csv": "cannot be read as CSV (field larger than field limit (131072))",
    "seed-2-64.png": "seed = 18446744073709551616 is out of range: expected a whole number from 0 to 2**64 - 1",
    "cfg-inf.png": "cfg_scale = inf is out of range",
    "cfg-nan.png": "cfg_scale = nan is out of range",
    "surrogate-comfyui.png": "is a lone surrogate (\\uD800)",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_the_audits_hostile_files_are_one_error_line_from_the_cli(name: str, tmp_path: Path) -> None:
    path = _hostile_file(name, tmp_path)
    for extra in ([], ["--store"]):
        done = subprocess.run(
            [sys.executable, "-m", "promptlab.cli", "import", *extra, str(path)],
            capture_output=True, text=True, timeout=120, env=dict(os.environ),
        )  # fmt: skip
        assert done.returncode == 1, done.stdout
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr[-2000:]
        assert HOSTILE_FILES[name] in done.stderr


@pytest.mark.slow
def test_score_refuses_an_image_past_pillows_limit_before_decoding(tmp_path: Path) -> None:
    path = raw_png(tmp_path / "bomb.png", 10_000, 10_000)  # past the warning limit, under twice it
    done = subprocess.run(
        [sys.executable, "-m", "promptlab.cli", "score", str(path), "--prompt", "a cat", "--model", "tiny-clip"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert "cannot read image" in done.stderr and "100000000 pixels" in done.stderr
