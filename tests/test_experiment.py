"""Experiment files: the example, each strategy's variants counted by hand, validation messages, stable keys."""

from __future__ import annotations

import hashlib
import itertools
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlab.errors import ExperimentError, PromptlabError
from promptlab.experiment import (
    DEFAULT_SCORER,
    PARAMS,
    Variant,
    cells,
    draft_experiment,
    draft_scorer,
    expand,
    load_experiment,
    order_terms,
    parse_experiment,
    read_seeds,
    term_positions,
    to_toml,
    variant_key,
)
from promptlab.prompt import Prompt, Term
from promptlab.vocab import load_vocab

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "squirrel-styles.toml"
VOCAB = load_vocab(use_env=False)

BASE = """
name = "t"
model = "tiny-sd"
seeds = 2
[params]
guidance_scale = 7.5
[prompt]
subject = "a squirrel"
terms = { medium = ["oil painting"], light = ["cinematic lighting:1.2"] }
"""


def parse(text: str, source: str | Path = "t.toml"):
    return parse_experiment(textwrap.dedent(text), source, vocab=VOCAB)


def with_axes(axes: str, top: str = "", base: str = BASE) -> str:
    return top + base + "[axes]\n" + textwrap.dedent(axes)


def texts(variant: Variant) -> list[tuple[str, float]]:
    return [(t.text, t.weight) for t in variant.prompt.terms]


def test_example_loads_and_expands_to_the_documented_grid() -> None:
    spec = load_experiment(EXAMPLE)
    variants = expand(spec)
    assert spec.name == "squirrel-styles"
    assert spec.seeds == (1, 2, 3, 4)
    assert spec.scorer == "tiny-clip"
    assert len(variants) == 3 * 2 * 3
    assert len(cells(spec)) == 3 * 2 * 3 * 4
    assert len({v.key for v in variants}) == len(variants)
    first = variants[0]
    assert first.label == "style=pop-art, artist=Alphonse Mucha, guidance_scale=5.0"
    assert first.axis_values == {"style": "pop-art", "artist": "Alphonse Mucha", "guidance_scale": 5.0}
    # Vocabulary order: medium, style, artist, then light; whatever the file's order.
    assert first.prompt.to_compel() == "a squirrel, oil painting, pop-art, Alphonse Mucha, (cinematic lighting)1.2"
    assert [t.category for t in first.prompt.terms] == ["medium", "style", "artist", "light"]
    assert first.negative_prompt == "ugly, bad anatomy, blurry"
    assert first.intent == "a squirrel"
    assert first.params == {
        "num_inference_steps": 20,
        "guidance_scale": 5.0,
        "width": 512,
        "height": 512,
        "scheduler": "DPM++ 2M Karras",
    }
    steampunk = next(v for v in variants if v.axis_values["style"] == "steampunk:1.3")
    assert ("steampunk", 1.3) in texts(steampunk)


def test_cells_pair_every_variant_with_every_seed() -> None:
    spec = load_experiment(EXAMPLE)
    all_cells = cells(spec)
    assert {c.key for c in all_cells} == {(v.key, s) for v in expand(spec) for s in spec.seeds}
    assert all_cells[0].label.endswith("seed=1")


def test_seed_count_means_one_to_n() -> None:
    assert parse(BASE).seeds == (1, 2)
    assert parse(BASE.replace("seeds = 2", "seeds = [7, 0, 3]")).seeds == (7, 0, 3)


def test_no_axes_is_one_base_variant() -> None:
    variants = expand(parse(BASE))
    assert [v.label for v in variants] == ["base"]
    assert texts(variants[0]) == [("oil painting", 1.0), ("cinematic lighting", 1.2)]


def test_grid_with_an_absent_level_and_a_parameter_axis() -> None:
    spec = parse(with_axes('style = ["", "pop-art"]\nnum_inference_steps = [10, 20, 30]\n'))
    variants = expand(spec)
    assert len(variants) == 2 * 3
    none = variants[0]
    assert none.label == "style=(none), num_inference_steps=10"
    assert none.axis_values == {"style": "", "num_inference_steps": 10}
    assert [t.text for t in none.prompt.terms] == ["oil painting", "cinematic lighting"]
    assert [t.text for t in variants[3].prompt.terms] == ["oil painting", "pop-art", "cinematic lighting"]
    assert [v.params["num_inference_steps"] for v in variants] == [10, 20, 30, 10, 20, 30]


