"""The prompt model: rendering to compel / A1111 / plain text, reading both back, and converting."""

from __future__ import annotations

import string
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlab.errors import PromptlabError, PromptSyntaxError
from promptlab.prompt import (
    a1111_parts,
    compel_parts,
    compel_prompt,
    SYNTAXES,
    Prompt,
    Term,
    convert,
    parse_a1111,
    parse_a1111_attention,
    parse_compel,
)

PROPERTY = settings(max_examples=200, deadline=None)


def pairs(prompt: Prompt) -> list[tuple[str, float]]:
    return [(term.text, term.weight) for term in prompt.terms]


def assert_same_prompt(actual: Prompt, expected: Prompt) -> None:
    assert actual.subject == expected.subject
    assert [term.text for term in actual.terms] == [term.text for term in expected.terms]
    for got, want in zip(actual.terms, expected.terms):
        assert [text for text, _ in got.pieces()] == [text for text, _ in want.pieces()], got.text
        for (_, got_weight), (_, want_weight) in zip(got.pieces(), want.pieces()):
            assert got_weight == pytest.approx(want_weight, abs=1e-6), got.text


# --- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        (1.0, "cat"),
        (1.1, "cat+"),
        (1.21, "cat++"),
        (1.331, "cat+++"),
        (0.9, "cat-"),
        (0.81, "cat--"),
        (0.729, "cat---"),
        (1.1 + 5e-10, "cat+"),
        (1.1 + 1e-7, "(cat)1.1"),
        (1.3, "(cat)1.3"),
        (1.4641, "(cat)1.4641"),
        (0.5, "(cat)0.5"),
        (1 / 3, "(cat)0.333333"),
        (2.0, "(cat)2"),
        (0.0, "(cat)0"),
    ],
)
def test_compel_weight_syntax(weight: float, expected: str) -> None:
    assert Prompt("", [Term("cat", weight)]).to_compel() == expected


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        (Term("oil painting", 1.21), "(oil painting)++"),
        (Term("pop-art", 1.1), "(pop-art)+"),
        (Term("pop-art", 1.0), "pop-art"),
        (Term("it's", 0.9), "it's-"),
        (Term("f/1.8", 1.0), "f/1.8"),
        (Term("a (b)", 1.1), r"(a \(b\))+"),
        (Term("a(b)", 1.3), r"(a\(b\))1.3"),
        (Term('say "cheese"', 1.0), r"say \"cheese\""),
        (Term('"cheese"', 0.9), r'(\"cheese\")-'),
        (Term("[draft]:v2", 1.1), "[draft]:v2+"),
    ],
)
def test_compel_groups_and_escapes(term: Term, expected: str) -> None:
    assert Prompt("", [term]).to_compel() == expected


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        (1.0, "cat"),
        (1.1, "(cat:1.1)"),
        (1.3, "(cat:1.3)"),
        (0.5, "(cat:0.5)"),
        (1 / 3, "(cat:0.333333)"),
        (0, "(cat:0)"),
    ],
)
def test_a1111_weight_syntax(weight: float, expected: str) -> None:
    assert Prompt("", [Term("cat", weight)]).to_a1111() == expected


def test_a1111_escapes() -> None:
    term = Term("a (b) [c] \\ d:e", 1.2)
    assert Prompt("x (y)", [term]).to_a1111() == r"x \(y\), (a \(b\) \[c\] \\ d:e:1.2)"


def test_full_prompt_in_every_syntax() -> None:
    prompt = Prompt(
        "fat cat lies on the couch",
        [Term("oil painting", 1.21, "medium"), Term("pop-art", 1.1, "style"), Term("blurry", 0.5, "quality")],
        negative="ugly",
    )
    assert prompt.to_compel() == "fat cat lies on the couch, (oil painting)++, (pop-art)+, (blurry)0.5"
    assert prompt.to_a1111() == "fat cat lies on the couch, (oil painting:1.21), (pop-art:1.1), (blurry:0.5)"
    assert prompt.to_plain() == "fat cat lies on the couch, oil painting, pop-art, blurry"
    assert [prompt.render(syntax) for syntax in SYNTAXES] == [prompt.to_compel(), prompt.to_a1111(), prompt.to_plain()]


