"""The real `promptlab` entry point: vocab and prompt commands, JSON output and error paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from promptlab.tokens import encode
from promptlab.vocab import load_vocab


def promptlab(*args: str, env_vocab: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console entry point in a subprocess, as a user would."""
    import os

    env = dict(os.environ)
    if env_vocab is not None:
        env["PROMPTLAB_VOCAB"] = str(env_vocab)
    code = "from promptlab.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_vocab_list_categories_in_prompt_order() -> None:
    result = promptlab("vocab", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    names = [row["category"] for row in json.loads(result.stdout)]
    assert names[:7] == ["medium", "style", "artist", "site", "resolution", "color", "light"]


def test_vocab_list_category_terms() -> None:
    result = promptlab("vocab", "list", "site", "--format", "json")
    rows = json.loads(result.stdout)
    assert {"category", "text", "description"} <= set(rows[0])
    assert "artstation" in {r["text"] for r in rows}
    text = promptlab("vocab", "list", "site")
    assert "artstation" in text.stdout


def test_vocab_list_unknown_category_is_one_line_exit_1() -> None:
    result = promptlab("vocab", "list", "nonsense")
    assert result.returncode == 1
    assert "nonsense" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_user_vocab_folder_via_env(tmp_path: Path) -> None:
    (tmp_path / "mood.toml").write_text('[terms]\n"eerie" = "Unsettling, uncanny atmosphere"\n')
    result = promptlab("vocab", "list", "mood", "--format", "json", env_vocab=tmp_path)
    assert json.loads(result.stdout) == [
        {"category": "mood", "text": "eerie", "description": "Unsettling, uncanny atmosphere"}
    ]


def test_user_vocab_folder_via_option(tmp_path: Path) -> None:
    (tmp_path / "mood.toml").write_text('[terms]\n"eerie" = "Unsettling"\n')
    result = promptlab("vocab", "list", "--vocab", str(tmp_path), "--format", "json")
    assert "mood" in {row["category"] for row in json.loads(result.stdout)}


@pytest.mark.slow
def test_prompt_build_json() -> None:
    result = promptlab(
        "prompt", "build", "--subject", "fat cat lies on the couch",
        "--term", "medium=oil painting:1.21", "--term", "style=pop-art",
        "--negative", "text", "--negative-preset", "universal", "--format", "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["prompt"].startswith("fat cat lies on the couch, (oil painting)++, ")
    assert data["token_count"] == len(encode("fat cat lies on the couch, oil painting, pop-art"))
    assert data["dropped_terms"] == [] and data["warnings"] == []
    universal = load_vocab().negative_preset("universal").text
    assert data["negative_prompt"] == f"{universal}, text"


@pytest.mark.slow
def test_prompt_build_a1111_text_output() -> None:
    result = promptlab(
        "prompt", "build", "--subject", "a squirrel", "--term", "light=cinematic lighting:1.3", "--syntax", "a1111"
    )
    assert result.returncode == 0, result.stderr
    assert "a squirrel, (cinematic lighting:1.3)" in result.stdout
    assert "/75" in result.stdout


@pytest.mark.slow
def test_prompt_build_warns_about_terms_past_the_window() -> None:
    terms = [f"--term=resolution=detail number {i}" for i in range(30)]
    result = promptlab("prompt", "build", "--subject", "a squirrel", *terms, "--format", "json")
    data = json.loads(result.stdout)
    assert data["token_count"] > 75
    assert data["dropped_terms"] and data["dropped_terms"][-1] == "detail number 29"
    assert any("75-token window" in w for w in data["warnings"])


@pytest.mark.slow
def test_prompt_build_lints_duplicates_weights_and_empty_subject() -> None:
    result = promptlab(
        "prompt", "build", "--subject", "", "--term", "style=pop-art", "--term", "style=pop-art:2.5",
        "--format", "json",
    )
    warnings = json.loads(result.stdout)["warnings"]
    assert any("empty subject" in w for w in warnings)
    assert any("duplicate term 'pop-art'" in w for w in warnings)
    assert any("weight 2.5" in w for w in warnings)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--term", "nosuchcategory=thing"], "nosuchcategory"),
        (["--term", "style"], "CATEGORY=TEXT"),
        (["--term", "style=pop-art:-1"], "-1"),
        (["--negative-preset", "nope"], "nope"),
    ],
)
def test_prompt_build_mistakes_exit_1_with_one_line(args: list[str], fragment: str) -> None:
    result = promptlab("prompt", "build", "--subject", "a cat", *args)
    assert result.returncode == 1
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_prompt_convert_a1111_to_compel() -> None:
    result = promptlab("prompt", "convert", "--from", "a1111", "--to", "compel", "a cat, (oil painting:1.3), [dark]")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "a cat, (oil painting)1.3, (dark)0.909091"


def test_prompt_convert_json_and_plain() -> None:
    result = promptlab("prompt", "convert", "--from", "compel", "--to", "plain", "a cat, (oil painting)1.3", "--format", "json")
    assert json.loads(result.stdout) == {"prompt": "a cat, oil painting"}


def test_prompt_convert_bad_input_names_position() -> None:
    result = promptlab("prompt", "convert", "--from", "a1111", "--to", "compel", "a (cat:1.2.3)")
    assert result.returncode == 1
    assert "character" in result.stderr and "Traceback" not in result.stderr


def test_usage_mistake_exits_1() -> None:
    result = promptlab("prompt", "convert", "--from", "nope", "--to", "compel", "x")
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("maine coon (cat:1.2) in the park", "maine coon (cat)1.2 in the park"),
        ("an (important) word", "an important+ word"),
        ("(solo) girl (flat chest:0.9), blue eyes", "solo+ girl (flat chest)-, blue eyes"),
    ],
)
def test_prompt_convert_keeps_weights_inside_phrases(text: str, expected: str) -> None:
    result = promptlab("prompt", "convert", "--from", "a1111", "--to", "compel", text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.slow
def test_prompt_build_writes_the_negative_in_the_syntax_asked_for() -> None:
    result = promptlab("prompt", "build", "--subject", "a cat", "--negative", "ugly, blurry++, (text)1.3",
                       "--syntax", "a1111", "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["negative_prompt"] == "ugly, (blurry:1.21), (text:1.3)"