def test_ablation_counted_by_hand() -> None:
    spec = parse(
        with_axes(
            'style = ["pop-art", "steampunk:1.3"]\nartist = ["Van Gogh"]\nguidance_scale = [5.0, 7.5]\n',
            top='strategy = "ablation"\n',
        )
    )
    labels = [v.label for v in expand(spec)]
    # base, 2 fixed terms removed, 2 styles and 1 artist added, guidance 5.0; 7.5 is the base again.
    assert labels == [
        "base",
        "-oil painting",
        "-cinematic lighting:1.2",
        "+pop-art",
        "+steampunk:1.3",
        "+Van Gogh",
        "guidance_scale=5.0",
    ]
    variants = {v.label: v for v in expand(spec)}
    assert texts(variants["-oil painting"]) == [("cinematic lighting", 1.2)]
    assert texts(variants["+steampunk:1.3"]) == [("oil painting", 1.0), ("steampunk", 1.3), ("cinematic lighting", 1.2)]
    assert variants["guidance_scale=5.0"].params["guidance_scale"] == 5.0
    assert variants["base"].axis_values == {"ablation": "base"}
    assert len(cells(spec)) == 7 * 2


def test_ablation_runs_per_subject() -> None:
    base = BASE.replace('subject = "a squirrel"\n', "")
    text = with_axes('style = ["pop-art"]\n', top='strategy = "ablation"\nsubjects = ["a squirrel", "a fox"]\n', base=base)
    variants = expand(parse(text))
    assert len(variants) == 2 * (1 + 2 + 1)
    assert variants[4].axis_values == {"subject": "a fox", "ablation": "base"}
    assert variants[4].label == "subject=a fox, base"
    assert variants[4].intent == "a fox"


def test_random_draws_distinct_grid_variants_deterministically() -> None:
    axes = 'style = ["pop-art", "art nouveau", "steampunk"]\nartist = ["Van Gogh", "Alphonse Mucha"]\nguidance_scale = [5.0, 7.5, 10.0]\n'
    grid = {v.key for v in expand(parse(with_axes(axes)))}
    sampled = expand(parse(with_axes(axes, top='strategy = "random"\nsamples = 5\n')))
    again = expand(parse(with_axes(axes, top='strategy = "random"\nsamples = 5\n')))
    other = expand(parse(with_axes(axes, top='strategy = "random"\nsamples = 5\nrandom_seed = 1\n')))
    assert len(sampled) == 5
    assert len({v.key for v in sampled}) == 5
    assert {v.key for v in sampled} <= grid
    assert [v.key for v in sampled] == [v.key for v in again]
    assert [v.key for v in other] != [v.key for v in sampled]
    everything = expand(parse(with_axes(axes, top='strategy = "random"\nsamples = 18\n')))
    assert {v.key for v in everything} == grid


def test_weights_axis_sweeps_a_fixed_terms_weight() -> None:
    spec = parse(with_axes('[axes.weights]\n"oil painting" = [0.8, 1.3]\n'))
    variants = expand(spec)
    assert [v.label for v in variants] == ["weight(oil painting)=0.8", "weight(oil painting)=1.3"]
    assert texts(variants[1])[0] == ("oil painting", 1.3)
    assert variants[1].axis_values == {"weight(oil painting)": 1.3}


def test_order_axis_puts_the_listed_categories_first() -> None:
    spec = parse(with_axes('style = ["pop-art"]\norder = [["light", "style"], ["medium", "style"]]\n'))
    first, second = expand(spec)
    assert [t.text for t in first.prompt.terms] == ["cinematic lighting", "pop-art", "oil painting"]
    assert [t.text for t in second.prompt.terms] == ["oil painting", "pop-art", "cinematic lighting"]
    assert first.axis_values["order"] == "light > style"
    assert first.key != second.key


def test_combinations_building_the_same_prompt_are_kept_once() -> None:
    # Without a style, both orders build the same prompt.
    spec = parse(with_axes('style = ["", "pop-art"]\norder = [["style", "medium"], ["medium", "style"]]\n'))
    labels = [v.label for v in expand(spec)]
    assert labels == [
        "style=(none), order=style > medium",
        "style=pop-art, order=style > medium",
        "style=pop-art, order=medium > style",
    ]


def test_several_subjects_form_an_axis() -> None:
    base = BASE.replace('subject = "a squirrel"\n', "")
    spec = parse(with_axes('style = ["pop-art", "steampunk"]\n', top='subjects = ["a squirrel", "a fox"]\n', base=base))
    variants = expand(spec)
    assert len(variants) == 4
    assert variants[2].label == "subject=a fox, style=pop-art"
    assert variants[2].prompt.subject == "a fox"
    assert variants[2].intent == "a fox"
    assert spec.subject == "a squirrel | a fox"


