"""Renders outside an experiment: ``promptlab render``'s images and a recorded run rendered again, each logged in the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptlab.errors import CellTakenError
from promptlab.metadata import run_png
from promptlab.render.params import RENDER_PARAM_NAMES
from promptlab.runner.recipe import BLACK_IMAGE_ERROR, adapter_render_params, all_black, setup_params
from promptlab.store import RunRecord, Store

# RenderParams fields that are not part of a render's recipe key (kept elsewhere on the run).
_SETUP_NOT_PARAMS = (
    "task", "negative_prompt", "long_prompt", "image", "mask_image", "depth_map", "control_image", "embeddings", "controlnet",
    "loras",
)  # fmt: skip


#: The experiment that logs ad-hoc renders (``promptlab render``), so no image is ever lost.
RENDERS_EXPERIMENT = "renders"


@dataclass(frozen=True)
class RenderedFile:
    """A PNG written by ``render_to_files``: where it is, its run in the store, what made it."""

    path: Path
    run_id: int
    seed: int
    prompt: str
    negative_prompt: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "run_id": self.run_id,
            "seed": self.seed,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "params": self.params,
        }


def render_to_files(request: Any, out_dir: Path, store: Store, syntax: str = "compel") -> list[RenderedFile]:
    """Render a ``RenderRequest`` whose prompt and negative prompt are written in ``syntax``,
    log each image as a run of the ``renders`` experiment, and copy the PNG (A1111
    ``parameters`` + ``promptlab`` chunks) to ``out_dir``."""
    import dataclasses
    import shutil

    from promptlab.errors import RenderError
    from promptlab.experiment import variant_key
    from promptlab.prompt import compel_prompt, parse_compel
    from promptlab.render.engine import render_request
    from promptlab.render.params import check_prompt, check_prompt_length

    # 1. Read the prompts as written, into the compel text that is rendered and recorded verbatim;
    # a prompt too long or too strongly weighted to render fails before the model loads.
    check_prompt_length(request.prompt, "prompt")
    check_prompt_length(request.params.negative_prompt, "negative prompt")
    request = _with_lora_tags(request, syntax)
    text = compel_prompt(request.prompt, syntax)
    negative = compel_prompt(request.params.negative_prompt, syntax)
    check_prompt(text, "prompt")
    check_prompt(negative, "negative prompt")
    _check_embeddings_used(request.params.embeddings, text, negative)
    request = dataclasses.replace(
        request, prompt=text, params=dataclasses.replace(request.params, negative_prompt=negative)
    )
    prompt = parse_compel(text, join_parts=True)
    result = render_request(request)
    setup = result.setup.to_dict()
    # Input images count by content (their hashes), not by path.
    recipe = _recipe(setup)
    key = variant_key(
        prompt=prompt,
        negative_prompt=negative,
        model=request.model.model,
        task=request.params.task,
        params=recipe,
        long_prompt=request.params.long_prompt,
        input_hashes={i["role"]: i["sha256"] for i in setup["inputs"]},
        prompt_text=text,
        loras=result.setup.loras,
    )
    params = {**recipe, "long_prompt": request.params.long_prompt, **setup_params(result.setup)}
    experiment = store.get_or_create_experiment(RENDERS_EXPERIMENT, {"name": RENDERS_EXPERIMENT}, None)
    assert experiment.id is not None
    # 2. Record each image (file first, then rows), then copy it out with its metadata.
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    black: list[int] = []
    for rendered in result.images:
        record = RunRecord(
            experiment_id=experiment.id,
            variant_key=key,
            seed=rendered.seed,
            prompt=prompt,
            model=request.model.model,
            negative_prompt=rendered.negative_prompt,
            task=request.params.task,
            params=params,
            label=request.prompt,
            render_s=sum(result.batch_seconds) / len(result.images),
            prompt_text=text,
        )
        if all_black(rendered.image):
            black.append(rendered.seed)
            _record_render_failure(store, record)
            continue
        run = _record_render(store, record, rendered.image)
        target = out_dir / f"{rendered.seed}-{run.image_sha256[:10]}.png"
        shutil.copyfile(store.image_path(run.image_sha256), target)
        files.append(RenderedFile(target, run.id, rendered.seed, request.prompt, rendered.negative_prompt, params))
    if black:
        seeds = ", ".join(map(str, black))
        raise RenderError(f"seed {seeds}: {BLACK_IMAGE_ERROR} (recorded as failed; {len(files)} other image(s) written)")
    return files


def _with_lora_tags(request: Any, syntax: str) -> Any:
    """An A1111-syntax request with its prompt's ``<lora:name:w>`` tags taken out and their LoRAs (found in
    ``PROMPTLAB_LORA_DIR``, or by path) added to its params, as A1111 loads them."""
    import dataclasses

    from promptlab.prompt.a1111 import lora_tags
    from promptlab.render.adapters import parse_lora

    if syntax != "a1111":
        return request
    text, tags = lora_tags(request.prompt)
    if not tags:
        return request
    loras = (*request.params.loras, *(parse_lora(tag.name, strength=tag.weight) for tag in tags))
    return dataclasses.replace(request, prompt=text, params=dataclasses.replace(request.params, loras=loras))


def _recorded_loras(run_id: int, recorded: Mapping[str, Any]) -> tuple[Any, ...]:
    """The LoRAs a run recorded, each file checked against its recorded hash (a hub LoRA by its id)."""
    from promptlab.errors import RenderError
    from promptlab.hashing import file_sha256
    from promptlab.render.adapters import LoraSpec

    loras = []
    for lora in recorded.get("loras") or ():
        source = str(lora["source"])
        spec = LoraSpec(source, float(lora["strength"]), str(lora["name"]))
        if spec.kind == "file":
            path = Path(source)
            if not path.is_file() or file_sha256(path) != lora.get("sha256"):
                state = "is missing" if not path.is_file() else "has changed since the run (sha256 differs)"
                raise RenderError(f"run {run_id}: its LoRA {path} {state}; put the original file back to render it again")
            spec = LoraSpec(source, spec.strength, spec.name, lora["sha256"], source)
        loras.append(spec)
    return tuple(loras)


def _recipe(setup: Mapping[str, Any]) -> dict[str, Any]:
    """What of a render setup goes into its variant key besides the prompt, model, task and input hashes.

    Embeddings count by token and file content, the ControlNet by the model as named (its image is an
    input, by hash); a render without them keeps the key it always had.
    """
    params = setup["params"]
    recipe = {k: v for k, v in params.items() if k not in _SETUP_NOT_PARAMS}
    if params.get("controlnet_conditioning_scale") is None:
        recipe.pop("controlnet_conditioning_scale", None)
    if setup.get("embeddings"):
        recipe["embeddings"] = [[e["token"], e["sha256"]] for e in setup["embeddings"]]
    if setup.get("controlnet"):
        recipe["controlnet"] = setup["controlnet"]["source"]["model"]
    return recipe


def _check_embeddings_used(embeddings: Sequence[Any], prompt: str, negative: str) -> None:
    """RenderError if an embedding's token is in neither prompt: it would be recorded on images it never touched."""
    from promptlab.errors import RenderError
    from promptlab.render.embeddings import unused_embeddings

    unused = unused_embeddings(embeddings, [prompt, negative])
    if unused:
        files = [e.path for e in embeddings if (e.token or "") in unused] or [e.path for e in embeddings]
        raise RenderError(
            f"embedding {files[0]}: its token {unused[0]!r} is in neither the prompt nor the negative prompt, so it would "
            f"change nothing; write {unused[0]} where the embedding should act (e.g. 'a fox, {unused[0]}')"
        )


