"""The one patch hf-ada applies to ``datasets`` for AdANNS: :func:`register` (run by ``import hf_ada``).

As soon as ``datasets`` is imported (at once if it already is), it attaches ``add_adanns_index``,
``add_adanns_index_from_external_arrays``, ``save_adanns_index``, ``load_adanns_index`` and
``push_adanns_index_to_hub`` (the functions of those names in :mod:`hf_ada.adanns.dataset`) to
:class:`datasets.Dataset`.
Without the patch, call the same functions with the dataset as first argument::

    from hf_ada.adanns.dataset import add_adanns_index
    add_adanns_index(ds, "embeddings", d_cluster=64, d_search=96)
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..common.patches import Patch, apply_patches

__all__ = ["register", "attach_dataset_methods", "METHOD_NAMES", "PATCHES"]

#: The methods attached to :class:`datasets.Dataset`: the functions of these names in :mod:`hf_ada.adanns.dataset`.
METHOD_NAMES = ("add_adanns_index", "add_adanns_index_from_external_arrays", "save_adanns_index",
                "load_adanns_index", "push_adanns_index_to_hub")


class _MethodOnFirstUse:
    """A class attribute that imports :mod:`hf_ada.adanns.dataset` when first looked up, then replaces itself
    with the real function (so ``help(ds.add_adanns_index)`` shows its signature and docstring).

    The registration hook runs right after ``datasets`` is imported, which may happen *inside* the import of
    :mod:`hf_ada.adanns.dataset` itself (``from hf_ada.adanns.dataset import add_adanns_index`` as the first
    import of ``datasets``): that module cannot be read back yet, so the lookup waits for the first use.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        from . import dataset

        function = getattr(dataset, self._name)
        setattr(owner, self._name, function)
        return function if instance is None else function.__get__(instance, owner)


def attach_dataset_methods(_module: ModuleType | None = None) -> None:
    """Attach the AdANNS methods to :class:`datasets.Dataset` now (idempotent)."""
    import datasets

    for name in METHOD_NAMES:
        if not callable(datasets.Dataset.__dict__.get(name)):  # not attached yet (a real function is callable)
            setattr(datasets.Dataset, name, _MethodOnFirstUse(name))


#: Every change this method makes to other libraries (ARCHITECTURE.md lists the same rows; a test checks it).
PATCHES = tuple(
    Patch("datasets", f"Dataset.{name}", f"`hf_ada.adanns.dataset.{name}` as a `Dataset` method", attach_dataset_methods)
    for name in METHOD_NAMES
)


def register() -> None:
    """Attach the methods as soon as ``datasets`` is imported (now, if it already is)."""
    apply_patches(PATCHES)