def test_image_task_reads_files_relative_to_the_experiment(tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(b"first image")
    text = BASE.replace('model = "tiny-sd"', 'model = "tiny-sd"\ntask = "img2img"\nimage = "in.png"')
    text = text.replace("guidance_scale = 7.5", "guidance_scale = 7.5\nstrength = 0.6")
    path = tmp_path / "exp.toml"
    path.write_text(text)
    spec = load_experiment(path)
    assert spec.inputs == {"image": tmp_path / "in.png"}
    assert spec.params["strength"] == 0.6
    key = expand(spec)[0].key
    (tmp_path / "in.png").write_bytes(b"another image")
    assert expand(load_experiment(path))[0].key != key


def test_keys_are_stable_and_depend_on_what_decides_the_image() -> None:
    prompt = Prompt("a squirrel", (Term("oil painting", 1.2, "medium"),))
    args = dict(prompt=prompt, negative_prompt="ugly", model="tiny-sd", task="txt2img", params={"guidance_scale": 7.5})
    key = variant_key(**args)
    # The recipe written out: changing it orphans every stored run, so it must change on purpose
    # (and bump KEY_VERSION); sorted-key compact JSON is the same on every machine.
    canonical = (
        '{"inputs":{},"long_prompt":"truncate","model":"tiny-sd","negative_prompt":"ugly",'
        '"params":{"guidance_scale":7.5},"subject":"a squirrel","task":"txt2img",'
        '"terms":[["oil painting",1.2]],"v":1}'
    )
    assert key == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert variant_key(**{**args, "prompt": Prompt("a squirrel", (Term("oil painting", 1.2, None),))}) == key
    assert variant_key(**{**args, "params": {"guidance_scale": 7.0}}) != key
    assert variant_key(**{**args, "model": "other"}) != key
    assert variant_key(**{**args, "negative_prompt": ""}) != key
    assert variant_key(**{**args, "prompt": Prompt("a squirrel", (Term("oil painting", 1.3, "medium"),))}) != key
    assert variant_key(**args, long_prompt="chunk") != key


def test_keys_ignore_labels_seeds_and_spelling_of_numbers() -> None:
    one = expand(parse(BASE))[0]
    same = expand(parse(BASE.replace("seeds = 2", "seeds = [9]").replace("7.5", "7.50").replace('name = "t"', 'name = "u"')))[0]
    assert one.key == same.key
    whole = expand(parse(BASE.replace("guidance_scale = 7.5", "guidance_scale = 7")))[0]
    assert whole.params["guidance_scale"] == 7.0
    assert whole.key == expand(parse(BASE.replace("guidance_scale = 7.5", "guidance_scale = 7.0")))[0].key


@settings(max_examples=40, deadline=None)
@given(weight=st.floats(min_value=0, max_value=5, allow_nan=False).map(lambda w: round(w, 3)))
def test_term_weight_suffix_round_trips(weight: float) -> None:
    spec = parse(with_axes(f'style = ["pop-art:{weight}"]\n'))
    (variant,) = expand(spec)
    assert texts(variant)[1] == ("pop-art", weight)
    assert variant.axis_values["style"] == ("pop-art" if weight == 1.0 else f"pop-art:{weight:g}")


ERRORS = [
    (BASE.replace("guidance_scale = 7.5", "num_inference_steps = -3"), "t.toml: [params] num_inference_steps = -3: expected an integer from 1 to 1000"),
    (BASE.replace("guidance_scale = 7.5", "width = 500"), "[params] width = 500: expected a multiple of 8"),
    (BASE.replace("guidance_scale = 7.5", 'guidance_scale = "high"'), '[params] guidance_scale = "high": expected a number >= 0'),
    (BASE.replace("guidance_scale = 7.5", "steps = 20"), "unknown key 'steps' in [params]; known keys: num_inference_steps, guidance_scale"),
    (BASE.replace("guidance_scale = 7.5", "strength = 0.5"), "[params] strength: only read by the image tasks"),
    ("colour = 1\n" + BASE, "unknown key 'colour'; known keys: name, description, model"),
    (BASE.replace("seeds = 2", "seeds = 0"), "seeds = 0: expected a count N from 1 to 10,000 (seeds 1..N)"),
    (BASE.replace("seeds = 2", "seeds = [1, 1]"), "seeds = [1, 1]: expected a count N from 1 to 10,000 (seeds 1..N) or a list of at most 10,000 distinct integers"),
    (BASE.replace("seeds = 2", "seeds = [-1]"), "seeds = [-1]: expected"),
    ('strategy = "grod"\n' + BASE, 'strategy = "grod": expected one of grid, ablation, random'),
    ('strategy = "random"\n' + BASE, "missing key samples: expected an integer >= 1"),
    ('strategy = "random"\nsamples = 0\n' + BASE, "samples = 0: expected an integer >= 1"),
    ('strategy = "random"\nsamples = 2\n' + BASE, "samples = 2: expected at most 1, the number of combinations"),
    ("samples = 3\n" + BASE, 'samples = 3: only allowed with strategy = "random"'),
    ('task = "txt2image"\n' + BASE, 'task = "txt2image": expected one of txt2img, img2img, inpaint, depth2img'),
    ('task = "img2img"\n' + BASE, "missing key image: expected an image file path"),
    ('image = "in.png"\n' + BASE, 'image = "in.png": only allowed with task = img2img or inpaint or depth2img'),
    ('task = "img2img"\nimage = "nowhere.png"\n' + BASE, 'image = "nowhere.png": expected an existing image file'),
    ('long_prompt = "cut"\n' + BASE, 'long_prompt = "cut": expected one of truncate, chunk'),
    ("batch_size = 0\n" + BASE, "batch_size = 0: expected an integer >= 1"),
    (BASE.replace('name = "t"\n', ""), "missing key name: expected the experiment's name"),
    (BASE.replace('model = "tiny-sd"\n', ""), "missing key model"),
    (BASE.replace('subject = "a squirrel"\n', ""), "missing key [prompt] subject"),
    (BASE.replace('subject = "a squirrel"', 'subject = ""'), '[prompt] subject = "": expected a non-empty string'),
    (BASE.replace('subject = "a squirrel"', 'subject = "a squirrel"\nintent = 3'), "[prompt] intent = 3: expected a string"),
    (BASE.replace('"cinematic lighting:1.2"', '"cinematic lighting:-1"'), '[prompt] terms.light = "cinematic lighting:-1": expected a term "TEXT" or "TEXT:WEIGHT" with a weight >= 0'),
    (BASE.replace("light = ", "mood = "), "[prompt] terms.mood: unknown category 'mood'; known categories: medium, style"),
    (BASE.replace('"oil painting"', '"oil, painting"'), '[prompt] terms.medium = "oil, painting": expected a term "TEXT" or "TEXT:WEIGHT" with a weight >= 0; the text may not contain ,'),
    (BASE.replace('"oil painting"', '"c++"'), '[prompt] terms.medium = "c++": expected text compel reads as written'),
    (BASE.replace('["oil painting"]', '["oil painting", "Oil Painting"]'), '[prompt] terms.medium = "Oil Painting": expected each fixed term once'),
    (BASE.replace("[prompt]", '[prompt]\nnegative_presets = ["nope"]'), '[prompt] negative_presets = "nope": expected a negative preset: one of universal'),
    (with_axes('sytle = ["pop-art"]\n'), "unknown key 'sytle' in [axes]; known keys: medium, style"),
    (with_axes("style = []\n"), "[axes] style = []: expected a non-empty list of levels"),
    (with_axes('style = ["steampunk:x"]\n'), '[axes] style = "steampunk:x": expected a term "TEXT" or "TEXT:WEIGHT"'),
    (with_axes('style = ["pop-art", "Pop-Art"]\n'), '[axes] style = ["pop-art", "Pop-Art"]: expected each term once'),
    (with_axes('medium = ["oil painting"]\n'), '[axes] medium = "oil painting": expected a term that is not also a fixed term'),
    (with_axes("guidance_scale = [5.0, 5]\n"), "[axes] guidance_scale = [5.0, 5]: expected distinct levels"),
    (with_axes("guidance_scale = [5.0, -1]\n"), "[axes] guidance_scale = -1: expected a number >= 0"),
    (with_axes("strength = [0.5]\n"), "[axes] strength: only read by the image tasks"),
    (with_axes('model = ["tiny-sd", ""]\n'), '[axes] model = "": expected a model'),
    (with_axes('order = [["style", "medium"]]\n'), """[axes] order = ["style", "medium"]: expected categories that have terms; 'style' has none"""),
    (with_axes('order = [["medium", "mood"]]\n'), "[axes] order: unknown category 'mood'"),
    (with_axes('order = [["medium", "medium"]]\n'), '[axes] order = ["medium", "medium"]: expected a list of distinct categories'),
    (with_axes('[axes.weights]\n"pop-art" = [1.0]\n'), '[axes.weights] "pop-art" = [1.0]: expected the weights of a fixed term in [prompt] terms; fixed terms: "oil painting", "cinematic lighting"'),
    (with_axes('[axes.weights]\n"oil painting" = [1.0, -2]\n'), '[axes.weights] "oil painting" = -2: expected a non-empty list of distinct weights from 0 to 100'),
    (
        BASE.replace('subject = "a squirrel"', 'intent = "an animal"').replace("[params]", 'subjects = ["a", "b"]\n[params]'),
        '[prompt] intent = "an animal": expected no intent with several subjects',
    ),
    ('subjects = ["a squirrel"]\n' + BASE, '[prompt] subject = "a squirrel": only allowed with no top-level subjects'),
    (BASE.replace("[params]\nguidance_scale = 7.5\n", "params = 3\n"), "params = 3: expected a table"),
    # Limits, checked before anything is built (issue 22: these used to run out of memory or run for hours).
    (BASE.replace("seeds = 2", "seeds = 4294967295"), "seeds = 4294967295: expected a count N from 1 to 10,000"),
    (BASE.replace("seeds = 2", "seeds = 10000000"), "seeds = 10000000: expected a count N from 1 to 10,000"),
    (BASE.replace("seeds = 2", f"seeds = [{', '.join(map(str, range(10_001)))}]"), "seeds = [0, 1, 2, ... (10,001 values)]: expected"),
    (BASE.replace("guidance_scale = 7.5", "num_inference_steps = 1000000"), "[params] num_inference_steps = 1000000: expected an integer from 1 to 1000"),
    (BASE.replace("guidance_scale = 7.5", "width = 1048576\nheight = 64"), "[params] width = 1048576: expected a multiple of 8 from 8 to 8192"),
    (BASE.replace("guidance_scale = 7.5", "width = 8192\nheight = 4096"), "width = 8192, height = 4096: size 8192x4096 is too large"),
    (with_axes("width = [512, 8192]\nheight = [512, 8192]\n"), "width = 8192, height = 8192: size 8192x8192 is too large"),
    (BASE.replace('"cinematic lighting:1.2"', '"cinematic lighting:1e300"'), '[prompt] terms.light = "cinematic lighting:1e300": expected a term "TEXT" or "TEXT:WEIGHT" with a weight >= 0 and at most 100'),
    (with_axes('[axes.weights]\n"oil painting" = [1.0, 1000.0]\n'), '[axes.weights] "oil painting" = 1000.0: expected a non-empty list of distinct weights from 0 to 100'),
    (BASE.replace('subject = "a squirrel"', 'subject = "a squirrel"\nnegative = "(blurry)1000"'), "[prompt] negative = \"(blurry)1000\": expected a negative prompt the encoder can read"),
    (BASE.replace('subject = "a squirrel"', f'subject = "{"squirrel " * 2000}"'), '[prompt] subject = "squirrel squirrel squirrel squirrel squi..." (17,999 characters): expected at most 10,000'),
    (with_axes("".join(f'{c} = ["{c * 1000}:2", ""]\n' for c in ("style", "artist", "site", "color"))).replace('"oil painting"', f'"{"oil " * 1000}"'), "the longest prompt the sweep builds is about 24,"),
    (
        with_axes("".join(f"{name} = [{', '.join(str(v) for v in range(1, 101))}]\n" for name in ("num_inference_steps", "guidance_scale", "eta"))).replace("seeds = 2", "seeds = 10"),
        "1,000,000 variants x 10 seeds = 10,000,000 cells: at most 1,000,000",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m[:50] for _, m in ERRORS])
def test_validation_errors_name_the_key_the_value_and_the_rule(text: str, message: str) -> None:
    with pytest.raises(ExperimentError) as caught:
        parse(text)
    assert message in str(caught.value)


def test_toml_syntax_error_names_the_line() -> None:
    with pytest.raises(ExperimentError, match=r"t\.toml: invalid TOML: .*line 3"):
        parse('name = "t"\nmodel = "m"\nseeds = = 3\n')


def test_missing_file_is_an_experiment_error(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="cannot read experiment file .*nope.toml"):
        load_experiment(tmp_path / "nope.toml")


def test_every_param_is_accepted_as_an_axis() -> None:
    good = {"num_inference_steps": 4, "guidance_scale": 1.0, "width": 64, "height": 64, "scheduler": '"euler"',
            "clip_skip": 1, "guidance_rescale": 0.5, "eta": 0.0}  # fmt: skip
    for name in PARAMS:
        # strength needs an image task, the ControlNet scale a [controlnet] block (tests/test_controlnet.py).
        if name in ("strength", "controlnet_conditioning_scale"):
            continue
        spec = parse(with_axes(f"{name} = [{good[name]}]\n"))
        assert list(expand(spec)[0].axis_values) == [name]


def test_grid_keys_differ_for_every_combination() -> None:
    spec = parse(with_axes('style = ["", "pop-art"]\nartist = ["", "Van Gogh"]\nscheduler = ["euler", "ddim"]\n'))
    variants = expand(spec)
    assert len(variants) == len(list(itertools.product([0, 1], [0, 1], [0, 1])))
    assert len({v.key for v in variants}) == len(variants)


def test_a1111_syntax_reads_the_negative_and_subject_as_a1111() -> None:
    spec = parse(
        """
        name = "t"
        model = "micro"
        syntax = "a1111"
        seeds = 1
        [prompt]
        subject = "a \\\\(red\\\\) circle"
        negative = "(blue:1.2), [blurry], text"
        """
    )
    assert spec.subjects == ("a (red) circle",)
    assert spec.negative_prompt == "(blue)1.2, (blurry)0.909091, text"
    variant = expand(spec)[0]
    assert variant.prompt.to_compel() == "a \\(red\\) circle"


@pytest.mark.parametrize(
    ("syntax", "lines", "named"),
    [
        ("compel", 'negative = "(blue:1.2)"', "'(blue:1.2)' is A1111 syntax"),
        ("compel", 'subject = "a [red] circle"', "'[red]' is A1111 syntax"),
        ("compel", 'subject = "a (red)1.5 circle"', "'red' is weighted in compel syntax"),
        ("a1111", 'subject = "a (red:1.5) circle"', "'red' is weighted in a1111 syntax"),
        ("a1111", 'negative = "[a:b:0.5]"', "prompt editing"),
    ],
)
def test_prompt_text_in_the_wrong_syntax_fails_by_name(syntax: str, lines: str, named: str) -> None:
    subject = "" if "subject" in lines else 'subject = "a circle"'
    text = f'name = "t"\nmodel = "micro"\nsyntax = "{syntax}"\nseeds = 1\n[prompt]\n{subject}\n{lines}\n'
    with pytest.raises(ExperimentError, match=re.escape(named)):
        parse(text)


EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_to_toml_round_trips_every_example_to_the_same_spec(path: Path) -> None:
    spec = load_experiment(path, vocab=VOCAB)
    again = parse_experiment(to_toml(spec), path, vocab=VOCAB)
    assert again == spec
    assert [v.key for v in expand(again)] == [v.key for v in expand(spec)]


def test_to_toml_round_trips_axes_weights_and_subjects() -> None:
    text = with_axes(
        """
        style = ["", "pop-art:1.3"]
        guidance_scale = [5.0, 7.5]
        order = [["light", "medium"], ["medium", "light"]]
        [axes.weights]
        "oil painting" = [0.8, 1.2]
        """,
        top='strategy = "ablation"\ndescription = "tab\\there, \\"quotes\\" and \\\\ back\\u007f"\n',
    )
    spec = parse(text)
    assert parse(to_toml(spec)) == spec


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40))
def test_to_toml_writes_any_text_back_as_it_was(description: str) -> None:
    raw = {**parse(BASE).raw, "description": description}
    assert parse(to_toml(raw)).raw == raw