def _record_render(store: Store, record: RunRecord, image: Any) -> Any:
    """The cell's run (in the renders experiment): recorded now, or already (by this or another process), its image
    made again if lost."""
    run = store.find_run(record.experiment_id, record.variant_key, record.seed)
    if run is not None and run.status == "ok" and run.image_sha256 is not None:
        if store.image_problem(run.image_sha256) is None:
            return run
        return store.record_run(record, run_png(record, image, (), RENDERS_EXPERIMENT), replace=(run.id,))
    png = run_png(record, image, (), RENDERS_EXPERIMENT)
    try:
        return store.record_run(record, png)
    except CellTakenError:
        return store.find_run(record.experiment_id, record.variant_key, record.seed)


def _record_render_failure(store: Store, record: RunRecord) -> None:
    try:
        store.record_failure(record, BLACK_IMAGE_ERROR)
    except CellTakenError:
        pass  # an ok image of this cell is recorded already: it stays


@dataclass(frozen=True)
class Rerendered:
    """A recorded run rendered again: the new run (in the ``renders`` experiment) and how it compares.

    ``max_diff`` is the largest difference from the source run's image in any pixel's channel (0 to
    255; 0 is the same image): batched and single renders on a CPU may differ in the last float bits,
    a level or two. None where there is nothing to compare with (another seed, a failed run, a lost
    image file).
    """

    run_id: int
    source_run_id: int
    seed: int
    image: Path
    max_diff: int | None

    @property
    def identical(self) -> bool | None:
        """Whether every pixel equals the source run's (None: nothing to compare with)."""
        return None if self.max_diff is None else self.max_diff == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source_run_id": self.source_run_id,
            "seed": self.seed,
            "image": str(self.image),
            "max_diff": self.max_diff,
        }


