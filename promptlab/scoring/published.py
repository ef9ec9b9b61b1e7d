"""Scorers trained by others and published with their weights: where each file lives, and reading it safely.

A published scorer is named by its spec (``PUBLISHED``): ``aesthetic``, ``pickscore``, ``hps-v2``,
``hps-v2.1`` (also ``hps``), ``imagereward``. Its weights come from the Hugging Face hub, downloaded once into the
hub cache (``HF_HOME``) and read from there offline (``HF_HUB_OFFLINE=1``); or from a local copy,
``FAMILY:/path``, e.g. ``aesthetic:/models/sac+logos+ava1-l14-linearMSE.pth``. A weights file is
read without running any code: safetensors, or a pickle through ``torch.load(weights_only=True)``,
which rebuilds tensors, dicts and numbers only (the authors publish plain state dicts this way).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promptlab.errors import ScoringError

if TYPE_CHECKING:
    import torch

#: The scorer a run can fall back on offline (built in, no download).
OFFLINE_FALLBACK = "micro-clip"


#: Weight files read as state dicts: safetensors, or pickles through ``torch.load(weights_only=True)``.
STATE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class HubFile:
    """A file in a hub repository that a published scorer needs."""

    repo: str
    filename: str
    #: Other files that serve instead (e.g. a .bin where the .safetensors is missing).
    alternatives: tuple[str, ...] = ()
    #: Files of the same repository that are read with it (a model's config, a tokenizer's vocabulary).
    companions: tuple[str, ...] = ()

    @property
    def command(self) -> str:
        """The shell command that downloads it (and its companions) into the hub cache."""
        return " ".join(("hf download", self.repo, self.filename, *self.companions))


@dataclass(frozen=True)
class PublishedScorer:
    """A scorer trained and published by others: what it reads and measures, and where its weights live."""

    #: The canonical spec, stored as ``Score.scorer``.
    name: str
    #: The key of its class in ``SCORERS``; also the prefix of its local form ``FAMILY:/path``.
    kind: str
    #: The architecture its weights load into (open_clip name, or hub id of a transformers model).
    model: str
    #: The files its published weights come in, all needed.
    files: tuple[HubFile, ...]
    #: Its local form, ``FAMILY:/path/to/...``, and what the path must hold.
    local: str
    local_holds: str
    #: The hub files still needed with a local copy of the weights (the aesthetic head's CLIP, PickScore's processor).
    with_local: tuple[HubFile, ...]
    #: Whether the score depends on the text (False: the image alone is scored).
    reads_text: bool
    #: Whether its values compare only images scored against the same text.
    within_prompt: bool
    #: What it measures, in one line.
    measures: str
    #: Whether its local copy is a folder (a transformers model, or weights with their config) rather than one file.
    local_folder: bool = False


#: The open_clip model and tag the aesthetic predictor's head was trained on (OpenAI's CLIP ViT-L/14).
AESTHETIC_CLIP = ("ViT-L-14-quickgelu", "openai")

#: The processor PickScore's authors use (CLIP ViT-H/14's: 224 px, CLIP's mean and std, its tokenizer).
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
PICKSCORE_PROCESSOR_FILES = (
    "preprocessor_config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)

#: HPS v2 is OpenCLIP ViT-H-14 (laion2B) fine-tuned; its published checkpoints hold the whole model.
HPS_MODEL, HPS_PRETRAINED_CFG = "ViT-H-14", "laion2b_s32b_b79k"

# The CLIP the aesthetic head reads, as open_clip downloads it for ViT-L-14-quickgelu:openai.
_AESTHETIC_CLIP_FILE = HubFile(
    "timm/vit_large_patch14_clip_224.openai", "open_clip_model.safetensors", ("open_clip_pytorch_model.bin",)
)
_PICKSCORE_PROCESSOR = (
    # A processor saved by transformers 5 is one processor_config.json.
    HubFile(PICKSCORE_PROCESSOR, PICKSCORE_PROCESSOR_FILES[0], ("processor_config.json",), PICKSCORE_PROCESSOR_FILES[1:]),
    HubFile(PICKSCORE_PROCESSOR, PICKSCORE_PROCESSOR_FILES[1], companions=PICKSCORE_PROCESSOR_FILES[2:]),
)
_STATE_DICT_COPY = "the published file, or a .safetensors copy of its state dict"
_HPS_MEASURES = "human preference (HPD v2 choices) between images of the same prompt"

#: Published scorers by canonical spec. ``hps`` names the newest HPS, ``hps-v2.1`` (``ALIASES``).
PUBLISHED: dict[str, PublishedScorer] = {
    "aesthetic": PublishedScorer(
        "aesthetic",
        "aesthetic",
        AESTHETIC_CLIP[0],
        (HubFile("camenduru/improved-aesthetic-predictor", "sac+logos+ava1-l14-linearMSE.pth"), _AESTHETIC_CLIP_FILE),
        "aesthetic:/path/to/sac+logos+ava1-l14-linearMSE.pth",
        _STATE_DICT_COPY,
        (_AESTHETIC_CLIP_FILE,),
        reads_text=False,
        within_prompt=False,
        measures="how much people like the image on average (1-10, LAION aesthetic predictor); ignores the prompt",
    ),
    "pickscore": PublishedScorer(
        "pickscore",
        "pickscore",
        "yuvalkirstain/PickScore_v1",
        (
            HubFile("yuvalkirstain/PickScore_v1", "config.json", companions=("model.safetensors",)),
            HubFile("yuvalkirstain/PickScore_v1", "model.safetensors", ("pytorch_model.bin",), ("config.json",)),
            *_PICKSCORE_PROCESSOR,
        ),
        "pickscore:/path/to/folder",
        "a transformers CLIPModel saved with save_pretrained, its processor alongside",
        _PICKSCORE_PROCESSOR,
        reads_text=True,
        within_prompt=True,
        measures="which image of the same prompt people would pick (Pick-a-Pic choices)",
        local_folder=True,
    ),
    "hps-v2": PublishedScorer(
        "hps-v2",
        "hps",
        HPS_MODEL,
        (HubFile("xswu/HPSv2", "HPS_v2_compressed.pt"),),
        "hps:/path/to/HPS_v2_compressed.pt",
        _STATE_DICT_COPY,
        (),
        reads_text=True,
        within_prompt=True,
        measures=_HPS_MEASURES,
    ),
    "hps-v2.1": PublishedScorer(
        "hps-v2.1",
        "hps",
        HPS_MODEL,
        (HubFile("xswu/HPSv2", "HPS_v2.1_compressed.pt"),),
        "hps:/path/to/HPS_v2.1_compressed.pt",
        _STATE_DICT_COPY,
        (),
        reads_text=True,
        within_prompt=True,
        measures=_HPS_MEASURES,
    ),
}

#: BLIP's tokenizer, which ImageReward reads prompts with.
IMAGEREWARD_TOKENIZER = "google-bert/bert-base-uncased"
_IMAGEREWARD_TOKENIZER_FILE = HubFile(IMAGEREWARD_TOKENIZER, "vocab.txt", companions=("tokenizer_config.json",))

PUBLISHED["imagereward"] = PublishedScorer(
    "imagereward",
    "imagereward",
    "THUDM/ImageReward",
    (
        HubFile("THUDM/ImageReward", "ImageReward.pt", companions=("med_config.json",)),
        HubFile("THUDM/ImageReward", "med_config.json", companions=("ImageReward.pt",)),
        _IMAGEREWARD_TOKENIZER_FILE,
    ),
    "imagereward:/path/to/folder",
    "a folder with ImageReward.pt, or a .safetensors copy named ImageReward.safetensors, and med_config.json",
    (_IMAGEREWARD_TOKENIZER_FILE,),
    reads_text=True,
    within_prompt=True,
    measures="human preference (ImageReward's expert rankings) between images of the same prompt, about -2..2",
    local_folder=True,
)

#: Other names of published scorers.
ALIASES: dict[str, str] = {"hps": "hps-v2.1"}

#: The published scorer a local form ``FAMILY:/path`` stands for (its architecture and traits).
FAMILIES: dict[str, str] = {
    "aesthetic": "aesthetic",
    "pickscore": "pickscore",
    "hps": "hps-v2.1",
    "hps-v2": "hps-v2",
    "hps-v2.1": "hps-v2.1",
    "imagereward": "imagereward",
}


def published(name: str) -> PublishedScorer | None:
    """The published scorer ``name`` (a canonical spec, an alias, or a local form's family), or None."""
    return PUBLISHED.get(ALIASES.get(name, name)) or (PUBLISHED[FAMILIES[name]] if name in FAMILIES else None)


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` keeps the Hugging Face libraries off the network (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def missing_message(spec: str, scorer: PublishedScorer, missing: HubFile, why: str) -> str:
    """One line: which file of ``scorer`` is not here, how to download it, and (when a local copy of the
    weights would do without it) how to point at one."""
    local = (
        ""
        if missing in scorer.with_local  # needed with a local copy of the weights too
        else f"point at a local copy ({scorer.local_holds}): scorer = \"{scorer.local}\", or "
    )
    return (
        f"scorer {spec!r} ({missing.filename} from {missing.repo}) is not on this machine ({why}): "
        f"download it once with network (`{missing.command}`), or {local}use scorer = \"{OFFLINE_FALLBACK}\" (built in)"
    )


def missing_from_cache(name: str, local: str | None = None) -> tuple[PublishedScorer, HubFile] | None:
    """For published scorer ``name`` (a spec name, or with ``local`` weights its family): the first hub file
    it needs that is not in the local Hugging Face cache, with the scorer; None when all are (or it is no published scorer)."""
    from huggingface_hub import try_to_load_from_cache

    scorer = published(name)
    if scorer is None:
        return None
    needed = scorer.files if local is None else scorer.with_local
    for file in needed:
        names = (file.filename, *file.alternatives)
        if local is not None and any((Path(local) / name).is_file() for name in names):
            continue  # a local folder that holds it (PickScore's processor, ImageReward's tokenizer)
        if not any(isinstance(try_to_load_from_cache(file.repo, name), str) for name in names):
            return scorer, file
    return None


def hub_file(spec: str, scorer: PublishedScorer, file: HubFile) -> Path:
    """``file`` from the hub cache, downloaded first when online; ScoringError (one line) when it cannot be had."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(file.repo, file.filename, local_files_only=hub_offline()))
    except Exception as error:  # noqa: BLE001 - the hub client raises many types for one cause: not here
        why = "HF_HUB_OFFLINE=1 keeps the network off" if hub_offline() else f"{type(error).__name__}"
        raise ScoringError(missing_message(spec, scorer, file, why)) from error


def local_weights(spec: str, text: str, *, folder: bool = False) -> Path:
    """The absolute path a local form names; ScoringError if it is not there (or not a weights file)."""
    path = Path(text).expanduser()
    if folder:
        if not path.is_dir():
            raise ScoringError(f"scorer {spec!r}: {path} is not a folder (expected a transformers model saved with save_pretrained)")
        return path.resolve()
    if not path.is_file():
        raise ScoringError(f"scorer {spec!r}: weights file {path} does not exist")
    if path.suffix.lower() not in STATE_SUFFIXES:
        raise ScoringError(f"scorer {spec!r}: {path} is a {path.suffix or 'suffix-less'} file; expected one of {', '.join(STATE_SUFFIXES)}")
    return path.resolve()


def read_state_dict(path: Path, spec: str) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a plain pickled one, read without running code."""
    import torch

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # weights_only: tensors, dicts, strings and numbers, never arbitrary objects (no code runs).
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - safetensors and torch.load raise many types for a bad file
        detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise ScoringError(
            f"scorer {spec!r}: cannot read {path} as a state dict of tensors ({detail}); "
            "give a .safetensors file or a plain torch state dict"
        ) from error
    if not isinstance(state, dict):
        raise ScoringError(f"scorer {spec!r}: {path} holds a {type(state).__name__}, not a state dict")
    return state


def hub_folder(spec: str, scorer: PublishedScorer, repo: str, patterns: tuple[str, ...]) -> Path:
    """A local folder with the files of ``repo`` that match ``patterns`` (downloaded first when online);
    ScoringError (one line) when one of ``scorer``'s files from that repository is not there."""
    from huggingface_hub import snapshot_download

    needed = [file for file in scorer.files if file.repo == repo]
    try:
        folder = Path(snapshot_download(repo, allow_patterns=list(patterns), local_files_only=hub_offline()))
    except Exception as error:  # noqa: BLE001 - the hub client raises many types for one cause: not here
        why = "HF_HUB_OFFLINE=1 keeps the network off" if hub_offline() else f"{type(error).__name__}"
        raise ScoringError(missing_message(spec, scorer, needed[0], why)) from error
    for file in needed:
        if not any((folder / name).is_file() for name in (file.filename, *file.alternatives)):
            raise ScoringError(missing_message(spec, scorer, file, "not in the local copy of its repository"))
    return folder