def test_to_toml_refuses_a_lone_surrogate_by_name() -> None:
    raw = {**parse(BASE).raw, "description": "half \ud800 a character"}
    with pytest.raises(ExperimentError, match=r"experiment 't'.*\\ud800.*lone surrogate"):
        to_toml(raw)


def test_draft_experiment_keeps_the_prompt_order_with_an_order_axis() -> None:
    prompt = Prompt("a red fox", (Term("pop-art", 1.3, "style"), Term("oil painting", 1.0, "medium")))
    spec = parse(to_toml(draft_experiment(prompt, name="fox", vocab=VOCAB, negative="(blue:1.2)", syntax="a1111")))
    (variant,) = expand(spec)
    assert variant.prompt.to_compel() == "a red fox, (pop-art)1.3, oil painting"
    assert spec.negative_prompt == "(blue)1.2"
    # In vocabulary order already: no order axis.
    plain = draft_experiment(Prompt("a fox", (Term("oil painting", 1.0, "medium"), Term("pop-art", 1.0, "style"))), name="f", vocab=VOCAB)
    assert "axes" not in plain


def test_order_terms_keeps_a_category_where_its_first_term_goes() -> None:
    pop, oil, cubism = Term("pop-art", 1.0, "style"), Term("oil painting", 1.0, "medium"), Term("cubism", 1.0, "style")
    assert order_terms([(5, oil), (1, pop), (9, cubism)]) == [pop, cubism, oil]
    assert order_terms([(1, oil), (1, pop)]) == [oil, pop]  # a tie keeps the given order
    assert order_terms([]) == []


