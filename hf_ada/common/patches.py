"""Patches of third-party classes, declared as data.

Each method's ``integration.py`` lists what it changes in other libraries as a tuple of :class:`Patch`
rows, and its ``register()`` is ``apply_patches(PATCHES)``. The table is the single place a reader (and
``tests/test_architecture.py``, which compares it with ARCHITECTURE.md) learns what hf-ada patches::

    PATCHES = (
        Patch("transformers.trainer", "Trainer.train", "writes the Adan card when training ends", _hook_train),
    )

    def register() -> None:
        apply_patches(PATCHES)

A patch is applied right after its module is imported (at once if it already is), so registering costs
nothing until the patched library is used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .lazy import call_when_imported

__all__ = ["Patch", "apply_patches", "wrap_method", "is_wrapped"]

_MARK = "__hf_ada_wrapped__"


@dataclass(frozen=True)
class Patch:
    """One change hf-ada makes to another library.

    Args:
        module: the module whose import triggers the patch (``"transformers.trainer"``).
        target: what is changed, relative to ``module`` (``"Trainer.train"``).
        does: one line saying what the patch adds, for ARCHITECTURE.md.
        apply: ``apply(module)`` makes the change; it must be idempotent.
    """

    module: str
    target: str
    does: str
    apply: Callable[[ModuleType], None]

    @property
    def qualified_target(self) -> str:
        """``module.target``, the name ARCHITECTURE.md lists."""
        return f"{self.module}.{self.target}"


def apply_patches(patches: Iterable[Patch]) -> None:
    """Apply each patch as soon as its module is imported (now, if it already is)."""
    for patch in patches:
        call_when_imported(patch.module, patch.apply)


def is_wrapped(function: Any) -> bool:
    """Whether ``function`` is a wrapper made by :func:`wrap_method`."""
    return bool(getattr(function, _MARK, False))


def wrap_method(owner: type, name: str, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> bool:
    """Replace ``owner.name`` with ``make_wrapper(original)``, once.

    The wrapper is marked, so a second call (a re-registration, a second hook firing) leaves it alone.
    Only an attribute defined on ``owner`` itself is wrapped; returns whether anything was changed.
    """
    original = vars(owner).get(name)
    if original is None or is_wrapped(original):
        return False
    wrapper = functools.wraps(original)(make_wrapper(original))
    setattr(wrapper, _MARK, True)
    setattr(owner, name, wrapper)
    return True
