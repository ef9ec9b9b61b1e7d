"""What every micro training stage is built from: seeded batches, the optimizer step, and the losses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promptlab.micro.data import token_ids
from promptlab.micro.world import ATTRIBUTES

if TYPE_CHECKING:
    import torch

def batches(count: int, batch: int, steps: int, seed: int) -> Any:
    """Indices of ``steps`` batches: shuffled epochs, from a seeded generator."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(count, generator=generator)
    position = 0
    for _ in range(steps):
        if position + batch > count:
            order = torch.randperm(count, generator=generator)
            position = 0
        yield order[position : position + batch]
        position += batch


def make_optimizer(parameters: Any, learning_rate: float, steps: int) -> tuple[Any, Any]:
    import torch
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=1e-4)
    schedule = get_scheduler("cosine", optimizer, num_warmup_steps=min(200, steps // 10), num_training_steps=steps)
    return optimizer, schedule


def descend(loss: torch.Tensor, optimizer: Any, schedule: Any, clip: Iterable[torch.nn.Parameter] = ()) -> None:
    """One optimizer step on ``loss``, the gradients of ``clip`` clipped to norm 1 first, then the schedule's step."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clipped = list(clip)
    if clipped:
        torch.nn.utils.clip_grad_norm_(clipped, 1.0)
    optimizer.step()
    schedule.step()


def foreground_weights(images: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-pixel loss weights: ``1 + weight`` where a pixel differs from its image's border colour.

    A shape covers 2-20% of a scene; unweighted, the loss is nearly all background and the VAE
    learns the shapes' colours last.
    """
    import torch

    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[..., None, None]
    differs = (images - background).norm(dim=1, keepdim=True) > 0.2
    return 1 + weight * differs.float()


def edge_error(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the differences between vertical and horizontal neighbours.

    Plain pixel error lets a small star's points blur into a disc at little cost; this one
    charges for every edge the reconstruction softens.
    """
    error = reconstruction.new_zeros(())
    for dim in (-2, -1):
        error = error + ((reconstruction.diff(dim=dim) - images.diff(dim=dim)) ** 2).mean()
    return error


def attribute_heads(width: int) -> Any:
    """One linear classifier per scene attribute, on ``width``-wide features (training only)."""
    import torch

    return torch.nn.ModuleDict({name: torch.nn.Linear(width, len(values)) for name, values in ATTRIBUTES.items()})


def attribute_loss(heads: Any, features: torch.Tensor, labels: Sequence[Mapping[str, str | None]]) -> torch.Tensor:
    """Cross-entropy of each head on the rows whose labels give its attribute (the rest are ignored)."""
    import torch

    loss = features.new_zeros(())
    for name, values in ATTRIBUTES.items():
        said = torch.tensor([values.index(found[name]) if name in found else -100 for found in labels])
        if (said != -100).any():
            loss = loss + torch.nn.functional.cross_entropy(heads[name](features), said, ignore_index=-100)
    return loss


def encode_captions(text_encoder: Any, tokenizer: Any, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states and pooled output of ``captions``, with gradients.

    Captions with weight syntax get their hidden states from compel, as promptlab renders them;
    their pooled output is that of the caption with the syntax taken out.
    """
    import torch

    from promptlab.render.conditioning import compel_encoder, has_weight_syntax, without_weights

    plain = [without_weights(caption) for caption in captions]
    encoded = text_encoder(token_ids(tokenizer, plain))
    weighted = [i for i, caption in enumerate(captions) if has_weight_syntax(caption)]
    if not weighted:
        return encoded.last_hidden_state, encoded.pooler_output
    # A new Compel each call: it caches the empty prompt's embedding, and the encoder is training.
    conditioner = compel_encoder(tokenizer, text_encoder, truncate=True, sdxl=False)
    rows = list(encoded.last_hidden_state.unbind(0))
    for i in weighted:
        rows[i] = conditioner.build_conditioning_tensor(captions[i])[0]
    return torch.stack(rows), encoded.pooler_output
