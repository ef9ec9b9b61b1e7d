"""Prompts made elsewhere, brought in: image metadata, A1111 styles.csv and Fooocus style files.

What ``promptlab import`` calls::

    batch = import_paths([Path("00012-1234.png"), Path("styles.csv")])
    batch.prompts[0].prompt          # compel syntax, ready to render again
    batch.prompts[0].to_dict()       # what --format json prints
    store_imported(store, batch.prompts[0])             # a run of the experiment "imported"
    save_styles_as_vocab(batch.styles, Path("my-vocab"))  # presets + templates for the builder

One module per job, each with its choices in its docstring:

- ``images``: an image's metadata (read by ``promptlab.metadata``) as an ``ImportedPrompt``;
- ``syntax``: other tools' prompt syntaxes (ComfyUI's brackets, NovelAI's braces, A1111's
  ``<lora:...>`` tags) as compel syntax;
- ``samplers``: other tools' sampler and schedule names as the A1111 sampler name promptlab
  renders, from the tables in ``promptlab.render.schedulers``;
- ``styles``: A1111 ``styles.csv`` and Fooocus style files read, and kept in a vocabulary;
- ``batch``: many files at once (``import_paths``);
- ``record``: an imported image recorded as a run of the store (``store_imported``).
"""

from promptlab.importer.batch import ImportBatch, import_paths
from promptlab.importer.images import ALIASES, ImportedPrompt, image_prompt, import_image, imported_prompt
from promptlab.importer.record import IMPORT_EXPERIMENT, UNKNOWN_SEED, store_imported
from promptlab.importer.samplers import (
    COMFYUI_KARRAS_SCHEDULES,
    COMFYUI_PLAIN_SCHEDULES,
    COMFYUI_SAMPLERS,
    INVOKEAI_SCHEDULERS,
    ImportedScheduler,
    imported_scheduler,
)
from promptlab.importer.styles import (
    MAX_STYLE_FILE_BYTES,
    STYLE_SUFFIXES,
    STYLES_FILE,
    SavedStyles,
    Style,
    StyleSource,
    import_styles,
    load_styles,
    save_styles_as_vocab,
    style_key,
)
from promptlab.importer.syntax import NOVELAI_EMPHASIS, extra_networks, novelai_to_a1111, to_compel

__all__ = [
    "ALIASES",
    "COMFYUI_KARRAS_SCHEDULES",
    "COMFYUI_PLAIN_SCHEDULES",
    "COMFYUI_SAMPLERS",
    "IMPORT_EXPERIMENT",
    "INVOKEAI_SCHEDULERS",
    "MAX_STYLE_FILE_BYTES",
    "NOVELAI_EMPHASIS",
    "STYLES_FILE",
    "STYLE_SUFFIXES",
    "UNKNOWN_SEED",
    "ImportBatch",
    "ImportedPrompt",
    "ImportedScheduler",
    "SavedStyles",
    "Style",
    "StyleSource",
    "extra_networks",
    "image_prompt",
    "import_image",
    "import_paths",
    "import_styles",
    "imported_prompt",
    "imported_scheduler",
    "load_styles",
    "novelai_to_a1111",
    "save_styles_as_vocab",
    "store_imported",
    "style_key",
    "to_compel",
]
