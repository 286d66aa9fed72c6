"""The one patch hf-ada applies to ``datasets`` for AdANNS: :func:`register` (run by ``import hf_ada``).

As soon as ``datasets`` is imported (at once if it already is), it attaches ``add_adanns_index``, ``add_adanns_index_from_external_arrays``, ``save_adanns_index``,
``load_adanns_index`` and ``push_adanns_index_to_hub`` (:data:`hf_ada.adanns.dataset.DATASET_METHODS`) to
:class:`datasets.Dataset`. Without the patch, call the same functions with the dataset as first argument::

    from hf_ada.adanns.dataset import add_adanns_index
    add_adanns_index(ds, "embeddings", d_cluster=64, d_search=96)
"""

from __future__ import annotations

from types import ModuleType

from ..common.lazy import call_when_imported

__all__ = ["register", "attach_dataset_methods"]


def attach_dataset_methods(_module: ModuleType | None = None) -> None:
    """Attach the AdANNS methods to :class:`datasets.Dataset` now (idempotent)."""
    import datasets

    from .dataset import DATASET_METHODS

    for name, method in DATASET_METHODS.items():
        setattr(datasets.Dataset, name, method)


def register() -> None:
    """Attach the methods as soon as ``datasets`` is imported (now, if it already is)."""
    call_when_imported("datasets", attach_dataset_methods)