def test_empty_subject_and_empty_terms_are_left_out() -> None:
    prompt = Prompt("", [Term("cat", 1.1), Term("  ", 1.3), Term("dog")])
    assert prompt.to_compel() == "cat+, dog"
    assert prompt.to_a1111() == "(cat:1.1), dog"
    assert prompt.to_plain() == "cat, dog"


def test_with_terms_appends() -> None:
    prompt = Prompt("cat", [Term("a")]).with_terms(Term("b", 1.2), Term("c"))
    assert [term.text for term in prompt.terms] == ["a", "b", "c"]


def test_unknown_syntax_raises() -> None:
    with pytest.raises(PromptSyntaxError, match="'markdown'.*compel, a1111, plain"):
        Prompt("cat").render("markdown")


@pytest.mark.parametrize("weight", [-0.5, float("nan"), float("inf")])
@pytest.mark.parametrize("syntax", ["compel", "a1111"])
def test_render_rejects_bad_weights(weight: float, syntax: str) -> None:
    with pytest.raises(PromptSyntaxError, match="'cat': weight"):
        Prompt("x", [Term("cat", weight)]).render(syntax)


@pytest.mark.parametrize(
    ("term", "position"),
    [
        (Term("c++", 1.0), 1),  # compel reads c++ as 'c' at 1.21
        (Term("well- known", 1.0), 4),
        (Term("a - b", 1.3), 2),  # a free-standing '-' inside a group
        (Term("x-", 1.3), 1),
        (Term("a=b", 1.3), 1),
        (Term("x\\", 1.3), 1),  # the backslash would escape the closing parenthesis
        (Term('"a"-', 1.0), 3),
        (Term("a\\(b", 1.0), 1),  # compel drops a backslash before ( ) " a varying number of times
        (Term('a\\"', 1.3), 1),
    ],
)
def test_compel_rejects_text_it_would_misread(term: Term, position: int) -> None:
    with pytest.raises(PromptSyntaxError) as error:
        Prompt("", [term]).to_compel()
    assert error.value.position == position
    assert error.value.text == term.text


def test_a1111_rejects_the_word_break() -> None:
    with pytest.raises(PromptSyntaxError) as error:
        Prompt("cat", [Term("lucky BREAK", 1.2)]).to_a1111()
    assert error.value.position == 6


# --- A1111's reader -----------------------------------------------------------------------------

# The examples from the docstring of A1111's modules/prompt_parser.py::parse_prompt_attention.
A1111_DOCUMENTED = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), A1111_DOCUMENTED)
def test_a1111_documented_examples(text: str, expected: list[tuple[str, float]]) -> None:
    # A1111's own outputs, float noise included: same multiplications in the same order.
    assert parse_a1111_attention(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [("", 1.0)]),
        ("[a]", [("a", 1 / 1.1)]),
        ("[[a]]", [("a", 1 / 1.1 / 1.1)]),
        ("((a))", [("a", 1.1 * 1.1)]),
        ("(a: 1.3 )", [("a", 1.3)]),
        ("(a:1.)", [("a", 1.0)]),
        ("((a)", [("a", 1.1 * 1.1)]),  # the unclosed outer bracket applies to the rest
        ("a (b [c", [("a ", 1.0), ("b ", 1.1), ("c", 1.1 / 1.1)]),
        ("a) b] c", [("a) b] c", 1.0)]),  # stray closing brackets are literal text
        ("a:1.2) b", [("a:1.2) b", 1.0)]),  # a weight with no open bracket is literal text
        ("(a:b)", [("a:b", 1.1)]),
        ("[a:1.5]", [("a:1.5", 1 / 1.1)]),  # no weights in square brackets
        ("a\\b", [("ab", 1.0)]),  # a lone backslash is dropped
        ("a\\\\b", [("a\\b", 1.0)]),
        ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ],
)
def test_a1111_attention_semantics(text: str, expected: list[tuple[str, float]]) -> None:
    got = parse_a1111_attention(text)
    assert [chunk for chunk, _ in got] == [chunk for chunk, _ in expected]
    assert [weight for _, weight in got] == pytest.approx([weight for _, weight in expected], abs=1e-12)


