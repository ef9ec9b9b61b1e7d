"""LoRAs: find a LoRA file by path, by name in the LoRA folder, or by hub id; load it into a pipeline with
diffusers' own LoRA loading; make exactly a render's LoRAs active at their strengths.

A LoRA is written ``NAME_OR_PATH_OR_HUB_ID[:STRENGTH]`` (strength 1 when left out), as the
CLI's ``--lora`` and an experiment file's ``loras`` take it:

    >>> split_strength("detail.safetensors:0.6"), split_strength("owner/style-lora")
    (('detail.safetensors', 0.6), ('owner/style-lora', None))

A name without a folder is looked up in the LoRA folder (``lora_dir`` in an experiment file, else
``PROMPTLAB_LORA_DIR``), with or without its ``.safetensors``, as A1111's ``<lora:name:0.8>`` is;
``micro-teal`` is built in (``BUILTIN_LORAS``: micro's teal LoRA, trained by ``promptlab.micro``).
Files in diffusers' format and in kohya's (A1111's, ``lora_unet_...``) both load: diffusers
converts kohya's keys itself.

Loading (``apply_loras``) keeps the base model: each LoRA becomes a named adapter on the
pipeline's UNet and text encoders (``load_lora_weights(..., adapter_name=...)``), loaded once
and kept; a render makes its own set active with ``set_adapters`` (several at once, each with
its strength), and a render with none turns them off (``disable_lora``). So switching LoRAs
between batches costs a ``set_adapters`` call, never a reload of the base model.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.builtin import MICRO_TEAL_LORA
from promptlab.errors import ModelError
from promptlab.hashing import file_sha256

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

#: LoRAs shipped with promptlab, by the name a LoRA spec gives them, and the command that remakes each.
BUILTIN_LORAS: dict[str, tuple[Path, str]] = {
    "micro-teal": (MICRO_TEAL_LORA, "promptlab micro train-lora"),
}
#: The environment variable naming the folder where LoRAs are found by name.
LORA_DIR_ENV = "PROMPTLAB_LORA_DIR"
#: The level of a LoRA axis meaning "no LoRA".
NO_LORA = "none"
#: The largest strength either way: A1111 takes negative strengths (a LoRA "subtracted"); far past 10
#: a LoRA's change swamps the model and the image is noise.
MAX_LORA_STRENGTH = 10.0
#: LoRA adapters kept loaded on one model beyond those a render uses (least recently used go first).
MAX_LOADED_LORAS = 8
LORA_SUFFIX = ".safetensors"
_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NUMBER = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*$")
# Cross-attention widths of the real bases' UNets (the text encoder's hidden size), to say which base a LoRA is for.
_BASE_WIDTHS = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA to apply at ``strength``: ``source`` is a .safetensors file (absolute path) or a hub id.

    ``name`` is how it is shown and written in A1111's ``<lora:name:w>`` (the file's stem);
    ``sha256`` the file's hash and ``path`` the file itself, known once a hub LoRA is fetched;
    ``a1111_hash`` the hash A1111 names a LoRA by (``addnet_sha256``).
    """

    source: str
    strength: float = 1.0
    name: str = ""
    sha256: str | None = None
    path: str | None = None
    a1111_hash: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ModelError(f"LoRA {self.source!r}: expected a .safetensors file or a hub id (owner/name)")
        check_strength(self.strength, self.source)
        if not self.name:
            object.__setattr__(self, "name", lora_name(self.source))

    @property
    def kind(self) -> str:
        """``file`` or ``hub``."""
        return "file" if self.source.lower().endswith(LORA_SUFFIX) or Path(self.source).is_absolute() else "hub"

    @property
    def identity(self) -> str:
        """What makes this LoRA this LoRA on every machine: the file's hash, else the hub id."""
        return self.sha256 or f"hub:{self.source}"

    def describe(self) -> str:
        """``name:strength``, as an axis level or the CLI writes it."""
        return f"{self.name}:{self.strength:g}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoraSpec:
        """A LoRA from ``to_dict``'s or ``dataclasses.asdict``'s dict (a setup read back from JSON)."""
        known = {"source", "strength", "name", "sha256", "path", "a1111_hash"}
        if not isinstance(data.get("source"), str):
            raise ModelError(f"LoRA {dict(data)!r}: expected a mapping with its source (a .safetensors file or a hub id)")
        return cls(**{key: value for key, value in data.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        """What a run records of the LoRA."""
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "strength": self.strength,
            "a1111_hash": self.a1111_hash,
        }


def check_strength(strength: object, what: str) -> float:
    """``strength`` as a float if it is a finite number within ``MAX_LORA_STRENGTH`` either way, else ModelError."""
    ok = isinstance(strength, (int, float)) and not isinstance(strength, bool) and math.isfinite(strength)
    if not ok or abs(strength) > MAX_LORA_STRENGTH:  # type: ignore[arg-type]
        raise ModelError(
            f"LoRA {what!r}: strength {strength!r} must be a number from {-MAX_LORA_STRENGTH:g} to "
            f"{MAX_LORA_STRENGTH:g} (1 is the LoRA as trained, 0 is off), e.g. {what}:0.8"
        )
    return float(strength)  # type: ignore[arg-type]


def lora_name(source: str) -> str:
    """A LoRA's short name: the file's stem, or the hub id's last part."""
    name = source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(LORA_SUFFIX)] if name.lower().endswith(LORA_SUFFIX) else name


