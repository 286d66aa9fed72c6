"""Small helpers the AdANNS test files share (not a test file itself): :func:`unit`, the row normalisation the
tests' brute-force references use for cosine similarity."""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Each row of ``x`` divided by its L2 norm."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)