def test_parse_a1111_builds_subject_and_terms() -> None:
    parsed = parse_a1111("fat cat lies on the couch, (oil painting:1.21), ((pop-art)), , [blurry],  sharp  focus ")
    assert parsed.subject == "fat cat lies on the couch"
    assert pairs(parsed) == [
        ("oil painting", 1.21),
        ("pop-art", 1.21),
        ("blurry", round(1 / 1.1, 9)),
        ("sharp focus", 1.0),
    ]
    assert all(term.category is None for term in parsed.terms)


def test_parse_a1111_keeps_weights_inside_a_term() -> None:
    parsed = parse_a1111("cat, a (red) sports car, (big) old")
    assert [term.fragments for term in parsed.terms] == [
        (("a", 1.0), ("red", 1.1), ("sports car", 1.0)),
        (("big", 1.1), ("old", 1.0)),
    ]
    assert pairs(parsed) == [("a red sports car", 1.0), ("big old", 1.0)]
    assert parsed.to_a1111() == "cat, a (red:1.1) sports car, (big:1.1) old"
    assert parsed.to_compel() == "cat, a red+ sports car, big+ old"


@pytest.mark.parametrize(
    ("text", "compel"),
    [
        # The examples: each kept every weight it had, fragment by fragment.
        ("maine coon (cat:1.2) in the park", "maine coon (cat)1.2 in the park"),
        ("an (important) word", "an important+ word"),
        ("(solo) girl (flat chest:0.9), blue eyes", "solo+ girl (flat chest)-, blue eyes"),
        ("(a (red:1.5) circle:1.2)", "(a)1.2 (red)1.8 (circle)1.2"),
    ],
)
def test_weights_inside_phrases_survive_conversion(text: str, compel: str) -> None:
    assert convert(text, "a1111", "compel") == compel
    assert parse_a1111(text).to_compel() == compel
    assert convert(compel, "compel", "a1111") == parse_a1111(text).to_a1111()


def test_parse_a1111_weighted_first_segment_is_a_term() -> None:
    parsed = parse_a1111("(masterpiece:1.2), cat")
    assert parsed.subject == ""
    assert pairs(parsed) == [("masterpiece", 1.2), ("cat", 1.0)]


def test_parse_a1111_reads_unbalanced_brackets() -> None:
    assert pairs(parse_a1111("cat, (oil painting, sunset")) == [("oil painting", 1.1), ("sunset", 1.1)]


@dataclass
class Entry:
    category: str


class FakeVocabulary:
    """Stands in for promptlab.vocab.Vocabulary, which is written in parallel with this module."""

    def find(self, text: str) -> Entry | None:
        return {"oil painting": Entry("medium"), "pop-art": Entry("style")}.get(text)


@pytest.mark.parametrize("parse", [parse_a1111, parse_compel])
def test_parsers_fill_categories_from_a_vocabulary(parse: Callable[..., Prompt]) -> None:
    text = Prompt("cat", [Term("oil painting", 1.1), Term("pop-art", 0.9), Term("unknown", 1.3)]).to_a1111()
    if parse is parse_compel:
        text = convert(text, "a1111", "compel")
    parsed = parse(text, vocab=FakeVocabulary())
    assert [term.category for term in parsed.terms] == ["medium", "style", None]


# --- compel's reader ----------------------------------------------------------------------------


def test_parse_compel_reads_weights_with_compels_parser() -> None:
    parsed = parse_compel("fat cat, (oil painting)++, pop-art+, (sunset)1.3, blurry--, (a \\(b\\))0.5, plain words")
    assert parsed.subject == "fat cat"
    assert pairs(parsed) == [
        ("oil painting", 1.21),
        ("pop-art", 1.1),
        ("sunset", 1.3),
        ("blurry", 0.81),
        ("a (b)", 0.5),
        ("plain words", 1.0),
    ]