@pytest.mark.parametrize(
    ("text", "value"), [("4", 4), ("1, 2, 3", [1, 2, 3]), (" 7 ,", [7]), ("9223372036854775807,", [9223372036854775807])]
)
def test_read_seeds_reads_a_count_or_a_list(text: str, value: object) -> None:
    assert read_seeds(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("one, two", "seeds = \"one, two\": expected a count N (seeds 1..N) or whole numbers"),
        ("", "seeds = []: expected"),
        ("0", "seeds = 0: expected a count N from 1 to 10,000"),
        ("1, 1", "seeds = [1, 1]: expected"),
        ("-1, 2", "seeds = [-1, 2]: expected"),
    ],
)
def test_read_seeds_refuses_what_an_experiment_file_refuses(text: str, message: str) -> None:
    with pytest.raises(ExperimentError, match=re.escape(message)):
        read_seeds(text)


def test_draft_experiment_defaults_to_micro_at_64x64_and_a_real_model_is_one_field_away() -> None:
    prompt = Prompt("a gold star on a sky blue background", (Term("backlight", 1.0, "light"),))
    spec = parse(to_toml(draft_experiment(prompt, name="star", vocab=VOCAB)))
    # Built in, offline, seconds on a CPU: micro, scored by micro-clip, at the 64x64 it draws.
    assert (spec.model, spec.scorer, spec.params) == ("micro", "micro-clip", {"width": 64, "height": 64})
    real = parse(to_toml(draft_experiment(prompt, name="star", vocab=VOCAB, model="runwayml/stable-diffusion-v1-5")))
    assert (real.model, real.scorer, real.params) == ("runwayml/stable-diffusion-v1-5", "clip", {})
    chosen = draft_experiment(prompt, name="star", vocab=VOCAB, model="micro", scorer="tiny-clip")
    assert chosen["scorer"] == "tiny-clip"
    assert draft_scorer(" micro ") == "micro-clip" and draft_scorer("tiny-sd") == DEFAULT_SCORER