def split_strength(text: str) -> tuple[str, float | None]:
    """``"name:0.6"`` -> ``("name", 0.6)``; no number after the last colon -> ``(text, None)``."""
    head, colon, tail = text.rpartition(":")
    if colon and head.strip() and _NUMBER.match(tail):
        return head.strip(), float(tail)
    return text.strip(), None


def lora_folder(lora_dir: str | Path | None = None) -> Path | None:
    """The folder where LoRAs are found by name: ``lora_dir`` if given, else ``PROMPTLAB_LORA_DIR``, else None."""
    if lora_dir is not None and str(lora_dir).strip():
        return Path(lora_dir).expanduser()
    env = os.environ.get(LORA_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else None


def parse_lora(
    text: str, *, lora_dir: str | Path | None = None, base_dir: Path | None = None, strength: float | None = None
) -> LoraSpec:
    """The LoRA ``text`` names (``NAME_OR_PATH_OR_HUB_ID[:STRENGTH]``), found on disk; ModelError if it is nowhere.

    ``strength`` overrides the one written (A1111's ``<lora:name:w>`` gives it apart). A relative
    path starts at ``base_dir`` (the experiment file's folder), else the working directory.
    """
    if not isinstance(text, str) or not text.strip():
        raise ModelError(f"LoRA {text!r}: expected a .safetensors file, a name in the LoRA folder or a hub id, e.g. detail:0.8")
    name, written = split_strength(text)
    value = strength if strength is not None else (1.0 if written is None else written)
    check_strength(value, name)
    folder = lora_folder(lora_dir)
    path = find_lora_file(name, folder, base_dir)
    if path is None and name in BUILTIN_LORAS:
        path = _builtin_lora(name)
    if path is not None:
        return LoraSpec(str(path), value, lora_name(name), file_sha256(path), str(path), addnet_sha256(path))
    if _HUB_ID.match(name) and not name.lower().endswith((LORA_SUFFIX, *_PICKLE_SUFFIXES)):
        return LoraSpec(name, value, lora_name(name))
    where = f"the LoRA folder {folder}" if folder is not None else f"no LoRA folder (set {LORA_DIR_ENV} or lora_dir)"
    raise ModelError(
        f"LoRA {name!r}: no such file ({where}; looked for {', '.join(map(str, _candidates(name, folder, base_dir)))}); "
        f"give a .safetensors file, a file name in the LoRA folder, or a hub id (owner/name)"
    )


def _builtin_lora(name: str) -> Path:
    """The file of a built-in LoRA; ModelError naming the command that remakes it when its weights are missing."""
    folder, command = BUILTIN_LORAS[name]
    if not folder.is_dir() or not any(folder.glob(f"*{LORA_SUFFIX}")):
        raise ModelError(
            f"built-in LoRA {name!r} has no weights at {folder}; install promptlab from a full checkout or remake "
            f"them with `{command}`"
        )
    return _file_in_folder(folder, name).resolve()


def _candidates(name: str, folder: Path | None, base_dir: Path | None) -> list[Path]:
    path = Path(name).expanduser()
    found = [path if path.is_absolute() else (base_dir or Path.cwd()) / path]
    if folder is not None and not path.is_absolute():
        found.append(folder / path)
        if not name.lower().endswith(LORA_SUFFIX):
            found.append(folder / f"{name}{LORA_SUFFIX}")
    return found


def find_lora_file(name: str, folder: Path | None, base_dir: Path | None = None) -> Path | None:
    """The .safetensors file ``name`` names (a path, or a name in ``folder``), or None; ModelError for a file that cannot be a LoRA."""
    for candidate in _candidates(name, folder, base_dir):
        if candidate.is_dir():
            candidate = _file_in_folder(candidate, name)
        if not candidate.is_file():
            continue
        suffix = candidate.suffix.lower()
        if suffix in _PICKLE_SUFFIXES:
            raise ModelError(
                f"LoRA {name!r} is a pickle file ({candidate}); loading one can run arbitrary code. "
                "Use the LoRA's .safetensors file"
            )
        if suffix != LORA_SUFFIX:
            raise ModelError(f"LoRA {name!r} is a {suffix or 'suffix-less'} file ({candidate}); expected a .safetensors LoRA")
        return candidate.resolve()
    return None


def _file_in_folder(folder: Path, name: str) -> Path:
    """The one .safetensors file of a LoRA folder (diffusers saves ``pytorch_lora_weights.safetensors``)."""
    files = sorted(folder.glob(f"*{LORA_SUFFIX}"))
    preferred = folder / f"pytorch_lora_weights{LORA_SUFFIX}"
    if preferred in files or len(files) == 1:
        return preferred if preferred in files else files[0]
    if not files:
        raise ModelError(f"LoRA {name!r} is a folder ({folder}) with no .safetensors file; give the LoRA file itself")
    raise ModelError(
        f"LoRA {name!r} is a folder ({folder}) with {len(files)} .safetensors files; give one of them: "
        f"{', '.join(f.name for f in files[:5])}"
    )


def fetch_lora(lora: LoraSpec) -> LoraSpec:
    """``lora`` with its local file and hash: a hub LoRA from the Hugging Face cache, or downloaded when online."""
    if lora.path is not None:
        # Hashed again (a stat and a memo lookup unless the file changed): what is recorded is what was loaded.
        path = Path(lora.path)
        if not path.is_file():
            raise ModelError(f"LoRA file {path} is gone; put it back, or give another LoRA")
        return replace(lora, sha256=file_sha256(path), a1111_hash=addnet_sha256(path))
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    try:
        folder = Path(
            snapshot_download(lora.source, allow_patterns=[f"*{LORA_SUFFIX}"], local_files_only=offline)
        )
    except Exception as error:  # noqa: BLE001 - the hub client raises many types for one cause: not here
        raise ModelError(hub_lora_missing(lora.source, f"{type(error).__name__}: {_first_line(error)}")) from error
    path = _file_in_folder(folder, lora.source).resolve()
    return replace(lora, path=str(path), sha256=file_sha256(path), a1111_hash=addnet_sha256(path))


def addnet_sha256(path: Path) -> str:
    """The SHA-256 of a .safetensors file's tensors, its header left out: the hash A1111 (``hashes.addnet_hash_safetensors``,
    kohya's) names a LoRA by, so editing the file's metadata keeps it. Its first 12 hex digits are A1111's ``Lora hashes``."""
    stat = path.stat()
    return _addnet_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _addnet_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        header = int.from_bytes(handle.read(8), "little")
        handle.seek(8 + header)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hub_lora_missing(hub_id: str, why: str) -> str:
    """The message for a hub LoRA that is not on this machine."""
    return (
        f"LoRA {hub_id!r} is not on this machine and could not be downloaded ({why}): download it once with "
        f"network (`hf download {hub_id}`), or give its .safetensors file, e.g. --lora ./{lora_name(hub_id)}.safetensors"
    )


def _first_line(error: Exception) -> str:
    return re.split(r"\.\s|\n", str(error), maxsplit=1)[0][:200]


# The adapters active on each UNet now (adapter names and strengths), so an unchanged set costs nothing.
_ACTIVE: weakref.WeakKeyDictionary[Any, tuple[tuple[str, float], ...]] = weakref.WeakKeyDictionary()
# Adapters loaded on each UNet, least recently used first.
_LOADED: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def adapter_name(lora: LoraSpec) -> str:
    """The adapter's name on the pipeline: one per file content, so a renamed copy loads once."""
    stem = re.sub(r"\W", "_", lora.name)[:40]
    return f"{stem}_{(lora.sha256 or '')[:12]}"


def apply_loras(pipe: DiffusionPipeline, loras: Sequence[LoraSpec], model: str, family: str) -> tuple[LoraSpec, ...]:
    """Load each LoRA of ``loras`` into ``pipe`` (or reuse it) and make exactly these active at their strengths.

    No LoRAs: every loaded adapter is turned off, and the model renders as if none were loaded.
    Returns the LoRAs with their files and hashes. ModelError, naming the file and the fix, for a
    LoRA that is missing, not a LoRA, damaged, or made for another base model than ``model`` (of ``family``).
    """
    fetched = tuple(fetch_lora(lora) for lora in loras)
    names = [adapter_name(lora) for lora in fetched]
    if len(set(names)) != len(names):
        twice = next(lora for lora, name in zip(fetched, names) if names.count(name) > 1)
        raise ModelError(f"LoRA {twice.name!r} is given twice; give each LoRA once, with one strength")
    for lora, name in zip(fetched, names):
        _load(pipe, lora, name, f"{model!r} ({family})")
    _forget_unused(pipe, set(names))
    activate_loras(pipe, fetched)
    return fetched


def activate_loras(pipe: DiffusionPipeline, loras: Sequence[LoraSpec]) -> None:
    """Make exactly ``loras`` (loaded already by ``apply_loras``) the active adapters at their strengths."""
    wanted = tuple((adapter_name(lora), lora.strength) for lora in loras)
    unet = pipe.unet
    if _ACTIVE.get(unet, ()) == wanted and unet in _ACTIVE:
        return
    if wanted:
        pipe.enable_lora()
        pipe.set_adapters([name for name, _ in wanted], [strength for _, strength in wanted])
    elif _LOADED.get(unet):
        pipe.disable_lora()
    _ACTIVE[unet] = wanted


def loaded_loras(pipe: DiffusionPipeline) -> list[str]:
    """The adapters loaded on ``pipe``'s UNet and text encoders now."""
    return sorted({name for names in pipe.get_list_adapters().values() for name in names})


def _load(pipe: DiffusionPipeline, lora: LoraSpec, name: str, model: str) -> None:
    unet = pipe.unet
    loaded = _LOADED.setdefault(unet, [])
    if name in loaded:
        loaded.remove(name)
        loaded.append(name)
        return
    from promptlab.render.quiet import quiet_libraries

    assert lora.path is not None
    state = _read_state_dict(pipe, lora)
    _check_fits(pipe, lora, state, model)
    _ACTIVE.pop(unet, None)
    try:
        with quiet_libraries(), _silent_diffusers(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.load_lora_weights(lora.path, adapter_name=name)
    except Exception as error:  # noqa: BLE001 - peft and diffusers raise many types for a LoRA that does not fit
        _drop(pipe, name)
        raise ModelError(_not_for_model(lora, model, _first_line(error))) from error
    if name not in loaded_loras(pipe):
        raise ModelError(_not_for_model(lora, model, "none of its layers is a layer of the model"))
    loaded.append(name)


@contextmanager
def _silent_diffusers() -> Iterator[None]:
    """diffusers logs a failed LoRA load as an error before raising it: the raised error is what promptlab reports."""
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity(diffusers_logging.CRITICAL)
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(level)


def _read_state_dict(pipe: DiffusionPipeline, lora: LoraSpec) -> Mapping[str, Any]:
    """The LoRA's weights in diffusers' names (kohya's converted), or ModelError for a file that is no LoRA."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state, _ = pipe.lora_state_dict(lora.path)
    except Exception as error:  # noqa: BLE001 - safetensors and diffusers raise many types for a damaged file
        raise ModelError(
            f"LoRA file {lora.path} cannot be read as a LoRA ({_first_line(error)}): the file is damaged or not a "
            "LoRA; download it again, or give a .safetensors LoRA in diffusers' or kohya's (A1111's) format"
        ) from error
    if not any("lora" in key for key in state):
        raise ModelError(
            f"LoRA file {lora.path} holds no LoRA weights ({len(state)} tensors, none named lora_...): it is another "
            "kind of file (a checkpoint, a VAE, an embedding?); give a LoRA .safetensors file"
        )
    return state


def _check_fits(pipe: DiffusionPipeline, lora: LoraSpec, state: Mapping[str, Any], model: str) -> None:
    """ModelError when the LoRA is for a base model unlike ``pipe``'s: a second text encoder, or UNet layers it lacks or sizes otherwise."""
    if getattr(pipe, "text_encoder_2", None) is None and any(
        key.startswith(("text_encoder_2.", "te2.", "lora_te2_")) for key in state
    ):
        raise ModelError(_not_for_model(lora, model, "it has layers for a second text encoder, as SDXL LoRAs do"))
    unet = pipe.unet
    problems: list[str] = []
    for key, tensor in state.items():
        found = _unet_layer(key)
        if found is None or getattr(tensor, "ndim", 0) != 2:
            continue
        layer, side = found
        try:
            module = unet.get_submodule(layer)
        except AttributeError:
            problems.append(f"the model has no layer {layer}")
            continue
        wanted = getattr(module, "in_features", None) if side == "down" else getattr(module, "out_features", None)
        width = int(tensor.shape[1] if side == "down" else tensor.shape[0])
        if wanted is not None and width != wanted:
            base = _BASE_WIDTHS.get(width) if layer.endswith("attn2.to_k") and side == "down" else None
            if base:
                # The text conditioning's width names the base model the LoRA was trained on: the clearest reason.
                raise ModelError(_not_for_model(lora, model, f"its layer {layer} is {width} wide, the model's is {wanted}; made for {base}"))
            problems.append(f"its layer {layer} is {width} wide, the model's is {wanted}")
    if problems:
        raise ModelError(_not_for_model(lora, model, problems[0]))


_OLD_PROCESSOR = re.compile(r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")
_LORA_SIDE = re.compile(r"\.(?:lora\.(down|up)|lora_([AB])(?:\.[\w]+)?)\.weight$")


def _unet_layer(key: str) -> tuple[str, str] | None:
    """``(UNet layer, "down"/"up")`` for a LoRA weight key in diffusers' names, or None for another key."""
    if not key.startswith("unet."):
        return None
    key = key[len("unet.") :]
    old = _OLD_PROCESSOR.search(key)
    if old:
        target = "to_out.0" if old[1] == "to_out" else old[1]
        return f"{key[: old.start()]}.{target}", old[2]
    side = _LORA_SIDE.search(key)
    if side is None:
        return None
    return key[: side.start()], side[1] or ("down" if side[2] == "A" else "up")


def _not_for_model(lora: LoraSpec, model: str, why: str) -> str:
    return (
        f"LoRA file {lora.path} does not fit model {model}: {why}; it was made for another base model. "
        f"Use a LoRA trained for the same base as {model}, or render it with its own base model"
    )


def _drop(pipe: DiffusionPipeline, name: str) -> None:
    """Remove a half-loaded adapter, if any part of it was loaded."""
    if name in loaded_loras(pipe):
        pipe.delete_adapters(name)


def _forget_unused(pipe: DiffusionPipeline, keep: set[str]) -> None:
    """Delete the least recently used adapters past ``MAX_LOADED_LORAS``, never one in ``keep``."""
    loaded = _LOADED.get(pipe.unet, [])
    extra = len(loaded) - max(MAX_LOADED_LORAS, len(keep))
    for name in [name for name in loaded if name not in keep][: max(extra, 0)]:
        pipe.delete_adapters(name)
        loaded.remove(name)
        _ACTIVE.pop(pipe.unet, None)