def test_parse_compel_reads_attend_and_nesting() -> None:
    assert pairs(parse_compel("cat, (dog).attend(1.5), ((a b)+)1.2")) == [("dog", 1.5), ("a b", 1.32)]


def test_parse_compel_empty() -> None:
    assert parse_compel("") == Prompt("")


def test_compel_splits_periods_inside_weighted_groups() -> None:
    # compel's limitation, documented in promptlab.prompt: '.' is a word of its own inside a group.
    rendered = Prompt("shot at f/1.8.", [Term("x.y", 1.2)]).to_compel()
    assert rendered == "shot at f/1.8., (x.y)1.2"
    parsed = parse_compel(rendered)
    assert parsed.subject == "shot at f/1.8."
    assert pairs(parsed) == [("x . y", 1.2)]


def test_parse_compel_does_not_import_torch() -> None:
    code = "import sys, promptlab.prompt as p; p.parse_compel('a, b+'); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("a (b:1.2.3)", 5, "'1.2.3' is not a number"),
        ("(a:.)", 3, "'.' is not a number"),
        ("cat, (a:-1)", 8, "'-1' is negative"),
        ("cat, (a: -0.5)", 9, "'-0.5' is negative"),
        ("cat BREAK dog", 4, "BREAK"),
    ],
)
def test_parse_a1111_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(PromptSyntaxError, match=message) as error:
        parse_a1111(text)
    assert error.value.position == position
    assert error.value.text == text


def test_a1111_attention_keeps_break_but_rejects_bad_weights() -> None:
    assert parse_a1111_attention("(a BREAK b)")[1][0] == "BREAK"
    with pytest.raises(PromptSyntaxError):
        parse_a1111_attention("(a:1.2.3)")


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("cat, (a b", 5, "never closed"),
        ("cat, ((a b)+", 5, "never closed"),
        ("cat, a b)", 8, "closes no group"),
        ("cat, (a)1.2.3", 8, "'1.2.3' is not a number"),
        ("cat, (a)-1.5", 8, "'-1.5'.*negative"),
        ("cat, (a).attend(-2)", 16, "negative"),
        ("cat.swap(dog)", 3, "swap"),
        ("withLora(style) cat", 0, "withLora"),
        ('("a", "b").blend(1, 2)', 10, "blend"),
    ],
)
def test_parse_compel_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(PromptSyntaxError, match=message) as error:
        parse_compel(text)
    assert error.value.position == position
    assert error.value.text == text


def test_parse_compel_accepts_escaped_and_trailing_punctuation() -> None:
    # The sentence's final '.' joins the last segment at its own weight.
    parsed = parse_compel("cat, \\(a b, (c)1.2.")
    assert pairs(parsed) == [("(a b", 1.0), ("c .", 1.0)]
    assert parsed.terms[1].fragments == (("c", 1.2), (".", 1.0))


def test_errors_are_promptlab_errors() -> None:
    assert issubclass(PromptSyntaxError, PromptlabError)


# --- convert ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "from_syntax", "to_syntax", "expected"),
    [
        (
            "a cat, (oil painting:1.21), ((pop-art)), [blurry]",
            "a1111",
            "compel",
            "a cat, (oil painting)++, (pop-art)++, (blurry)0.909091",
        ),
        ("a cat, (hill:0.5), \\(x\\)", "a1111", "compel", "a cat, (hill)0.5, \\(x\\)"),
        ("a cat, (oil painting)++, (x)1.3", "compel", "a1111", "a cat, (oil painting:1.21), (x:1.3)"),
        ("a cat, (oil painting:1.21)", "a1111", "plain", "a cat, oil painting"),
        ("a cat, (oil painting)++", "compel", "compel", "a cat, (oil painting)++"),
    ],
)
def test_convert(text: str, from_syntax: str, to_syntax: str, expected: str) -> None:
    assert convert(text, from_syntax, to_syntax) == expected


