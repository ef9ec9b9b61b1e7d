"""The bundled vocabulary files, a user's folder adding to and overriding them, and the loader's validation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from promptlab.errors import VocabError
from promptlab.prompt import Prompt
from promptlab.vocab import (
    BUNDLED_VOCAB_DIR,
    DEFAULT_ORDER,
    FORBIDDEN_TERM_CHARS,
    Vocabulary,
    load_vocab,
    split_items,
    vocab_dirs,
)

CATEGORIES = ["medium", "style", "artist", "site", "resolution", "color", "light"]
REQUIRED = {
    "medium": [
        "portrait",
        "digital painting",
        "concept art",
        "ultra realistic illustration",
        "underwater portrait",
        "photograph",
        "oil painting",
    ],
    "style": [
        "hyperrealistic",
        "pop-art",
        "modernist",
        "art nouveau",
        "fantasy",
        "surrealist",
        "steampunk",
        "photorealistic",
        "sci-fi",
    ],
    "artist": [
        "Stanley Artgerm Lau",
        "John Singer Sargent",
        "John Collier",
        "Frida Kahlo",
        "Alphonse Mucha",
        "Van Gogh",
    ],
    "site": ["pixiv", "pixabay", "artstation", "deviantart"],
    "resolution": ["unreal engine", "sharp focus", "8k", "vray", "highly detailed"],
    "color": [
        "iridescent gold",
        "silver",
        "vintage",
        "rust",
        "gold",
        "red",
        "green",
        "blue",
        "yellow",
        "purple",
        "white",
        "orange",
        "black",
        "gray",
    ],
    "light": ["cinematic lighting", "dark", "atmospheric illumination", "god rays", "sunlight", "backlight"],
}
UNIVERSAL = (
    "ugly, tiling, poorly drawn hands, poorly drawn feet, poorly drawn face, out of frame, extra limbs, "
    "disfigured, deformed, body out of frame, blurry, bad anatomy, blurred, watermark, grainy, signature, "
    "cut off, draft"
)


@pytest.fixture(scope="module")
def bundled() -> Vocabulary:
    return load_vocab(use_env=False)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_bundled_folder_is_the_repositorys_vocab_folder() -> None:
    assert BUNDLED_VOCAB_DIR == Path(__file__).resolve().parent.parent / "vocab"
    assert (BUNDLED_VOCAB_DIR / "style.toml").is_file()


def test_bundled_categories_load_in_prompt_order(bundled: Vocabulary) -> None:
    assert list(bundled.categories) == CATEGORIES
    assert [bundled.category_order(name) for name in CATEGORIES] == [10, 20, 30, 40, 50, 60, 70]
    assert bundled.dirs == (BUNDLED_VOCAB_DIR,)


@pytest.mark.parametrize("name", CATEGORIES)
def test_bundled_category_has_40_described_terms_and_its_examples(bundled: Vocabulary, name: str) -> None:
    category = bundled.category(name)
    assert category.description
    assert category.source == (BUNDLED_VOCAB_DIR / f"{name}.toml",)
    assert len(category.terms) >= 40
    for term in category.terms:
        assert term.category == name
        assert term.weight == 1.0
        assert term.description.strip() and "\n" not in term.description, term
    texts = {term.text for term in category.terms}
    missing = [example for example in REQUIRED[name] if example not in texts]
    assert not missing


def test_bundled_terms_are_unique_across_categories(bundled: Vocabulary) -> None:
    texts = [term.text.casefold() for category in bundled.categories.values() for term in category.terms]
    assert len(texts) == len(set(texts))


def test_find_is_case_insensitive_across_categories(bundled: Vocabulary) -> None:
    term = bundled.find("  Pop-Art ")
    assert term is not None and (term.category, term.text) == ("style", "pop-art")
    assert bundled.find("van gogh").category == "artist"
    assert bundled.category("light").find("GOD RAYS").text == "god rays"
    assert bundled.find("no such term") is None


def test_bundled_negative_presets(bundled: Vocabulary) -> None:
    assert bundled.negative_preset("universal").text == UNIVERSAL
    assert {"universal", "photo", "anime", "text_artifacts"} <= set(bundled.negative_presets)
    for preset in bundled.negative_presets.values():
        assert preset.description and preset.text


def test_bundled_subjects(bundled: Vocabulary) -> None:
    assert 8 <= len(bundled.subjects) <= 15
    assert {"fat cat lies on the couch", "a squirrel"} <= set(bundled.subjects)


def test_unknown_category_and_preset_list_the_known_ones(bundled: Vocabulary) -> None:
    with pytest.raises(VocabError, match="unknown vocabulary category 'mood'.*medium, style, artist"):
        bundled.category("mood")
    with pytest.raises(VocabError, match="unknown negative preset 'nope'.*universal"):
        bundled.negative_preset("nope")
    with pytest.raises(VocabError, match="'mood'"):
        bundled.category_order("mood")


def test_negative_text_joins_presets_and_free_text_without_repeats(bundled: Vocabulary) -> None:
    prompt = Prompt("a squirrel", negative="Blurry, two heads, , (extra, legs)1.2, UGLY", negative_presets=("minimal", "universal"))
    universal_rest = UNIVERSAL.removeprefix("ugly, ").replace("bad anatomy, ", "")
    assert bundled.negative_text(prompt) == f"ugly, bad anatomy, {universal_rest}, two heads, (extra, legs)1.2"
    assert bundled.negative_text(Prompt("a squirrel")) == ""
    with pytest.raises(VocabError, match="unknown negative preset 'nope'"):
        bundled.negative_text(Prompt("a squirrel", negative_presets=("nope",)))


def test_split_items_keeps_commas_inside_brackets() -> None:
    assert split_items(" a, (b, c)1.2 ,, [d, e] ,") == ["a", "(b, c)1.2", "[d, e]"]


USER_STYLE = """
    description = "My styles"
    [terms]
    "Pop-Art" = { description = "Mine", weight = 1.3 }
    "steampunk" = { weight = 0.8 }
    "glitch art" = "Broken digital signal look"
