"""Which device and dtype a model runs on, and giving an accelerator's memory back.

Rendering and scoring both choose here, so a render and its scores agree on the machine.
torch is imported on first use only.
"""

from __future__ import annotations

from promptlab.errors import ModelError

DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32")
_DTYPE_ALIASES = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32", "float": "float32"}


def choose_device(requested: str | None = None) -> str:
    """CUDA if available, else Apple MPS, else CPU; a requested device must exist here."""
    import torch

    if requested is None:
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError) as error:
        raise ModelError(f"device {requested!r} is not a torch device name (cpu, cuda, cuda:1, mps)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {requested!r}: CUDA is not available on this machine; use cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"device {requested!r}: Apple MPS is not available on this machine; use cpu")
    return str(device)


def choose_dtype(device: str, requested: str | None = None) -> str:
    """float16 on CUDA and MPS (as diffusers' guides load them), float32 on CPU; bfloat16 on request.

    >>> choose_dtype("cpu"), choose_dtype("cuda"), choose_dtype("cuda", "bf16")
    ('float32', 'float16', 'bfloat16')
    """
    if requested is None:
        return "float32" if device.startswith("cpu") else "float16"
    name = _DTYPE_ALIASES.get(requested.lower(), requested.lower())
    if name not in DTYPES:
        raise ModelError(f"dtype {requested!r} is not one of {', '.join(DTYPES)}")
    return name


def release_memory(device: str) -> None:
    """Hand an accelerator's cached blocks back once the models on ``device`` are dropped.

    torch keeps freed GPU memory in its own cache; without this a model evicted from promptlab's
    caches still shows as used to other processes and to ``nvidia-smi``.
    """
    import gc

    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    elif device.startswith("mps"):
        import torch

        torch.mps.empty_cache()