def test_convert_rejects_unknown_syntaxes() -> None:
    with pytest.raises(PromptSyntaxError, match="cannot read prompt syntax 'plain'"):
        convert("cat", "plain", "compel")
    with pytest.raises(PromptSyntaxError, match="unknown prompt syntax 'invokeai'"):
        convert("cat", "a1111", "invokeai")


# --- round trips (hypothesis) -------------------------------------------------------------------

LETTERS = string.ascii_letters + string.digits


def normalized(words: list[str]) -> str:
    return " ".join(" ".join(words).split())


def texts(alphabet: str, joiners: str = "") -> st.SearchStrategy[str]:
    """Whitespace-normalized texts; words joined inside by ``joiners`` (so a joiner never ends a word)."""
    word = st.text(alphabet, min_size=1, max_size=6)
    if joiners:
        word = st.tuples(word, st.lists(st.tuples(st.sampled_from(joiners), word), max_size=2)).map(
            lambda parts: parts[0] + "".join(joiner + rest for joiner, rest in parts[1])
        )
    # A1111 reads the word BREAK as a keyword and has no escape for it.
    return st.lists(word, min_size=1, max_size=3).map(normalized).filter(lambda text: text and "BREAK" not in text)


weights = st.one_of(
    st.floats(min_value=0, max_value=2, allow_nan=False),
    st.sampled_from([1.0, 1.1, 1.21, 1.331, 0.9, 0.81, 0.729, 0.0, 2.0]),
)

# A1111 escapes ( ) [ ] \ and reads everything else as text: only commas (the term separator) are left out.
A1111_TEXT = texts(LETTERS + " -'./:()[]\\\"+=")


def prompts(subject: st.SearchStrategy[str], term_text: st.SearchStrategy[str]) -> st.SearchStrategy[Prompt]:
    # A non-empty subject: an empty subject followed by an unweighted term reads back as the subject.
    terms = st.lists(st.builds(Term, term_text, weights), max_size=4)
    return st.builds(Prompt, subject, terms)


@PROPERTY
@given(prompts(A1111_TEXT, A1111_TEXT))
def test_a1111_round_trip(prompt: Prompt) -> None:
    assert_same_prompt(parse_a1111(prompt.to_a1111()), prompt)


# compel can keep a '-' or '+' only inside a word (after one, it is a weight operator), can escape
# only ( ) " (its \- \. \= keep the backslash), and splits '.' off inside weighted groups: so terms
# join words with '-' or '+' and have no '.', and subjects may also join words with '.'.
COMPEL_WORD_CHARS = LETTERS + "'/:()[]\""
COMPEL_SUBJECT = texts(COMPEL_WORD_CHARS, joiners="-+.")
COMPEL_TERM = texts(COMPEL_WORD_CHARS, joiners="-+")


@pytest.mark.slow
@PROPERTY
@given(prompts(COMPEL_SUBJECT, COMPEL_TERM))
def test_compel_round_trip_and_a1111_to_compel(prompt: Prompt) -> None:
    rendered = prompt.to_compel()
    assert_same_prompt(parse_compel(rendered), prompt)
    converted = convert(prompt.to_a1111(), "a1111", "compel")
    # compel's parser is slow (pyparsing); the converted text is usually the very same string.
    if converted != rendered:
        assert_same_prompt(parse_compel(converted), prompt)


# Any characters but ',' and (in weighted terms) '.': to_compel either refuses the text, pointing
# at a '+', '-', '=' or backslash compel would misread, or compel reads back exactly what was meant.
@pytest.mark.slow
@PROPERTY
@given(prompts(texts(LETTERS + " -+=\\'/:()[]\"."), texts(LETTERS + " -+=\\'/:()[]\"")))
def test_compel_refuses_or_round_trips(prompt: Prompt) -> None:
    try:
        rendered = prompt.to_compel()
    except PromptSyntaxError as error:
        assert error.text in [prompt.subject, *(term.text for term in prompt.terms)]
        assert error.text[error.position] in "+-=\\"
        return
    assert_same_prompt(parse_compel(rendered), prompt)


