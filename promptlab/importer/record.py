"""An imported image recorded as a run of the store, under the experiment ``imported``.

The choices, and why: ``store_imported`` keeps the PNG bytes as they are (metadata intact); a
JPEG/WebP is stored as PNG carrying its text chunks. Each image is its own variant
(``experiment.variant_key`` of its prompt, parameters and image hash: LoRAs or hires passes
made elsewhere are not all in the metadata), so importing it again finds its run; an unknown
seed is stored as -1 (A1111's "random"); no score is recorded. The run is txt2img: a denoising
strength does not tell img2img from a hires-fix pass, so it is kept as ``source_strength``; the
model hash, LoRAs, combined prompts and notes are kept beside it (``source_model_hash``,
``source_loras``, ``source_prompts``, ``import_notes``); the LoRAs are also the run's ``loras``
(name and strength; the hash unknown), as a rendered run records its own.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from promptlab.errors import ImportMetadataError
from promptlab.importer.images import ImportedPrompt
from promptlab.metadata import read_image_metadata
from promptlab.render.adapters import lora_name

if TYPE_CHECKING:
    from promptlab.store import Run, Store

IMPORT_EXPERIMENT = "imported"
UNKNOWN_SEED = -1


def store_imported(store: Store, imported: ImportedPrompt, image_path: Path | None = None) -> Run:
    """Record ``imported`` and its image (``imported.file`` unless given) as a run of the experiment ``imported``.

    Importing the same image again returns the run already recorded.
    """
    from promptlab.experiment import variant_key
    from promptlab.store import RunRecord

    image_path = Path(image_path) if image_path is not None else imported.file
    # 1. everything that can fail on the input, before the store is touched
    prompt = imported.to_prompt()
    data = _png_data(image_path)
    params = imported.generation_params()
    # what the record holds beyond the run's columns, kept in its params so that nothing read is lost
    kept = {
        "source_strength": imported.strength,
        "source_model_hash": imported.model_hash,
        "source_loras": [[name, weight] for name, weight in imported.loras],
        # As a rendered run records its LoRAs, so the store's RunLora rows list them; their files are not here.
        "loras": [{"name": lora_name(name), "source": name, "sha256": None, "strength": weight} for name, weight in imported.loras],
        "source_prompts": [asdict(part) for part in imported.prompts],
        "source_negative_prompts": [asdict(part) for part in imported.negative_prompts],
        "import_notes": list(imported.notes),
    }
    source_params = {name: value for name, value in kept.items() if value not in (None, [])}
    model = imported.model or ""
    seed = imported.seed if imported.seed is not None else UNKNOWN_SEED
    # what made an image elsewhere is never fully known (LoRAs, hires passes), so each image is its own variant
    key = variant_key(
        prompt=prompt,
        negative_prompt=imported.negative_prompt,
        model=model,
        task="txt2img",
        params=params,
        input_hashes={"imported_image": hashlib.sha256(data).hexdigest()},
        prompt_text=imported.prompt,
    )
    # 2. the experiment and the run
    experiment = store.get_or_create_experiment(
        IMPORT_EXPERIMENT, {"name": IMPORT_EXPERIMENT, "description": "images read by promptlab import"}
    )
    assert experiment.id is not None
    existing = store.find_run(experiment.id, key, seed)
    if existing is not None and existing.status == "ok":
        return existing
    record = RunRecord(
        experiment_id=experiment.id,
        variant_key=key,
        seed=seed,
        prompt=prompt,
        # the prompt as the tool wrote it (converted to compel), not re-written through the model of terms
        prompt_text=imported.prompt,
        model=model,
        negative_prompt=imported.negative_prompt,
        params={**params, **source_params, "imported_from": imported.source, "source_file": str(image_path)},
        label=image_path.name,
    )
    return store.record_run(record, data)


def _png_data(path: Path) -> bytes:
    """The file's bytes if it is a PNG; otherwise the image as PNG carrying the file's metadata text."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImportMetadataError(f"{path}: cannot be read ({error.strerror or error})") from error
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    chunks = read_image_metadata(path).chunks
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    try:
        with Image.open(io.BytesIO(data)) as image:
            # the store keeps PNGs; CMYK JPEGs and the like have no PNG mode
            picture = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            picture.save(buffer, format="PNG", pnginfo=info)
    except (OSError, ValueError) as error:
        raise ImportMetadataError(f"{path}: cannot be stored as PNG ({error})") from error
    return buffer.getvalue()
