"""A cheap way to Matryoshka-ise a rigid sentence-transformers model: a linear head on frozen embeddings.

Full fine-tuning with ``SentenceTransformerTrainer`` + ``MatryoshkaLoss`` (``scripts/train_matryoshka.py``)
is the general route. On a CPU, training only a ``D x D`` linear map on top of the frozen (pre-computed)
embeddings, with an in-batch InfoNCE loss summed over the Matryoshka prefixes, is much cheaper and already
makes the short prefixes useful. :func:`attach_head` appends the trained map
to the model as a ``sentence_transformers.models.Dense`` module, so the result is again an ordinary
``SentenceTransformer`` that saves and loads as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = ["matryoshka_infonce_loss", "train_linear_head", "attach_head", "apply_head"]


def matryoshka_infonce_loss(
    anchors: torch.Tensor, positives: torch.Tensor, dims: Sequence[int], temperature: float = 0.05
) -> torch.Tensor:
    """Mean over ``dims`` of the in-batch InfoNCE loss on each re-normalised prefix (MRL objective)."""
    labels = torch.arange(len(anchors), device=anchors.device)
    total = anchors.new_zeros(())
    for d in dims:
        a = nn.functional.normalize(anchors[:, :d], dim=-1)
        p = nn.functional.normalize(positives[:, :d], dim=-1)
        total = total + nn.functional.cross_entropy(a @ p.T / temperature, labels)
    return total / len(dims)


def train_linear_head(
    anchors: np.ndarray,
    positives: np.ndarray,
    dims: Sequence[int],
    *,
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 2e-3,
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adamw",
    temperature: float = 0.05,
    validation_fraction: float = 0.1,
    seed: int = 0,
    show_progress: bool = True,
) -> nn.Linear:
    """Train a ``D x D`` linear map (identity start) on (anchor, positive) embedding pairs with
    :func:`matryoshka_infonce_loss`.

    Defaults (30 epochs at lr 2e-3) were chosen because 3 epochs at 1e-3 underfit a 1.5k-pair set; so that
    they cannot overfit either, ``validation_fraction`` of the pairs is held out and the head of the epoch
    with the lowest validation loss is returned (early stopping; ``0`` trains on everything and returns the
    last epoch). ``optimizer`` is ``"adamw"`` (``torch.optim.AdamW``) or any optimizer class / factory
    called as ``optimizer(params, lr=lr, weight_decay=0.0)`` -- e.g. ``hf_ada.optim.Adan``, which the demo
    and the benchmark use.
    """
    if anchors.shape != positives.shape or anchors.ndim != 2:
        raise ValueError(f"anchors and positives must be 2-D arrays of one shape, got {anchors.shape} and {positives.shape}")
    dim = anchors.shape[1]
    bad = [d for d in dims if not 1 <= d <= dim]
    if bad:
        raise ValueError(f"dims must lie in [1, {dim}], got {bad}")
    if isinstance(optimizer, str) and optimizer != "adamw" or not (isinstance(optimizer, str) or callable(optimizer)):
        raise ValueError(
            f"optimizer must be 'adamw' or an optimizer class such as hf_ada.optim.Adan, got {optimizer!r}"
        )
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must lie in [0, 1), got {validation_fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(dim, dim, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(dim))
    optimizer_cls = torch.optim.AdamW if optimizer == "adamw" else optimizer
    opt: torch.optim.Optimizer = optimizer_cls(head.parameters(), lr=lr, weight_decay=0.0)
    a_all, p_all = torch.from_numpy(np.ascontiguousarray(anchors, np.float32)), torch.from_numpy(
        np.ascontiguousarray(positives, np.float32)
    )
    n_val = int(validation_fraction * len(a_all)) if len(a_all) * validation_fraction >= 2 else 0
    split = torch.randperm(len(a_all), generator=generator) if n_val else torch.arange(len(a_all))
    val, train = split[:n_val], split[n_val:]
    batch_size = min(batch_size, len(train))
    best, best_loss = None, float("inf")
    steps = epochs * max(1, len(train) // batch_size)
    bar = tqdm(total=steps, desc="Matryoshka head", disable=not show_progress)
    for epoch in range(epochs):
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            loss = matryoshka_infonce_loss(head(a_all[idx]), head(p_all[idx]), dims, temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update(1)
            bar.set_postfix(loss=loss.item())
        if n_val:
            with torch.no_grad():
                val_loss = sum(float(matryoshka_infonce_loss(head(a_all[val[i : i + batch_size]]),
                                                             head(p_all[val[i : i + batch_size]]), dims, temperature))
                               for i in range(0, n_val, batch_size))
            if val_loss < best_loss:
                best, best_loss = head.weight.detach().clone(), val_loss
                logger.debug("Matryoshka head: epoch %d, validation loss %.4f (best)", epoch + 1, val_loss)
    bar.close()
    if best is not None:
        with torch.no_grad():
            head.weight.copy_(best)
    return head.eval()


def apply_head(head: nn.Linear, embeddings: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """``embeddings @ head.weight.T`` as float32 numpy, in batches."""
    weight = head.weight.detach().cpu().numpy().T.astype(np.float32)
    return np.concatenate([embeddings[i : i + batch_size] @ weight for i in range(0, len(embeddings), batch_size)])


def attach_head(model: Any, head: nn.Linear) -> Any:
    """Append ``head`` to a ``SentenceTransformer`` as a linear ``models.Dense`` module (in place)."""
    from sentence_transformers.sentence_transformer.modules import Dense

    dense = Dense(head.in_features, head.out_features, bias=False, activation_function=nn.Identity())
    with torch.no_grad():
        dense.linear.weight.copy_(head.weight)
    model.append(dense)
    return model