A1111_TOKENS = st.sampled_from(
    ["(", ")", "[", "]", ":2)", ": 0 )", ":1)", "\\(", "\\)", "\\[", "\\]", ", ", " ", ":"]
    + ["cat", "sky", "pop-art", "x"]
)


# Arbitrary A1111 prompts, unbalanced brackets included: converting to compel keeps what A1111 read.
@pytest.mark.slow
@PROPERTY
@given(st.lists(A1111_TOKENS, max_size=14).map("".join))
def test_arbitrary_a1111_converts_to_compel(text: str) -> None:
    read = parse_a1111(text)
    assert_same_prompt(parse_compel(convert(text, "a1111", "compel")), read)
    assert_same_prompt(parse_a1111(read.to_a1111()), read)


# --- convert keeps every weighted fragment (hypothesis) -------------------------------------------


def normalized_fragments(parts: list[list[tuple[str, float]]]) -> list[list[tuple[str, float]]]:
    """Fragments as a parser means them, whitespace aside: empty ones dropped, equal neighbours merged."""
    normal = []
    for part in parts:
        merged: list[tuple[str, float]] = []
        for text, weight in part:
            text = "".join(text.split())
            if not text:
                continue
            if merged and abs(merged[-1][1] - weight) <= 1e-6:
                merged[-1] = (merged[-1][0] + text, merged[-1][1])
            else:
                merged.append((text, weight))
        normal.append(merged)
    return normal


def assert_same_fragments(actual: list[list[tuple[str, float]]], expected: list[list[tuple[str, float]]]) -> None:
    actual, expected = normalized_fragments(actual), normalized_fragments(expected)
    assert [[text for text, _ in part] for part in actual] == [[text for text, _ in part] for part in expected]
    for got, want in zip(actual, expected):
        assert [w for _, w in got] == pytest.approx([w for _, w in want], abs=1e-6)


A1111_PROMPT_TOKENS = st.sampled_from(
    ["(", ")", "[", "]", ":1.3)", ":0.5)", ": 2 )", ":0)", "\\(", "\\)", "\\[", "\\]", "\\\\", ", ", " ", ":", "."]
    + ["cat", "sky", "pop-art", "x", "it's", "!", "1.5", " BREAK ", "é"]
)


# Any A1111 prompt (nesting, escapes, unbalanced brackets, BREAK): compel's parser reads the
# converted text into the fragments A1111's parse_prompt_attention reads from the original.
# The one refusal: a literal backslash (A1111's \\) before a parenthesis or closing a group,
# which compel cannot hold (it takes the backslash for an escape).
@pytest.mark.slow
@PROPERTY
@given(st.lists(A1111_PROMPT_TOKENS, max_size=16).map("".join))
def test_a1111_to_compel_keeps_every_fragment(text: str) -> None:
    try:
        expected = a1111_parts(text)
    except PromptSyntaxError as error:
        assert "prompt editing" in str(error)  # ':1.5]' after a '[' reads as [from:to:when]
        return
    try:
        converted = convert(text, "a1111", "compel")
    except PromptSyntaxError as error:
        assert "\\\\" in text and "compel would read the '\\\\'" in str(error)
        return
    assert_same_fragments(compel_parts(converted), expected)


