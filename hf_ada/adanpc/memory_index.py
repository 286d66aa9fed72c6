"""The search structures behind :class:`~hf_ada.adanpc.memory.AdaNPCMemory`: exact (faiss flat) or IVF-Flat.

Both address entries by their *slot* in the memory's arrays and support the memory's life: append, replace a
slot in place (eviction), search, rebuild. The IVF index keeps a hashtable from slot to inverted-list position
(faiss ``DirectMap.Hashtable``), so replacing a slot is a removal plus an insertion, O(1) each. Its similarities
are computed on the stored float vectors, so the vote weights of the neighbours it finds are exact; only which
neighbours are found is approximate (``nprobe`` of ``nlist`` lists are scanned).

``index="auto"`` (:func:`choose_index`) keeps the exact index below :data:`AUTO_IVF_MIN_ENTRIES` entries and
switches to IVF above it; the IVF is fitted again whenever the memory has grown ``REFIT_GROWTH`` times since
its last fit (amortised O(1) per insertion). See ``benchmarks/results/adanpc_memory.md`` for the measurements
behind the threshold and the default ``nprobe``.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from .config import MEMORY_INDEXES as INDEX_KINDS  # defined once, with the config field

__all__ = ["INDEX_KINDS", "AUTO_IVF_MIN_ENTRIES", "FlatMemoryIndex", "IVFMemoryIndex", "choose_index",
           "default_nlist"]

#: below this many entries ``index="auto"`` searches exactly (measured: benchmarks/results/adanpc_memory.md)
AUTO_IVF_MIN_ENTRIES = 50_000
#: the IVF is fitted again once the memory holds this many times the entries it was fitted on
REFIT_GROWTH = 4
DEFAULT_NPROBE = 16
TRAIN_POINTS_PER_LIST = 40


def default_nlist(n: int) -> int:
    """Inverted lists for ``n`` entries: about ``sqrt(n)``, at least 16 and at most 4096."""
    return int(min(4096, max(16, round(math.sqrt(max(n, 1))))))


def _faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


class FlatMemoryIndex:
    """Exact search over every entry (faiss ``IndexFlatIP`` / ``IndexFlatL2``); slot ``i`` is row ``i``."""

    kind = "flat"

    def __init__(self, dim: int, metric: str, features: np.ndarray):
        self.dim = dim
        self.metric = metric
        self._index = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
        if len(features):
            self._index.add(features)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def append(self, slots: np.ndarray, features: np.ndarray) -> None:
        if len(slots) and int(slots[0]) != self._index.ntotal:
            raise RuntimeError("flat memory index: appended slots must follow the last one")
        self._index.add(features)

    def replace(self, slots: np.ndarray, features: np.ndarray) -> None:
        """Overwrite the vectors of ``slots`` in faiss's own storage (O(dim) each)."""
        stored = faiss.rev_swig_ptr(self._index.get_xb(), self._index.ntotal * self.dim)
        for slot, feature in zip(slots.tolist(), features):
            stored[slot * self.dim : (slot + 1) * self.dim] = feature

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, slots)``: faiss scores (inner products or squared distances) of the ``k`` nearest."""
        return self._index.search(queries, k)

    def state(self) -> dict[str, np.ndarray]:
        return {}


class IVFMemoryIndex:
    """IVF-Flat over the entries (ids = slots), with a slot hashtable for O(1) replacement.

    Args:
        dim, metric: as the memory's.
        features: ``(n, dim)`` entries, slot ``i`` = row ``i``.
        centroids: ``(nlist, dim)`` coarse centroids to reuse (a copy or a load); ``None`` fits them by
            k-means on (a sample of) ``features``.
        nprobe: lists scanned per query.
    """

    kind = "ivf"

    def __init__(self, dim: int, metric: str, features: np.ndarray, centroids: np.ndarray | None = None,
                 nprobe: int = DEFAULT_NPROBE, seed: int = 0):
        self.dim = dim
        self.metric = metric
        if centroids is None:
            nlist = default_nlist(len(features))
            if len(features) < nlist:
                raise ValueError(f"an IVF memory index needs at least {nlist} entries to fit, got {len(features)}")
            sample = features
            limit = TRAIN_POINTS_PER_LIST * nlist
            if len(features) > limit:
                sample = features[np.random.default_rng(seed).choice(len(features), limit, replace=False)]
            kmeans = faiss.Kmeans(dim, nlist, niter=10, seed=seed, spherical=metric == "cosine",
                                  max_points_per_centroid=TRAIN_POINTS_PER_LIST)
            kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
            centroids = kmeans.centroids
        centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != dim or not len(centroids) or not np.isfinite(centroids).all():
            raise ValueError(f"IVF centroids must be a finite (nlist, {dim}) array, got shape {centroids.shape}")
        self.fitted_on = len(features)
        self.centroids = centroids
        quantizer = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
        quantizer.add(centroids)
        self._quantizer = quantizer  # kept alive: the IVF index only holds a pointer to it
        self._index = faiss.IndexIVFFlat(quantizer, dim, len(centroids), _faiss_metric(metric))
        self._index.is_trained = True
        self._index.set_direct_map_type(faiss.DirectMap.Hashtable)
        self.nprobe = nprobe
        if len(features):
            self._index.add_with_ids(features, np.arange(len(features), dtype=np.int64))

    @property
    def nprobe(self) -> int:
        return int(self._index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._index.nprobe = int(min(max(1, value), self._index.nlist))

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def append(self, slots: np.ndarray, features: np.ndarray) -> None:
        self._index.add_with_ids(features, np.ascontiguousarray(slots, dtype=np.int64))

    def replace(self, slots: np.ndarray, features: np.ndarray) -> None:
        """Remove the old vectors of ``slots`` and insert the new ones (hashtable lookups, O(1) each)."""
        ids = np.ascontiguousarray(slots, dtype=np.int64)
        self._index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))
        self._index.add_with_ids(features, ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, slots)`` of the ``k`` nearest among the scanned lists; missing neighbours (fewer than
        ``k`` entries in those lists) have slot ``-1``."""
        return self._index.search(queries, k)

    def state(self) -> dict[str, np.ndarray]:
        return {"ivf_centroids": self.centroids}


def choose_index(kind: str, n: int, growth_from: int | None = None) -> str:
    """``"flat"`` or ``"ivf"`` for a memory of ``n`` entries under ``kind`` (one of :data:`INDEX_KINDS`);
    ``growth_from``: the entries the current IVF was fitted on (``"refit"`` when it is time to fit again)."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"memory index must be one of {INDEX_KINDS}, got {kind!r}")
    if kind == "flat" or (kind == "auto" and n < AUTO_IVF_MIN_ENTRIES) or n < 16:
        return "flat"
    if growth_from is not None and n >= REFIT_GROWTH * max(growth_from, 1):
        return "refit"
    return "ivf"
