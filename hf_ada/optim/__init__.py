"""Adan for PyTorch and the Trainer: :class:`Adan` (``torch.optim``-style), ``--optim adan``
(:mod:`hf_ada.optim.integration`, registered by ``import hf_ada``) and its model-card section."""

from .adan import Adan, adan

__all__ = ["Adan", "adan"]
