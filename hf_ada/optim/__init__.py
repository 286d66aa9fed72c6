"""Optimizers: :class:`Adan` and its Trainer registration."""

from .adan import Adan, adan

__all__ = ["Adan", "adan"]