def test_term_positions_number_every_term_once_in_prompt_order() -> None:
    pop, oil, gold, hour = ("style", "pop-art"), ("medium", "oil painting"), ("style", "gold"), ("light", "golden hour")
    # New terms go last, in the order given; never two at one position.
    assert term_positions([oil, pop], {}, {}) == {oil: 1, pop: 2}
    assert term_positions([oil, pop, hour], {oil: 1, pop: 2}, {oil: 1, pop: 2}) == {oil: 1, pop: 2, hour: 3}
    # A term moved up goes before the one at its new place; moved down, after it.
    assert term_positions([oil, pop, hour], {oil: 1, pop: 2, hour: 1}, {oil: 1, pop: 2, hour: 3}) == {hour: 1, oil: 2, pop: 3}
    assert term_positions([oil, pop, hour], {oil: 3, pop: 2, hour: 3}, {oil: 1, pop: 2, hour: 3}) == {pop: 1, hour: 2, oil: 3}
    # A gap left by a removed term closes; a category's terms stay together.
    assert term_positions([oil, hour], {oil: 1, hour: 3}, {oil: 1, pop: 2, hour: 3}) == {oil: 1, hour: 2}
    assert term_positions([oil, pop, gold], {oil: 2, pop: 1, gold: 3}, {oil: 2, pop: 1, gold: 3}) == {pop: 1, gold: 2, oil: 3}
    assert sorted(term_positions([pop, oil, hour], {pop: 7, oil: 7, hour: 7}, {}).values()) == [1, 2, 3]


