"""The AdaNPC prediction rule: a similarity-weighted, temperature-scaled vote of the k nearest memories.

For a test feature ``z`` with neighbours ``(m_j, y_j)``, ``j = 1..k`` (Zhang et al., ICML 2023, eq. 3 and
``MomentumQueue.forward`` in the reference code)::

    w_j    = exp(sim(z, m_j) / T) / sum_i exp(sim(z, m_i) / T)
    p(c|z) = sum_j w_j * [y_j == c]

The reference then adds ``1e-5`` and clamps at 1; hf-ada returns the exact probability vector (it sums
to 1), which only differs from the reference by that constant.
"""

from __future__ import annotations

import numpy as np

__all__ = ["knn_vote", "softmax"]


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(batch, classes)`` scores (max-shifted)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def knn_vote(similarities: np.ndarray, labels: np.ndarray, num_classes: int, temperature: float) -> np.ndarray:
    """Vote of the neighbours.

    Args:
        similarities: ``(batch, k)`` similarities of each query to its neighbours.
        labels: ``(batch, k)`` integer labels of those neighbours, in ``[0, num_classes)``.
        num_classes: size of the returned probability vectors.
        temperature: ``T > 0``.

    Returns:
        ``(batch, num_classes)`` float32 probabilities.
    """
    similarities = np.asarray(similarities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if similarities.shape != labels.shape or similarities.ndim != 2:
        raise ValueError(
            f"similarities and labels must both be (batch, k); got {similarities.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"neighbour labels must lie in [0, {num_classes}); got range [{labels.min()}, {labels.max()}]")
    weights = softmax(similarities / float(temperature))
    probs = np.zeros((labels.shape[0], num_classes), dtype=np.float64)
    np.add.at(probs, (np.arange(labels.shape[0])[:, None], labels), weights)
    return probs.astype(np.float32)