"""


def test_user_folder_from_env_overrides_and_adds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "user"
    write(user, "style.toml", USER_STYLE)
    write(user, "camera.toml", '[terms]\n"low angle" = "Seen from below"\n')
    write(user, "angle.toml", 'category = "zoom"\n[terms]\n"close-up" = "Fills the frame"\n')
    write(user, "mood.toml", 'order = 15\n[terms]\n"eerie" = "Unsettling"\n')
    write(user, "negative.toml", '[universal]\ntext = "blurry"\n[hands]\ntext = "bad hands"\ndescription = "Hands"\n')
    write(user, "subjects.toml", 'subjects = ["A Squirrel", "a red fox"]\n')
    monkeypatch.setenv("PROMPTLAB_VOCAB", str(user))

    vocab = load_vocab()

    assert vocab.dirs == (BUNDLED_VOCAB_DIR, user)
    assert list(vocab.categories) == ["medium", "mood", *CATEGORIES[1:], "camera", "zoom"]
    assert vocab.category_order("camera") == DEFAULT_ORDER
    style = vocab.category("style")
    assert style.description == "My styles"
    assert style.order == 20
    assert style.source == (BUNDLED_VOCAB_DIR / "style.toml", user / "style.toml")
    assert len(style.terms) == len(load_vocab(use_env=False).category("style").terms) + 1
    pop_art = style.find("pop-art")
    assert (pop_art.text, pop_art.description, pop_art.weight) == ("Pop-Art", "Mine", 1.3)
    steampunk = style.find("steampunk")
    assert steampunk.weight == 0.8 and steampunk.description.startswith("Victorian")
    assert vocab.find("glitch art").category == "style"
    assert vocab.find("close-up").category == "zoom"
    universal = vocab.negative_preset("universal")
    assert universal.text == "blurry" and universal.description.startswith("A widely shared")
    assert vocab.negative_preset("hands").description == "Hands"
    assert vocab.subjects[-1] == "a red fox"
    assert [s.casefold() for s in vocab.subjects].count("a squirrel") == 1


def test_an_unchanged_folder_is_read_once_and_an_edit_is_seen(tmp_path: Path) -> None:
    import os

    user = tmp_path / "user"
    path = write(user, "mood.toml", '[terms]\n"eerie" = "Unsettling"\n')
    first = load_vocab([user], use_env=False)
    assert load_vocab([user], use_env=False) is first
    path.write_text('[terms]\n"eerie" = "Unsettling"\n"calm" = "Still"\n')
    assert [t.text for t in load_vocab([user], use_env=False).category("mood").terms] == ["eerie", "calm"]
    # Same size, new time: read again.
    path.write_text('[terms]\n"eerie" = "Unsettling"\n"warm" = "Still"\n')
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load_vocab([user], use_env=False).find("warm").category == "mood"
    path.unlink()
    assert "mood" not in load_vocab([user], use_env=False).categories


def test_dirs_override_env_and_use_env_false_ignores_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir = tmp_path / "env"
    arg_dir = tmp_path / "arg"
    write(env_dir, "style.toml", '[terms]\n"pop-art" = "From env"\n"env only" = "x"\n')
    write(arg_dir, "style.toml", '[terms]\n"pop-art" = "From dirs"\n')
    monkeypatch.setenv("PROMPTLAB_VOCAB", str(env_dir))

    assert load_vocab([arg_dir]).find("pop-art").description == "From dirs"
    assert load_vocab([str(arg_dir)]).find("env only") is not None
    without_env = load_vocab([arg_dir], use_env=False)
    assert without_env.find("env only") is None
    assert without_env.dirs == (BUNDLED_VOCAB_DIR, arg_dir)


def test_missing_vocab_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(VocabError, match=f"vocabulary folder '{missing}'.*does not exist"):
        load_vocab([missing])
    monkeypatch.setenv("PROMPTLAB_VOCAB", str(missing))
    with pytest.raises(VocabError, match="nowhere' \\(from PROMPTLAB_VOCAB\\) does not exist"):
        vocab_dirs()
    a_file = write(tmp_path, "file.toml", "")
    with pytest.raises(VocabError, match="is not a folder"):
        load_vocab([a_file], use_env=False)


BAD_FILES = {
    "duplicate_term_other_case": (
        "style.toml",
        """
        description = "x"
        [terms]
        "pop-art" = "a"
        "steampunk" = "b"
        "Pop-Art" = "c"
        """,
        "style.toml line 5: duplicate term 'Pop-Art' (first at line 3",
    ),
    "duplicate_term_same_text": (
        "style.toml",
        """
        [terms]
        "pop-art" = "a"

        pop-art = { description = "b" }
        """,
        "style.toml line 4: duplicate term 'pop-art' (first at line 2)",
    ),
    "empty_term": ("light.toml", '[terms]\n"dark" = "a"\n"" = "b"\n', "light.toml line 3: empty term"),
    "blank_term": ("light.toml", '[terms]\n"  " = "b"\n', "light.toml line 2: empty term"),
    "comma_in_term": ("light.toml", '[terms]\n"soft, warm" = "b"\n', "light.toml line 2: term 'soft, warm' contains ','"),
    "colon_in_term": ("light.toml", '# weights go in prompts\n[terms]\n"sun:1.2" = "b"\n', "light.toml line 3: term 'sun:1.2' contains ':'"),
    "spaces_around_term": ("light.toml", '[terms]\n" sun" = "b"\n', "light.toml line 2: term ' sun' has leading or trailing"),
    "unknown_top_level_key": (
        "color.toml",
        'description = "x"\norder = 60\ncolour = "y"\n[terms]\n',
        "color.toml line 3: unknown key 'colour'; allowed keys: category, description, order, terms",
    ),
    "unknown_top_level_table": ("color.toml", '[terms]\n"red" = "a"\n\n[extra]\nx = 1\n', "color.toml line 4: unknown key 'extra'"),
    "unknown_key_in_inline_term": (
        "color.toml",
        '[terms]\n"red" = "a"\n"blue" = { description = "b", wieght = 2 }\n',
        "color.toml line 3: unknown key 'wieght' in term 'blue'; allowed keys: description, weight",
    ),
    "unknown_key_in_term_table": (
        "color.toml",
        '[terms]\n"red" = "a"\n\n[terms.blue]\ndescription = "b"\nwieght = 2\n',
        "color.toml line 6: unknown key 'wieght' in term 'blue'",
    ),
    "malformed_toml": ("site.toml", '[terms]\n"pixiv" = "a"\n"pixabay" "b"\n', "site.toml line 3: invalid TOML: Expected '='"),
    "unterminated_string": ("site.toml", '[terms]\n"pixiv" = "a\n', "site.toml line 2: invalid TOML"),
    "weight_not_a_number": (
        "artist.toml",
        '[terms]\n"Van Gogh" = "a"\n"Monet" = { description = "b", weight = "heavy" }\n',
        "artist.toml line 3: weight must be a number (1.0 = neutral), got a string 'heavy'",
    ),
    "weight_negative": (
        "artist.toml",
        '[terms]\n[terms.Monet]\ndescription = "b"\nweight = -0.5\n',
        "artist.toml line 4: weight must be a finite number >= 0 (1.0 = neutral), got -0.5",
    ),
    "weight_boolean": ("artist.toml", '[terms]\n"Monet" = { weight = true }\n', "artist.toml line 2: weight must be a number"),
    "term_wrong_type": ("artist.toml", '[terms]\n"Monet" = 3\n', "artist.toml line 2: term 'Monet' must be a description string"),
    "order_not_integer": ("medium.toml", 'order = "10"\n', "medium.toml line 1: 'order' must be a whole number, got a string '10'"),
    "description_not_string": ("medium.toml", '# a comment\ndescription = 5\n', "medium.toml line 2: 'description' must be a string"),
    "terms_not_table": ("medium.toml", 'terms = ["a"]\n', "medium.toml line 1: 'terms' must be a table"),
    "bad_category_name": ("My Stuff.toml", '[terms]\n"a" = "b"\n', "My Stuff.toml: category name 'My Stuff' must be lowercase"),
    "preset_without_text": (
        "negative.toml",
        '[photo]\ntext = "blurry"\n\n[anime]\ndescription = "x"\n',
        "negative.toml line 4: preset 'anime' needs a non-empty text",
    ),
    "preset_unknown_key": ("negative.toml", '[photo]\ntext = "a"\ntxet = "b"\n', "negative.toml line 3: unknown key 'txet' in preset 'photo'"),
    "preset_not_table": ("negative.toml", 'photo = "blurry"\n', "negative.toml line 1: 'photo' must be a preset table"),
    "duplicate_subject": (
        "subjects.toml",
        'subjects = [\n    "a squirrel",  # a "comment"\n    "two tigers",\n    "A Squirrel",\n]\n',
        "subjects.toml line 4: duplicate subject 'A Squirrel' (first at line 2)",
    ),
    "empty_subject": ("subjects.toml", 'subjects = ["a squirrel", ""]\n', "subjects.toml line 1: subject 2 is empty"),
    "subjects_unknown_key": ("subjects.toml", 'subjects = []\nsubject = ["x"]\n', "subjects.toml line 2: unknown key 'subject'"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_invalid_file_raises_vocab_error_with_file_and_line(tmp_path: Path, case: str) -> None:
    name, text, expected = BAD_FILES[case]
    path = write(tmp_path / "user", name, text)
    with pytest.raises(VocabError) as caught:
        load_vocab([path.parent], use_env=False)
    message = str(caught.value)
    assert expected in message
    assert str(path) in message


@pytest.mark.parametrize("char", list(FORBIDDEN_TERM_CHARS))
def test_every_forbidden_character_is_rejected(tmp_path: Path, char: str) -> None:
    write(tmp_path, "style.toml", f'[terms]\n"a{char}b" = "x"\n')
    with pytest.raises(VocabError, match="style.toml line 2: term 'a.b' contains '.'"):
        load_vocab([tmp_path], use_env=False)


def test_non_utf8_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "style.toml").write_bytes(b'[terms]\n"caf\xe9" = "x"\n')
    with pytest.raises(VocabError, match="style.toml: not UTF-8 text"):
        load_vocab([tmp_path], use_env=False)


def test_non_toml_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "not toml = [")
    write(tmp_path, ".draft.toml", "broken = [")
    assert list(load_vocab([tmp_path], use_env=False).categories) == CATEGORIES


TERM_TEXT = st.text(
    st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -'\"\\./&!#="), min_size=1, max_size=12
).filter(lambda text: text == text.strip())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    terms=st.lists(TERM_TEXT, min_size=1, max_size=6, unique_by=str.casefold),
    padding=st.lists(st.sampled_from(["", "# a note = 'x'", '   # "quoted" comment']), min_size=7, max_size=7),
    which=st.integers(min_value=0),
)
def test_duplicate_line_numbers_survive_quoting_and_comments(
    tmp_path: Path, terms: list[str], padding: list[str], which: int
) -> None:
    original = terms[which % len(terms)]
    duplicate = original.swapcase()
    assume(duplicate != original and duplicate.casefold() == original.casefold())
    lines = ["[terms]"]
    line_of: dict[str, int] = {}
    for text, pad in zip([*terms, duplicate], padding):
        if pad:
            lines.append(pad)
        lines.append(f"{json.dumps(text, ensure_ascii=False)} = {json.dumps(text + ' = x', ensure_ascii=False)}")
        line_of.setdefault(text, len(lines))
    folder = tmp_path / f"case{abs(hash((tuple(terms), tuple(padding), which)))}"
    write(folder, "style.toml", "\n".join(lines) + "\n")
    with pytest.raises(VocabError) as caught:
        load_vocab([folder], use_env=False)
    assert f"style.toml line {line_of[duplicate]}: duplicate term '{duplicate}'" in str(caught.value)
    assert f"(first at line {line_of[original]}," in str(caught.value)


# Writing vocabulary files (issue 22): every character TOML cannot hold raw is escaped.

ANY_CHARACTER = st.characters(blacklist_categories=())  # surrogates and control characters too


@settings(max_examples=300, deadline=None)
@given(st.text(ANY_CHARACTER, max_size=40))
def test_toml_string_reads_back_as_the_text_or_names_what_cannot(text: str) -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from promptlab.vocab import toml_string

    if any("\ud800" <= c <= "\udfff" for c in text):
        with pytest.raises(VocabError, match="style 'x': character .* is a lone surrogate"):
            toml_string(text, "style 'x'")
        return
    written = f"key = {toml_string(text)}\n"
    assert "\n" not in written[:-1]
    assert tomllib.loads(written)["key"] == text


@settings(max_examples=100, deadline=None)
@given(st.text(ANY_CHARACTER.filter(lambda c: not "\ud800" <= c <= "\udfff"), max_size=30))
def test_experiment_files_the_dashboard_writes_read_back(text: str) -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from promptlab.experiment import to_toml

    raw = {"name": text, "seeds": [1], "prompt": {"subject": text, text: [text]}}
    assert tomllib.loads(to_toml(raw)) == raw
