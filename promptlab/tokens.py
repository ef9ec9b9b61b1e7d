"""Exact CLIP token counts, offline.

The tokenizer is built from the BPE vocabulary that ships inside open_clip_torch
(``open_clip/bpe_simple_vocab_16e6.txt.gz``), so it needs no hub. It is a transformers
``CLIPTokenizer`` (diffusers pipelines and compel take it as is) that cleans text exactly as
open_clip does (ftfy, HTML unescape, whitespace, lower case) and therefore yields exactly the
ids of ``open_clip.get_tokenizer("ViT-L-14")``.

    >>> tok = clip_tokenizer()
    >>> count_tokens(Prompt("fat cat lies on the couch")).total
    6
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.prompt import Prompt

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

#: Tokens CLIP's text encoder reads besides the start and end tokens.
CLIP_WINDOW = 75
CONTEXT_LENGTH = 77
START_TOKEN = "<start_of_text>"
END_TOKEN = "<end_of_text>"
# open_clip's split pattern; its special tokens replace transformers' <|startoftext|> spellings.
_SPLIT_PATTERN = (
    r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


def _open_clip_bpe_path() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("open_clip_torch is not installed: pip install open_clip_torch")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    lines = gzip.open(_open_clip_bpe_path()).read().decode("utf-8").split("\n")
    # Same slice as OpenAI's CLIP and open_clip: 48,894 merges after the header line.
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab_list += [START_TOKEN, END_TOKEN]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges  # type: ignore[return-value]


def clean_text(text: str) -> str:
    """open_clip's ``_clean_lower``: ftfy, HTML unescape twice, collapse whitespace, lower case."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()


@lru_cache(maxsize=1)
def _split_pattern() -> Any:
    import regex

    return regex.compile(_SPLIT_PATTERN, regex.IGNORECASE)


def split_words(text: str) -> list[str]:
    """open_clip's cleaning and word split: the words BPE then encodes one by one.

    Done in Python with the ``regex`` module, as open_clip does: the Rust splitter's Unicode
    tables differ for some rare characters.
    """
    return _split_pattern().findall(clean_text(text))


def _words_any(text: Any) -> Any:
    if isinstance(text, str):
        return split_words(text)
    if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
        return [split_words(t) for t in text]
    return text


# transformers resolves ``CLIPTokenizer`` through a lazy module, and two threads asking for it at
# once (Streamlit runs each page in its own thread) can see it half set up: "cannot import name
# 'CLIPTokenizer'". Building tokenizers one at a time avoids that.
_BUILDING = threading.Lock()


def _tokenizer_class() -> type:
    from transformers import CLIPTokenizer

    class OpenCLIPTokenizer(CLIPTokenizer):
        """A ``CLIPTokenizer`` that cleans and splits text exactly as open_clip does."""

        def _encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any) -> Any:
            if not kwargs.get("is_split_into_words") and text_pair is None:
                kwargs["is_split_into_words"] = True
                text = _words_any(text)
            return super()._encode_plus(text, text_pair, **kwargs)

    return OpenCLIPTokenizer


def _build(cls: type, pad_token: str) -> CLIPTokenizer:
    vocab, merges = _vocab_and_merges()
    return cls(
        vocab=vocab,
        merges=merges,
        unk_token=END_TOKEN,
        bos_token=START_TOKEN,
        eos_token=END_TOKEN,
        pad_token=pad_token,
        model_max_length=CONTEXT_LENGTH,
    )


@lru_cache(maxsize=4)
def clip_tokenizer(pad_token: str = END_TOKEN) -> CLIPTokenizer:
    """The offline CLIP tokenizer (ViT-L/14's vocabulary, context 77), exact to open_clip.

    ``pad_token``: SD 1.x pads with the end token (the default). SD 2.x and SDXL's second
    tokenizer pad with ``"!"``; as in their own tokenizers, a ``"!"`` in the text then reads as
    the pad token, so exact open_clip ids need the default.
    """
    from tokenizers import pre_tokenizers

    with _BUILDING:
        tok = _build(_tokenizer_class(), pad_token)
    backend = tok.backend_tokenizer
    # Words arrive cleaned and split by split_words, so the backend only maps bytes and runs BPE.
    backend.normalizer = None
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return tok


def save_clip_tokenizer(directory: Path, pad_token: str = END_TOKEN) -> Path:
    """Write the vocabulary as a stock transformers ``CLIPTokenizer`` folder, as SD models ship it.

    The stock class cleans text in Rust (no ftfy), which matches open_clip on ordinary prompts.
    """
    with _BUILDING:
        from transformers import CLIPTokenizer

        tokenizer = _build(CLIPTokenizer, pad_token)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    return directory


def encode(text: str) -> list[int]:
    """Token ids of ``text`` without start/end tokens, exactly as open_clip encodes it."""
    return list(clip_tokenizer()(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class TermTokens:
    """Where one term sits in the token stream (0-based, start token not counted)."""

    text: str
    category: str | None
    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count

    def past_window(self, window: int = CLIP_WINDOW) -> str:
        """``"none"``, ``"partly"`` or ``"wholly"``: how much of the term CLIP never reads."""
        if self.end <= window:
            return "none"
        return "wholly" if self.start >= window else "partly"


@dataclass(frozen=True)
class TokenCount:
    """Token counts of a prompt's plain text, as the text encoder sees it."""

    total: int
    subject: int
    terms: tuple[TermTokens, ...] = field(default_factory=tuple)
    window: int = CLIP_WINDOW

    @property
    def over(self) -> bool:
        return self.total > self.window

    @property
    def dropped_terms(self) -> tuple[TermTokens, ...]:
        """Terms wholly or partly past the window, in prompt order."""
        return tuple(t for t in self.terms if t.past_window(self.window) != "none")


def count_tokens(prompt: Prompt, window: int = CLIP_WINDOW) -> TokenCount:
    """Count ``prompt``'s tokens on its plain text (weights removed; start/end not counted).

    Each term's span is measured on the growing prefix of the plain text, so the spans add up
    to the exact total even where BPE merges across a comma.
    """
    pieces = [prompt.subject.strip()] if prompt.subject.strip() else []
    subject_count = len(encode(pieces[0])) if pieces else 0
    previous = subject_count
    spans = []
    for term in prompt.terms:
        pieces.append(term.text)
        upto = len(encode(", ".join(pieces)))
        spans.append(TermTokens(term.text, term.category, previous, upto - previous))
        previous = upto
    return TokenCount(total=previous, subject=subject_count, terms=tuple(spans), window=window)
