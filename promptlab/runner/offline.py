"""Before a run offline: every hub model and scorer it needs is on this machine, or one clear error says which and what to do.

With ``HF_HUB_OFFLINE=1`` a hub id that is not in the local Hugging Face cache cannot load. Loading it
to find out takes seconds and ends in a library's long message; looking in the cache takes
milliseconds and names the model and the fix. Without the flag nothing is checked here: the
download may work, and loading tells (``check_setup``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from promptlab.errors import ModelError, ScoringError

#: The built-in models a run can fall back on offline.
OFFLINE_MODEL, OFFLINE_SCORER = "micro", "micro-clip"
#: The files open_clip reads from a hub repository that names no file of its own.
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` tells the Hugging Face libraries to stay off the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def check_offline(models: Iterable[str], scorer: str | None, loras: Iterable[str] = ()) -> None:
    """ModelError or ScoringError, in one line, for the first hub model, hub LoRA or scorer that is not cached
    when ``HF_HUB_OFFLINE`` is set; nothing when online (loading decides there) or when all are here.

    ``scorer`` None skips the scorer (the caller brings one already loaded); ``loras`` are hub ids.
    """
    if not offline():
        return
    for model in sorted(set(models)):
        check_model_offline(model)
    for lora in sorted(set(loras)):
        check_lora_offline(lora)
    if scorer is not None:
        check_scorer_offline(scorer)


def check_model_offline(model: str) -> None:
    """ModelError if ``model`` is a hub id with no copy in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    from promptlab.render.models import resolve_model

    source = resolve_model(model, allow_pickle=True)
    if source.kind != "hub":
        return
    if any(isinstance(try_to_load_from_cache(source.location, name), str) for name in ("model_index.json", "config.json")):
        return
    raise ModelError(
        f"model {model!r} is not on this machine (not in the Hugging Face cache, and HF_HUB_OFFLINE=1 keeps "
        f"the network off): download it once with network (`hf download {model}`), or use "
        f'model = "{OFFLINE_MODEL}" (built in), a local diffusers folder or a .safetensors file'
    )


def check_lora_offline(hub_id: str) -> None:
    """ModelError if hub LoRA ``hub_id`` has no copy in the local Hugging Face cache."""
    from huggingface_hub import snapshot_download

    from promptlab.render.adapters import LORA_SUFFIX, hub_lora_missing

    try:
        folder = Path(snapshot_download(hub_id, allow_patterns=[f"*{LORA_SUFFIX}"], local_files_only=True))
    except Exception:  # noqa: BLE001 - the hub client raises many types for one cause: not in the cache
        folder = None
    if folder is None or not any(folder.rglob(f"*{LORA_SUFFIX}")):
        raise ModelError(hub_lora_missing(hub_id, "not in the Hugging Face cache, and HF_HUB_OFFLINE=1 keeps the network off"))


def check_scorer_offline(spec: str) -> None:
    """ScoringError if scorer ``spec`` names open_clip weights, or a published scorer's files, on the hub
    that are not in the local cache."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    from promptlab.scoring import missing_from_cache, missing_message, parse_scorer_spec

    parsed = parse_scorer_spec(spec)
    if parsed.kind != "clip":
        # A published scorer (aesthetic, pickscore, hps) knows its files; the micro judge needs none.
        missing = missing_from_cache(parsed.name if parsed.pretrained is None else parsed.kind, parsed.pretrained)
        if missing is not None:
            why = "not in the Hugging Face cache, and HF_HUB_OFFLINE=1 keeps the network off"
            raise ScoringError(missing_message(spec, *missing, why))
        return
    if parsed.pretrained is None or Path(parsed.pretrained).is_file():
        return
    hub = open_clip.get_pretrained_cfg(parsed.model, parsed.pretrained).get("hf_hub")
    if not hub:
        return  # weights from a plain URL: open_clip's own cache, which loading checks
    owner, name, *rest = hub.strip("/").split("/")
    repo = f"{owner}/{name}"
    files = tuple(rest[:1]) or OPEN_CLIP_FILES
    if any(isinstance(try_to_load_from_cache(repo, file), str) for file in files):
        return
    raise ScoringError(
        f"scorer {spec!r} ({parsed.model}, {parsed.pretrained!r} weights from {repo}) is not on this machine "
        "(not in the Hugging Face cache, and HF_HUB_OFFLINE=1 keeps the network off): download it once with "
        f'network, or use scorer = "{OFFLINE_SCORER}" (built in) or a local weights file'
    )
