"""T3A (Iwasawa & Matsuo, NeurIPS 2021): the test-time template adjuster, the usual baseline for AdaNPC.

Supports start as the rows of the linear head's weight matrix, labelled by the head's own prediction on
them. Each test feature ``z`` joins the supports with the head's pseudo-label and the entropy of its
softmax; per class only the ``filter_k`` lowest-entropy supports are kept, and the prediction is
``z @ normalize(S^T Y, dim=0)`` with ``S`` the L2-normalised supports and ``Y`` their one-hot labels.
Like the reference, a batch's features join the supports *before* the batch is predicted.

``filter_k=None`` keeps every support. (The AdaNPC repository's T3A, asked to keep all with ``-1``,
slices ``[:-1]`` and so silently drops one support per class; hf-ada does not.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .features import find_classification_head
from .vote import softmax

__all__ = ["T3AClassifier"]


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` on torch's thread pool: a numpy matmul would wake numpy's BLAS threads, which keep spinning
    while the model's next forward pass runs on torch's threads."""
    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()


def _entropy(logits: np.ndarray) -> np.ndarray:
    p = softmax(logits)
    return -(p * np.log(np.clip(p, 1e-30, None))).sum(axis=1)


class T3AClassifier:
    """T3A on features, given the linear head ``logits = z @ weight.T + bias``.

    Args:
        weight: ``(num_classes, dim)`` head weight.
        bias: ``(num_classes,)`` head bias or ``None``.
        filter_k: supports kept per class (lowest entropy first); ``None`` keeps all.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None, filter_k: int | None = 100):
        if filter_k is not None and (not isinstance(filter_k, int) or filter_k < 1):
            raise ValueError(f"filter_k must be None (keep all) or an integer >= 1, got {filter_k!r}")
        self.weight = np.asarray(weight, dtype=np.float64)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float64)
        self.num_classes = self.weight.shape[0]
        self.filter_k = filter_k
        self.reset()

    @classmethod
    def from_model(cls, model: nn.Module, filter_k: int | None = 100) -> T3AClassifier:
        """Build from a transformers classifier whose head is a linear layer (found like AdaNPC's features)."""
        _, head = find_classification_head(model)
        bias = None if head.bias is None else head.bias.detach().cpu().numpy()
        return cls(head.weight.detach().cpu().numpy(), bias, filter_k)

    def head(self, features: np.ndarray) -> np.ndarray:
        logits = _matmul(np.asarray(features, dtype=np.float64), self.weight.T)
        return logits if self.bias is None else logits + self.bias

    def reset(self) -> None:
        """Back to the warm-up supports (the head's weight rows)."""
        logits = self.head(self.weight)
        self.supports = self.weight.copy()
        self.labels = logits.argmax(axis=1)
        self.entropy = _entropy(logits)

    def state(self) -> dict[str, np.ndarray]:
        """The adapted supports, their labels and entropies (what a save stores)."""
        return {"supports": self.supports, "labels": self.labels, "entropy": self.entropy}

    def load_state(self, supports: np.ndarray, labels: np.ndarray, entropy: np.ndarray) -> None:
        """Restore :meth:`state`; refuses arrays that do not fit this head."""
        supports, labels, entropy = np.asarray(supports), np.asarray(labels), np.asarray(entropy)
        n = len(labels)
        if supports.shape != (n, self.weight.shape[1]) or entropy.shape != (n,) or labels.ndim != 1 \
                or not np.isfinite(supports).all() or not np.isfinite(entropy).all() \
                or (n and (labels.min() < 0 or labels.max() >= self.num_classes)):
            raise ValueError("T3A supports do not fit the model's head")
        self.supports = supports.astype(np.float64)
        self.labels = labels.astype(np.int64)
        self.entropy = entropy.astype(np.float64)

    def _select(self) -> None:
        if self.filter_k is None:
            return
        keep = []
        for c in range(self.num_classes):
            idx = np.flatnonzero(self.labels == c)
            keep.append(idx[np.argsort(self.entropy[idx], kind="stable")[: self.filter_k]])
        keep = np.concatenate(keep)
        self.supports, self.labels, self.entropy = self.supports[keep], self.labels[keep], self.entropy[keep]

    def __call__(self, features: np.ndarray | torch.Tensor, adapt: bool = True) -> np.ndarray:
        """Scores ``(batch, num_classes)`` (argmax = prediction); with ``adapt`` the batch joins the supports."""
        z = np.asarray(features, dtype=np.float64)
        if adapt:
            logits = self.head(z)
            self.supports = np.concatenate([self.supports, z])
            self.labels = np.concatenate([self.labels, logits.argmax(axis=1)])
            self.entropy = np.concatenate([self.entropy, _entropy(logits)])
        self._select()
        s = self.supports / np.maximum(np.linalg.norm(self.supports, axis=1, keepdims=True), 1e-12)
        onehot = np.eye(self.num_classes)[self.labels]
        templates = _matmul(s.T, onehot)
        templates /= np.maximum(np.linalg.norm(templates, axis=0, keepdims=True), 1e-12)
        return _matmul(z, templates)
