"""The offline CLIP tokenizer gives exactly open_clip's ids; prompt token counts are exact."""

from __future__ import annotations

import open_clip
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlab.prompt import Prompt, Term
from promptlab.tokens import CLIP_WINDOW, CONTEXT_LENGTH, clip_tokenizer, count_tokens, encode

OPEN_CLIP = open_clip.get_tokenizer("ViT-L-14")

PROMPTS = [
    "fat cat lies on the couch",
    "portrait of a woman, (oil painting:1.3), art nouveau, Alphonse Mucha, artstation, 8k",
    "a squirrel, (pop-art)1.2, steampunk++, cinematic lighting-",
    "ugly, tiling, poorly drawn hands, poorly drawn feet, poorly drawn face, out of frame",
    "Hello &amp; WORLD  “curly quotes” ﬁne ligature  ＦＵＬＬＷＩＤＴＨ",
    "ünïcödé 日本語 🙂 emoji, tabs\tand\nnewlines,   many   spaces",
    "it's, they're, we've, I'm, you'll, he'd, don't",
    "<start_of_text> literal special tokens <END_OF_TEXT>",
    "1234567890 3.14 1e-6 #hashtag @mention http://example.com/a?b=c",
    "word " * 120,
    "",
]


def open_clip_ids(text: str) -> list[int]:
    return OPEN_CLIP(text)[0].tolist()


def ours_padded(text: str) -> list[int]:
    """Our ids, padded with 0 as open_clip pads (its pad is no token the text can produce)."""
    ids = clip_tokenizer()(text, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]
    return ids + [0] * (CONTEXT_LENGTH - len(ids))


@pytest.mark.parametrize("text", PROMPTS)
def test_ids_equal_open_clip(text: str) -> None:
    assert ours_padded(text) == open_clip_ids(text)


def test_truncation_keeps_end_token() -> None:
    ids = ours_padded("word " * 120)
    assert len(ids) == CONTEXT_LENGTH
    assert ids[-1] == OPEN_CLIP.eot_token_id


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_ids_equal_open_clip_on_any_text(text: str) -> None:
    assert ours_padded(text) == open_clip_ids(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["oil", "painting", "(", ")", ":", "1.3", ",", "++", "-", "Mucha", " "]), max_size=60))
def test_ids_equal_open_clip_on_prompt_like_text(parts: list[str]) -> None:
    text = "".join(parts)
    assert ours_padded(text) == open_clip_ids(text)


def test_default_tokenizer_pads_with_end_token_like_sd1() -> None:
    ids = clip_tokenizer()("a cat", padding="max_length", max_length=CONTEXT_LENGTH)["input_ids"]
    assert ids[-1] == OPEN_CLIP.eot_token_id


def test_encode_has_no_special_tokens() -> None:
    assert encode("fat cat") == OPEN_CLIP.encode("fat cat")


def test_count_tokens_spans_add_up() -> None:
    prompt = Prompt("fat cat lies on the couch", (Term("oil painting", 1.3, "medium"), Term("8k", 1.0, "resolution")))
    count = count_tokens(prompt)
    assert count.subject == len(encode("fat cat lies on the couch"))
    assert count.total == len(encode("fat cat lies on the couch, oil painting, 8k"))
    assert count.subject + sum(t.count for t in count.terms) == count.total
    assert [t.text for t in count.terms] == ["oil painting", "8k"]
    assert count.terms[0].start == count.subject
    assert not count.over and count.dropped_terms == ()


def test_count_tokens_marks_terms_past_the_window() -> None:
    terms = tuple(Term(f"term number {i}") for i in range(30))
    count = count_tokens(Prompt("a squirrel", terms))
    assert count.over and count.total > CLIP_WINDOW
    states = [t.past_window() for t in count.terms]
    assert states[0] == "none" and states[-1] == "wholly"
    first_dropped = states.index("wholly") if "partly" not in states else states.index("partly")
    assert all(s != "none" for s in states[first_dropped:])
    assert count.dropped_terms[0].start < CLIP_WINDOW or states[first_dropped] == "wholly"
    for term in count.terms:
        expected = "none" if term.end <= CLIP_WINDOW else ("wholly" if term.start >= CLIP_WINDOW else "partly")
        assert term.past_window() == expected


def test_count_tokens_empty_subject() -> None:
    count = count_tokens(Prompt("", (Term("oil painting"),)))
    assert count.subject == 0
    assert count.total == len(encode("oil painting"))


_BUILD_IN_THREADS = """
import sys, threading
sys.setswitchinterval(1e-6)
from promptlab import tokens
errors = []
def build(pad):
    try:
        tokens.clip_tokenizer(pad)
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=build, args=(pad,)) for pad in ("<end_of_text>", "!", "a", "b")]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors)
"""


@pytest.mark.slow
def test_tokenizers_built_in_threads_at_once() -> None:
    """Streamlit builds them from several page threads in a fresh process: transformers' lazy
    ``CLIPTokenizer`` import failed in all but one ("cannot import name 'CLIPTokenizer'")."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _BUILD_IN_THREADS], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
