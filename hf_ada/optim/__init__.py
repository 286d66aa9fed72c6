"""Adan for PyTorch and the Trainer: :class:`Adan` (``torch.optim``-style), ``--optim adan``
(:mod:`hf_ada.optim.integration`, registered by ``import hf_ada``), its model-card section, and the AdamW ->
Adan settings translation (:func:`adan_from_adamw`, ``--optim_args from_adamw=true``)."""

from .adan import NONFINITE_POLICIES, Adan, adan
from .optim_args import AdanFromAdamW, adan_from_adamw

__all__ = ["Adan", "adan", "adan_from_adamw", "AdanFromAdamW", "NONFINITE_POLICIES"]