def rerender(run_id: int, store: Store, *, seeds: Sequence[int] | None = None, device: str | None = None) -> list[Rerendered]:
    """Render a recorded run again with every parameter it recorded, and record the new runs.

    What is replayed: the prompt and negative prompt as rendered (compel text, verbatim), model,
    VAE, dtype, task, steps, guidance, size, scheduler, strength, the long-prompt policy and the
    input images (each checked against its recorded hash). The device is this machine's unless
    ``device`` is given. ``seeds`` defaults to the run's own seed.

    The new runs are logged in the ``renders`` experiment, like ``promptlab render``'s, with
    ``rerender_of`` in their params; rendering the same thing at the same seed again finds that
    run rather than adding a second (a cell is recorded once).
    """
    import numpy as np
    from PIL import Image

    from promptlab.errors import RenderError
    from promptlab.experiment import variant_key
    from promptlab.hashing import file_sha256
    from promptlab.prompt import parse_compel
    from promptlab.render.engine import render
    from promptlab.render.models import ModelSpec
    from promptlab.render.params import RenderItem, RenderParams

    # 1. The recorded run and its recipe.
    run = store.get_run(run_id)
    recorded = run.params
    values = {name: recorded[name] for name in RENDER_PARAM_NAMES if recorded.get(name) is not None}
    for item in recorded.get("inputs") or ():
        path = Path(item["path"])
        if not path.is_file():
            raise RenderError(f"run {run_id}: its {item['role']} {path} is missing; it cannot be rendered again without it")
        if file_sha256(path) != item["sha256"]:
            raise RenderError(
                f"run {run_id}: its {item['role']} {path} has changed since the run (sha256 differs); "
                "put the original file back to render it again"
            )
        values[item["role"]] = str(path)
    for embedding in recorded.get("embeddings") or ():
        path = Path(embedding["path"])
        if not path.is_file() or file_sha256(path) != embedding["sha256"]:
            state = "is missing" if not path.is_file() else "has changed since the run (sha256 differs)"
            raise RenderError(
                f"run {run_id}: its embedding {path} {state}; put the original file back to render it again"
            )
    values.update(adapter_render_params(recorded))
    loras = _recorded_loras(run_id, recorded)
    if loras:
        values["loras"] = loras
    vae = recorded.get("vae")
    model = ModelSpec(
        run.model,
        vae=vae["model"] if isinstance(vae, Mapping) else None,
        dtype=recorded.get("dtype"),
        device=device,
    )
    params = RenderParams(
        task=run.task,
        negative_prompt=run.negative_prompt,
        long_prompt=recorded.get("long_prompt", "truncate"),
        **values,
    )
    # 2. Render, each seed as recorded or asked.
    items = [RenderItem(run.prompt, seed, run.negative_prompt) for seed in (seeds if seeds is not None else [run.seed])]
    result = render(items, params, model)
    setup = result.setup.to_dict()
    recipe = _recipe(setup)
    prompt = parse_compel(run.prompt, join_parts=True)
    key = variant_key(
        prompt=prompt,
        negative_prompt=run.negative_prompt,
        model=run.model,
        task=run.task,
        params=recipe,
        long_prompt=params.long_prompt,
        input_hashes={i["role"]: i["sha256"] for i in setup["inputs"]},
        prompt_text=run.prompt,
        loras=result.setup.loras,
    )
    experiment = store.get_or_create_experiment(RENDERS_EXPERIMENT, {"name": RENDERS_EXPERIMENT}, None)
    assert experiment.id is not None
    original = None
    if run.image_sha256 is not None and store.image_problem(run.image_sha256) is None:
        with Image.open(store.image_path(run.image_sha256)) as image:
            original = np.asarray(image.convert("RGB"), dtype=np.int16)
    # 3. Record each image (file first, then its row), as ``promptlab render`` does.
    done: list[Rerendered] = []
    for rendered in result.images:
        record = RunRecord(
            experiment_id=experiment.id,
            variant_key=key,
            seed=rendered.seed,
            prompt=prompt,
            model=run.model,
            negative_prompt=run.negative_prompt,
            task=run.task,
            params={**recipe, "long_prompt": params.long_prompt, **setup_params(result.setup), "rerender_of": run.id},
            label=f"{run.label or run.prompt} (again from #{run.id})",
            intent=run.intent,
            render_s=sum(result.batch_seconds) / len(result.images),
            prompt_text=run.prompt,
        )
        if all_black(rendered.image):
            _record_render_failure(store, record)
            raise RenderError(f"run {run_id}, seed {rendered.seed}: {BLACK_IMAGE_ERROR} (recorded as failed)")
        new = _record_render(store, record, rendered.image)
        diff = None
        if original is not None and rendered.seed == run.seed:
            pixels = np.asarray(rendered.image.convert("RGB"), dtype=np.int16)
            diff = int(np.abs(pixels - original).max()) if pixels.shape == original.shape else 255
        done.append(Rerendered(new.id, run.id, rendered.seed, store.image_path(new.image_sha256), diff))
    return done
