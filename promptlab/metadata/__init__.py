"""Generation parameters inside image files: write what other tools read, read what they write.

Every image promptlab renders is a PNG carrying two text chunks: ``parameters``, A1111's
infotext (read by A1111's PNG Info, civitai, ComfyUI on drop and InvokeAI), and ``promptlab``,
the whole run record as JSON. Importing reads promptlab's own chunks, A1111 infotexts (PNG text
chunk, EXIF UserComment in JPEG/WebP, or "stealth" bits in the pixels), the JSON Fooocus,
RuinedFooocus and SwarmUI write where A1111 writes its infotext, ComfyUI's API-format ``prompt``
graph, InvokeAI's ``invokeai_metadata`` (2.x: ``sd-metadata`` or ``Dream``) and NovelAI's
``Comment``. What a tool did that the record's fields cannot hold is named in its ``notes``.

Example::

    params = GenerationParameters(prompt="a red fox", steps=20, sampler="Euler a",
                                  cfg_scale=7.0, seed=1234, width=512, height=512)
    write_png(image, path, params, promptlab_record={"run_id": 7})
    meta = read_image_metadata(path)
    meta.parameters == dataclasses.replace(params, source="promptlab")  # True
    meta.promptlab_record                                               # {"run_id": 7}

Sampler and scheduler names stay the strings each tool wrote ("DPM++ 2M Karras", "euler",
"dpmpp_2m_k"); mapping them to diffusers schedulers is the renderer's job.

Any file can be given, so reading is bounded: an image over Pillow's pixel limit is refused
before it is decoded, a text chunk over Pillow's 1 MB text-chunk limit before it is parsed,
JSON nested deeper than ``MAX_JSON_DEPTH``, and numbers no tool writes (``FIELD_RANGES``); A1111's
generation line is read in linear time. Each refusal is one ``ImportMetadataError``.

One job a module: ``parameters`` (what every reader fills in, the shared checks), ``a1111``
(infotext), ``comfyui``, ``invokeai``, ``json_formats`` (Fooocus, RuinedFooocus, SwarmUI,
NovelAI), ``png`` (PNG bytes, and the text an image file carries), ``read``
(``read_image_metadata``: which tool wrote it) and ``infotext`` (a rendered run's own PNG).
"""

from promptlab.metadata.a1111 import (
    A1111_PROMPT_SYNTAX_KEY,
    RE_PARAM,
    a1111_pairs,
    format_a1111_parameters,
    parse_a1111_parameters,
)
from promptlab.metadata.comfyui import (
    parse_comfyui_prompt,
)
from promptlab.metadata.infotext import (
    run_parameters,
    run_png,
)
from promptlab.metadata.invokeai import (
    parse_invokeai_dream,
    parse_invokeai_metadata,
)
from promptlab.metadata.json_formats import (
    parse_fooocus_metadata,
    parse_novelai_metadata,
    parse_ruinedfooocus_metadata,
    parse_swarmui_metadata,
)
from promptlab.metadata.parameters import (
    A1111_CHUNK,
    COMFYUI_CHUNK,
    FIELD_RANGES,
    INVOKEAI_CHUNK,
    INVOKEAI_DREAM_CHUNK,
    INVOKEAI_LEGACY_CHUNK,
    MAX_JSON_DEPTH,
    MAX_TEXT_CHARS,
    NOVELAI_CHUNK,
    PROMPTLAB_CHUNK,
    check_json,
    ConditioningPrompt,
    GenerationParameters,
    ImageMetadata,
    Source,
)
from promptlab.metadata.png import (
    PNG_COMPRESS_LEVEL,
    png_bytes,
    write_png,
)
from promptlab.metadata.read import (
    read_image_metadata,
)

__all__ = [
    "A1111_CHUNK",
    "A1111_PROMPT_SYNTAX_KEY",
    "COMFYUI_CHUNK",
    "FIELD_RANGES",
    "INVOKEAI_CHUNK",
    "INVOKEAI_DREAM_CHUNK",
    "INVOKEAI_LEGACY_CHUNK",
    "MAX_JSON_DEPTH",
    "MAX_TEXT_CHARS",
    "NOVELAI_CHUNK",
    "PNG_COMPRESS_LEVEL",
    "PROMPTLAB_CHUNK",
    "RE_PARAM",
    "ConditioningPrompt",
    "GenerationParameters",
    "ImageMetadata",
    "Source",
    "a1111_pairs",
    "check_json",
    "format_a1111_parameters",
    "parse_a1111_parameters",
    "parse_comfyui_prompt",
    "parse_fooocus_metadata",
    "parse_invokeai_dream",
    "parse_invokeai_metadata",
    "parse_novelai_metadata",
    "parse_ruinedfooocus_metadata",
    "parse_swarmui_metadata",
    "png_bytes",
    "read_image_metadata",
    "run_parameters",
    "run_png",
    "write_png",
]