def compel_prompt_texts() -> st.SearchStrategy[str]:
    word = st.sampled_from(["cat", "sky", "pop-art", "x", "it's", "42", "\\(", "\\)", "é", "!"])
    shorthand = st.tuples(st.sampled_from(["cat", "sky", "x"]), st.sampled_from(["+", "++", "-", "---"])).map("".join)
    weight = st.sampled_from(["", "1.3", "0.5", "2", "0", "+", "++", "-", "--", ".attend(1.4)"])

    def grouped(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.tuples(inner, weight).map(lambda pair: f"({pair[0]}){pair[1]}")

    items = st.recursive(
        st.one_of(word, shorthand),
        lambda inner: grouped(st.lists(inner, min_size=1, max_size=3).map(" ".join)),
        max_leaves=6,
    )
    return st.lists(items, min_size=1, max_size=5).flatmap(
        lambda parts: st.lists(st.sampled_from([" ", ", "]), min_size=len(parts), max_size=len(parts)).map(
            lambda seps: "".join(part + sep for part, sep in zip(parts, seps)).rstrip(", ")
        )
    )


# And the other way: A1111's parser reads the converted text into compel's fragments.
@pytest.mark.slow
@PROPERTY
@given(st.lists(compel_prompt_texts(), min_size=1, max_size=3))
def test_compel_to_a1111_keeps_every_fragment(texts: list[str]) -> None:
    text = texts[0] if len(texts) == 1 else "(" + ", ".join(f'"{t}"' for t in texts) + ").and()"
    expected = compel_parts(text)
    converted = convert(text, "compel", "a1111")
    assert_same_fragments(a1111_parts(converted), expected)
    assert_same_fragments(compel_parts(convert(converted, "a1111", "compel")), expected)


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("a cat AND a dog", "AND is composable diffusion"),
        ("a [cat:dog:0.5]", "prompt editing"),
        ("a [cat::10]", "prompt editing"),
        ("a [cat|dog]", "alternation"),
        ("a cat <lora:detail:0.8>", "LoRA"),
        ("a cat <hypernet:anime:1>", "hypernetwork"),
        ("a cat <styler:x>", "extra-network tag"),
    ],
)
def test_a1111_features_promptlab_cannot_render_are_refused(text: str, construct: str) -> None:
    with pytest.raises(PromptSyntaxError, match=construct):
        convert(text, "a1111", "compel")
    with pytest.raises(PromptSyntaxError, match=construct):
        compel_prompt(text, "a1111")


def test_break_is_compels_conjunction() -> None:
    assert convert("a cat BREAK (oil painting:1.2)", "a1111", "compel") == '("a cat", "(oil painting)1.2").and()'
    assert convert('("a cat", "(oil painting)1.2").and()', "compel", "a1111") == "a cat BREAK (oil painting:1.2)"
    assert convert("a cat BREAK", "a1111", "compel") == "a cat"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a (red:1.3) circle", "(red:1.3)"),
        ("a red circle, [blurry]", "[blurry]"),
        ("a cat <lora:detail:0.8>", "<lora:detail:0.8>"),
        ("a cat BREAK a dog", "BREAK"),
        ("a cat AND a dog", "AND"),
    ],
)
def test_compel_prompt_refuses_a1111_syntax_naming_the_fragment_and_the_fix(text: str, fragment: str) -> None:
    with pytest.raises(PromptSyntaxError) as raised:
        compel_prompt(text)
    message = str(raised.value)
    assert f"{fragment!r}" in message and "--syntax a1111" in message and "prompt convert" in message
    assert "\n" not in message


def test_compel_prompt_keeps_compel_text_as_written() -> None:
    assert compel_prompt("a (red)1.5 circle, blurry--") == "a (red)1.5 circle, blurry--"
    assert compel_prompt("a (red:1.3) circle, [blurry]", "a1111") == "a (red)1.3 circle, (blurry)0.909091"


def test_compel_parts_parses_each_text_once_and_hands_out_lists_of_its_own() -> None:
    # A run writes the same texts into every image's metadata; compel's grammar is parsed once per text.
    from promptlab.prompt.compel import _compel_parts

    _compel_parts.cache_clear()
    first = compel_parts("a (red)1.5 circle")
    first[0].append(("mutated", 9.0))
    second = compel_parts("a (red)1.5 circle")
    assert second == [[("a", 1.0), ("red", 1.5), ("circle", 1.0)]]
    assert _compel_parts.cache_info().hits == 1
    with pytest.raises(PromptSyntaxError):
        compel_parts("a (red circle")