OFFLINE_RUN = """
name = "offline"
model = "MODEL"
scorer = "SCORER"
seeds = 2
[params]
width = 64
height = 64
[prompt]
subject = "a red circle on a black background"
"""


@pytest.mark.parametrize(
    ("model", "scorer", "error", "named"),
    [
        ("promptlab-tests/no-such-model-here", "micro-clip", "ModelError", "model 'promptlab-tests/no-such-model-here' is not on this machine"),
        ("micro", "clip", "ScoringError", "scorer 'clip' (ViT-L-14-quickgelu, 'openai' weights from timm/vit_large_patch14_clip_224.openai) is not on this machine"),
    ],
)
def test_offline_a_missing_model_or_scorer_fails_before_any_cell_in_one_line(
    model: str, scorer: str, error: str, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    from promptlab.runner import run_experiment
    from promptlab.store import open_store

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # An empty Hugging Face cache: nothing a hub id names is on this machine.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    spec = parse(OFFLINE_RUN.replace("MODEL", model).replace("SCORER", scorer))
    with open_store() as store:
        with pytest.raises(PromptlabError) as raised:
            run_experiment(spec, store)
        # Nothing recorded: no run, and not even the experiment's empty row.
        assert store.list_experiments() == []
    message = str(raised.value)
    assert type(raised.value).__name__ == error
    assert message.startswith(named) and "\n" not in message
    fix = 'model = "micro"' if error == "ModelError" else 'scorer = "micro-clip"'
    assert "download it once with network" in message and fix in message


SQUARES, SQUARES_SD = (EXAMPLE.parent / "squares.toml", EXAMPLE.parent / "squares-sd.toml")


def _readme_experiment_blocks() -> list[dict]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    readme = (EXAMPLE.parent.parent / "README.md").read_text()
    section = readme.split("### An experiment file", 1)[1].split("\n### ", 1)[0]
    return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", section, re.DOTALL)]


def _merged(base: dict, change: dict) -> dict:
    return {k: _merged(base[k], v) if isinstance(v, dict) and k in base else v for k, v in {**base, **change}.items()}


def test_squares_on_micro_and_on_stable_diffusion_are_the_same_experiment() -> None:
    micro, sd = load_experiment(SQUARES, vocab=VOCAB), load_experiment(SQUARES_SD, vocab=VOCAB)
    assert (micro.model, micro.scorer, micro.params["width"]) == ("micro", "micro-clip", 64)
    assert (sd.scorer, sd.params["width"], sd.params["scheduler"]) == ("clip", 512, "DPM++ 2M Karras")
    # Not run here (a GPU and two downloads): the same prompt, axes and seeds, so the file stays valid and in step.
    assert (sd.seeds, sd.raw["prompt"], sd.raw["axes"]) == (micro.seeds, micro.raw["prompt"], micro.raw["axes"])
    assert [v.label for v in expand(sd)] == [v.label for v in expand(micro)]
    assert len(cells(micro)) == 48


def test_readme_shows_the_squares_examples_as_they_are() -> None:
    shown, changed = _readme_experiment_blocks()
    readme_micro = parse_experiment(to_toml(shown), SQUARES, vocab=VOCAB)
    readme_sd = parse_experiment(to_toml(_merged(shown, changed)), SQUARES_SD, vocab=VOCAB)
    for readme, path in ((readme_micro, SQUARES), (readme_sd, SQUARES_SD)):
        spec = load_experiment(path, vocab=VOCAB)
        assert (readme.name, readme.model, readme.scorer, readme.seeds) == (spec.name, spec.model, spec.scorer, spec.seeds)
        assert [v.key for v in expand(readme)] == [v.key for v in expand(spec)]


def test_draft_comparison_writes_axes_that_expand_to_their_grid() -> None:
    from promptlab.experiment import draft_comparison
    from promptlab.prompt import Prompt, Term
    from promptlab.vocab import load_vocab

    vocab = load_vocab()
    raw = draft_comparison(
        Prompt("a circle on a black background", (Term("oil painting", 1.0, "medium"),)), name="cmp", vocab=vocab,
        intent="a red circle", seeds=[3, 5],
        axes={"color": [Term("red", 1.0, "color"), Term("blue", 1.0, "color")],
              "artist": [None, Term("Greg Rutkowski", 1.2, "artist")]},
        param_axes={"guidance_scale": ["5", "7.5"], "num_inference_steps": ["4"], "scheduler": ["euler", "ddim"]},
    )  # fmt: skip
    spec = parse_experiment(to_toml(raw), Path("cmp.toml"), vocab=vocab)
    assert (spec.model, spec.scorer, spec.intent, spec.seeds) == ("micro", "micro-clip", "a red circle", (3, 5))
    assert spec.params == {"width": 64, "height": 64, "num_inference_steps": 4}
    assert [axis.name for axis in spec.axes] == ["color", "artist", "guidance_scale", "scheduler"]
    assert len(cells(spec)) == 2 * 2 * 2 * 2 * 2
    labels = {cell.variant.label for cell in cells(spec)}
    assert "color=blue, artist=(none), guidance_scale=7.5, scheduler=ddim" in labels
    assert all(t.text == "oil painting" for cell in cells(spec) for t in cell.variant.prompt.terms if t.category == "medium")


def test_draft_comparison_takes_a_model_axis_and_a_single_model() -> None:
    from promptlab.experiment import draft_comparison
    from promptlab.prompt import Prompt
    from promptlab.vocab import load_vocab

    vocab = load_vocab()
    one = draft_comparison(Prompt("a fox", ()), name="m", vocab=vocab, axes={}, param_axes={"model": ["tiny-sd"]})
    assert one["model"] == "tiny-sd" and "axes" not in one and one["scorer"] == "clip"
    two = draft_comparison(Prompt("a fox", ()), name="m", vocab=vocab, axes={}, param_axes={"model": ["micro", "tiny-sd"]})
    assert two["model"] == "micro" and two["axes"] == {"model": ["micro", "tiny-sd"]}


@pytest.mark.parametrize(
    ("axes", "param_axes", "message"),
    [
        ({"colour": []}, {}, "no such vocabulary category"),
        ({"color": []}, {}, "pick at least one term"),
        ({"color": [None, None]}, {}, "listed twice"),
        ({}, {"guidance": ["5"]}, "not a parameter"),
        ({}, {"guidance_scale": ["5", "lots"]}, "not all a number >= 0"),
        ({}, {"width": ["60", "64"]}, "multiple of 8"),
        ({}, {"num_inference_steps": ["4", "4"]}, "listed twice"),
        ({}, {"scheduler": []}, "give at least one"),
    ],
)
def test_draft_comparison_refuses_bad_axes(axes: dict, param_axes: dict, message: str) -> None:
    from promptlab.experiment import draft_comparison
    from promptlab.prompt import Prompt
    from promptlab.vocab import load_vocab

    with pytest.raises(ExperimentError, match=message):
        draft_comparison(Prompt("a fox", ()), name="bad", vocab=load_vocab(), axes=axes, param_axes=param_axes)


def test_a_file_without_a_scorer_scores_with_its_models_own() -> None:
    """micro is scored by micro-clip (CLIP ViT-L knows nothing of its scenes and is absent offline);
    any other model, or a mix, by the default CLIP."""
    base = 'name = "x"\nmodel = "{model}"\nseeds = 1\n[prompt]\nsubject = "a circle"\n'
    assert parse(base.format(model="micro")).scorer == "micro-clip"
    assert parse(base.format(model="tiny-sd")).scorer == DEFAULT_SCORER
    assert parse(base.format(model="micro") + '[axes]\nmodel = ["micro", "tiny-sd"]\n').scorer == DEFAULT_SCORER
    assert parse('scorer = "tiny-clip"\n' + base.format(model="micro")).scorer == "tiny-clip"
