"""Experiment files: a TOML description of a prompt sweep, validated, then expanded into variants and cells.

    >>> spec = load_experiment("examples/squirrel-styles.toml")
    >>> len(expand(spec)), len(cells(spec))
    (18, 72)
    >>> expand(spec)[0].label
    'style=pop-art, artist=Alphonse Mucha, guidance_scale=5.0'

``examples/squirrel-styles.toml`` documents every key. In short: ``name``, ``model``, ``task``,
``seeds`` (a list, or a count N meaning seeds 1..N), ``strategy``, ``[params]`` (diffusers'
argument names), ``[prompt]`` (subject, intent, fixed terms by category, negative text and
presets) and ``[axes]``, whose keys are:

- a vocabulary category (``style = ["pop-art", "steampunk:1.3", ""]``): one term per level,
  added to that category's fixed terms; ``""`` is the level "without this category";
- a parameter (``guidance_scale = [5.0, 7.5]``, ``num_inference_steps``, ``scheduler``,
  ``width``, ``height``, ``strength``, ..., and ``model``): overrides ``[params]``;
- ``order = [["style", "medium"], ...]``: the listed categories go first, in that order, the
  others follow in vocabulary order;
- ``[axes.weights]`` ``"oil painting" = [0.8, 1.0, 1.3]``: the weights of a fixed term.
- ``lora = ["none", "detail:0.5", "detail:1.0"]``: one more LoRA per level (``"none"``: none);
- ``lora_strength = [0, 0.5, 1.0]``: the strengths of the one LoRA in ``loras``.
- ``embedding = ["none", "ink.safetensors:<ink>"]``: like a term axis, each level loads its
  textual-inversion embedding and adds its token to the prompt (``promptlab.experiment.embeddings``);
- ``control_image = ["a.png", "b.png"]``: the ControlNet's conditioning image per level, and
  ``controlnet_conditioning_scale = [0, 0.5, 1.0]`` its scale (``promptlab.experiment.controlnet``).

Top-level ``loras = ["detail.safetensors:0.6"]`` apply to every variant, and ``lora_dir`` is the
folder where LoRAs named without a path are found (``promptlab.experiment.loras``).
Top-level ``embeddings = ["FILE:TOKEN"]`` load for every variant (each token must appear in a
prompt), and a ``[controlnet]`` block (``model``, ``image``) adds a ControlNet to every variant.

Expanding an experiment (``expand``):

1. Each axis has levels; ``subjects = [...]`` adds a ``subject`` axis before the others.
2. The strategy picks combinations: ``grid`` every one (axes in file order, the last varying
   fastest); ``ablation`` per subject the base prompt, then each fixed term removed, then
   each axis level applied alone; ``random`` ``samples`` distinct grid combinations drawn
   with ``random.Random(random_seed)``.
3. A variant's prompt is the subject, then its terms sorted by category (vocabulary order,
   or the order axis), fixed terms before axis terms within a category.
4. A variant's key hashes what decides the image except the seed: model, task, the prompt's
   texts and weights, the negative prompt, the parameters, the long-prompt policy, the
   input images' contents (a ControlNet's image too), the LoRAs (each file's hash and strength)
   and the embeddings (each token and file hash). A combination that builds the same key as an earlier one is
   dropped (e.g. two orders of categories that are both absent).

Writing one (``to_toml``): an experiment's parsed TOML back to text that parses to the same
spec; ``draft_experiment`` makes that dict for a prompt built from the vocabulary.

The modules, one job each: ``spec`` (the values and the keys' rules), ``check`` (reading values
with errors that name them), ``parse`` (text to ``ExperimentSpec``), ``expand`` (spec to variants
and cells), ``write`` (a spec's dict back to TOML).
"""

from promptlab.experiment.expand import cells, expand, variant_key
from promptlab.experiment.parse import load_experiment, parse_experiment, read_seeds
from promptlab.experiment.spec import (
    ABSENT,
    DEFAULT_SCORER,
    IMAGE_TASK_PARAMS,
    INPUT_KEYS,
    KEY_VERSION,
    MAX_CELLS,
    MAX_SEEDS,
    MODEL_RULE,
    MODEL_SCORERS,
    PARAMS,
    PROMPT_KEYS,
    PROMPT_SYNTAXES,
    STRATEGIES,
    TASK_INPUTS,
    TOP_KEYS,
    Axis,
    Cell,
    ExperimentSpec,
    ParamRule,
    Variant,
    default_scorer,
    term_spec,
)
from promptlab.experiment.write import (
    DRAFT_MODEL,
    DRAFT_SEEDS,
    draft_comparison,
    draft_experiment,
    draft_scorer,
    scorer_keys,
    scorer_text,
    experiment_name,
    order_terms,
    term_positions,
    to_toml,
)
from promptlab.render.params import LONG_PROMPT_POLICIES, MAX_SEED, TASKS

__all__ = [
    "ABSENT",
    "DEFAULT_SCORER",
    "MODEL_SCORERS",
    "DRAFT_MODEL",
    "DRAFT_SEEDS",
    "IMAGE_TASK_PARAMS",
    "INPUT_KEYS",
    "KEY_VERSION",
    "LONG_PROMPT_POLICIES",
    "MAX_CELLS",
    "MAX_SEED",
    "MAX_SEEDS",
    "MODEL_RULE",
    "PARAMS",
    "PROMPT_KEYS",
    "PROMPT_SYNTAXES",
    "STRATEGIES",
    "TASKS",
    "TASK_INPUTS",
    "TOP_KEYS",
    "Axis",
    "Cell",
    "ExperimentSpec",
    "ParamRule",
    "Variant",
    "cells",
    "draft_comparison",
    "draft_experiment",
    "default_scorer",
    "draft_scorer",
    "scorer_keys",
    "scorer_text",
    "expand",
    "experiment_name",
    "load_experiment",
    "order_terms",
    "parse_experiment",
    "read_seeds",
    "term_positions",
    "term_spec",
    "to_toml",
    "variant_key",
]
