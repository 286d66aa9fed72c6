"""The AdaNPC memory: (feature, label) pairs in a faiss index, with origin and insertion order.

Entries come from the training domains (``origin == SOURCE``) or from test inputs inserted after they
were predicted (``origin == TEST``). Every entry carries a monotonically increasing insertion number, so
"oldest" is well defined across saves. The memory starts empty (no random placeholder entry, unlike the
reference, whose queue starts with one random vector labelled 0).

Eviction when ``capacity`` is reached: the oldest test entries go first; source entries are only evicted
(oldest first) when ``evict_source=True``. If nothing can be evicted, the newest incoming test entries that
fit are kept and the rest are dropped (logged once); incoming *source* entries that do not fit are an error.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import faiss
import numpy as np
from safetensors.numpy import load_file, save

from ..common.files import atomic_file
from .config import METRICS, SCHEMA_VERSION

logger = logging.getLogger(__name__)

__all__ = ["AdaNPCMemory", "SOURCE", "TEST", "MEMORY_NAME"]

SOURCE = 0
TEST = 1
MEMORY_NAME = "memory.safetensors"


class AdaNPCMemory:
    """A faiss-backed memory of float32 features with integer labels.

    Args:
        dim: feature dimension.
        metric: one of :data:`~hf_ada.adanpc.config.METRICS`; with ``"cosine"`` features are stored
            L2-normalised.
        capacity: maximum number of entries (``None``: unbounded).
        evict_source: allow evicting source entries once no test entry is left to evict.
    """

    def __init__(self, dim: int, metric: str = "cosine", capacity: int | None = None, evict_source: bool = False):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"AdaNPCMemory dim must be a positive integer, got {dim!r}")
        if metric not in METRICS:
            raise ValueError(f"AdaNPCMemory metric must be one of {METRICS}, got {metric!r}")
        if capacity is not None and capacity < 1:
            raise ValueError(f"AdaNPCMemory capacity must be None or >= 1, got {capacity!r}")
        self.dim = dim
        self.metric = metric
        self.capacity = capacity
        self.evict_source = evict_source
        self._set(np.zeros((0, dim), dtype=np.float32), np.zeros((0,), dtype=np.int64),
                  np.zeros((0,), dtype=np.uint8), np.zeros((0,), dtype=np.int64))
        self.next_order = 0
        self.info: dict[str, Any] = {}
        self._warned_full = False
        self._index = self._new_index()

    # ------------------------------------------------------------------ storage
    # Entries live in over-allocated buffers (grown by doubling), so inserting a batch costs O(batch),
    # not O(memory). ``features``/``labels``/``origin``/``order`` are read-only views of the filled part.
    def _set(self, features: np.ndarray, labels: np.ndarray, origin: np.ndarray, order: np.ndarray) -> None:
        self._features = np.ascontiguousarray(features, dtype=np.float32)
        self._labels = np.asarray(labels, dtype=np.int64).copy()
        self._origin = np.asarray(origin, dtype=np.uint8).copy()
        self._order = np.asarray(order, dtype=np.int64).copy()
        self._size = int(self._labels.shape[0])

    def _append(self, features: np.ndarray, labels: np.ndarray, origin: np.ndarray, order: np.ndarray) -> None:
        end = self._size + features.shape[0]
        if end > self._labels.shape[0]:
            grown = max(end, 2 * self._labels.shape[0], 1024)
            for name in ("_features", "_labels", "_origin", "_order"):
                old = getattr(self, name)
                new = np.empty((grown,) + old.shape[1:], dtype=old.dtype)
                new[: self._size] = old[: self._size]
                setattr(self, name, new)
        self._features[self._size : end] = features
        self._labels[self._size : end] = labels
        self._origin[self._size : end] = origin
        self._order[self._size : end] = order
        self._size = end

    def _view(self, name: str) -> np.ndarray:
        view = getattr(self, name)[: self._size]
        view.flags.writeable = False
        return view

    @property
    def features(self) -> np.ndarray:
        """``(len, dim)`` float32 features (L2-normalised for cosine), a read-only view."""
        return self._view("_features")

    @property
    def labels(self) -> np.ndarray:
        """``(len,)`` int64 label ids, a read-only view."""
        return self._view("_labels")

    @property
    def origin(self) -> np.ndarray:
        """``(len,)`` uint8 origin flags (:data:`SOURCE` / :data:`TEST`), a read-only view."""
        return self._view("_origin")

    @property
    def order(self) -> np.ndarray:
        """``(len,)`` int64 insertion numbers (larger = newer), a read-only view."""
        return self._view("_order")

    def _keep(self, keep: np.ndarray) -> None:
        self._set(self.features[keep], self.labels[keep], self.origin[keep], self.order[keep])
        self._rebuild_index()

    # ------------------------------------------------------------------ basics
    def _new_index(self) -> faiss.Index:
        return faiss.IndexFlatL2(self.dim) if self.metric == "l2" else faiss.IndexFlatIP(self.dim)

    def _rebuild_index(self) -> None:
        self._index = self._new_index()
        if len(self.features):
            self._index.add(self.features)

    def __len__(self) -> int:
        return self._size

    @property
    def num_source(self) -> int:
        return int((self.origin == SOURCE).sum())

    @property
    def num_test(self) -> int:
        return int((self.origin == TEST).sum())

    def prepare(self, features: Any) -> np.ndarray:
        """Convert ``features`` to a C-contiguous ``(n, dim)`` float32 array (L2-normalised for cosine)."""
        array = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(
                f"features must have shape (n, {self.dim}) to match the memory's feature dim {self.dim}; "
                f"got {array.shape}. The memory and the model's feature layer disagree."
            )
        if not np.isfinite(array).all():
            raise ValueError("features contain NaN or infinite values")
        if self.metric == "cosine":
            norms = np.linalg.norm(array, axis=1, keepdims=True)
            array = np.ascontiguousarray(array / np.maximum(norms, 1e-12), dtype=np.float32)
        return array

    # ------------------------------------------------------------------ writing
    def add(self, features: Any, labels: Any, origin: int = TEST) -> int:
        """Insert entries (applying the capacity rule); return how many were inserted."""
        if origin not in (SOURCE, TEST):
            raise ValueError(f"origin must be SOURCE ({SOURCE}) or TEST ({TEST}), got {origin!r}")
        feats = self.prepare(features)
        labs = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labs.shape[0] != feats.shape[0]:
            raise ValueError(f"got {feats.shape[0]} features but {labs.shape[0]} labels")
        if labs.size and labs.min() < 0:
            raise ValueError(f"labels must be >= 0, got {labs.min()}")
        if feats.shape[0] == 0:
            return 0
        feats, labs = self._make_room(feats, labs, origin)
        n = feats.shape[0]
        if n == 0:
            return 0
        self._append(feats, labs, np.full(n, origin, dtype=np.uint8),
                     np.arange(self.next_order, self.next_order + n, dtype=np.int64))
        self.next_order += n
        self._index.add(feats)
        return n

    def _make_room(self, feats: np.ndarray, labs: np.ndarray, origin: int) -> tuple[np.ndarray, np.ndarray]:
        if self.capacity is None:
            return feats, labs
        excess = len(self) + feats.shape[0] - self.capacity
        if excess <= 0:
            return feats, labs
        candidates = np.flatnonzero(self.origin == TEST)
        if self.evict_source:
            candidates = np.concatenate([candidates, np.flatnonzero(self.origin == SOURCE)])
        # test entries first (oldest first), then, when allowed, source entries (oldest first)
        ranking = np.lexsort((self.order[candidates], self.origin[candidates] == SOURCE))
        evict = candidates[ranking[:excess]]
        if evict.size:
            keep = np.ones(len(self), dtype=bool)
            keep[evict] = False
            self._keep(keep)
        room = self.capacity - len(self)
        if room >= feats.shape[0]:
            return feats, labs
        if origin == SOURCE:
            raise ValueError(
                f"memory capacity {self.capacity} is too small for {feats.shape[0]} more source entries "
                f"({len(self)} kept); raise capacity or set evict_source=True"
            )
        if not self._warned_full:
            logger.warning(
                "AdaNPC memory is full of source entries (capacity %d, evict_source=False): new test entries "
                "are dropped", self.capacity,
            )
            self._warned_full = True
        keep_from = feats.shape[0] - room
        return feats[keep_from:], labs[keep_from:]

    def reset(self) -> None:
        """Forget every test entry; the source entries stay."""
        self._warned_full = False
        self._keep(self.origin == SOURCE)

    def copy(self) -> AdaNPCMemory:
        """An independent copy (arrays and faiss index)."""
        other = AdaNPCMemory(self.dim, self.metric, self.capacity, self.evict_source)
        other._set(self.features.copy(), self.labels, self.origin, self.order)
        other.next_order, other.info = self.next_order, json.loads(json.dumps(self.info))
        other._rebuild_index()
        return other

    # ------------------------------------------------------------------ reading
    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(similarities, labels, positions)`` of the ``min(k, len)`` nearest entries."""
        if len(self) == 0:
            raise ValueError(
                "the AdaNPC memory is empty: build it from labelled training data first "
                "(AdaNPCPredictor.build_memory(dataset) or pipeline(..., memory=dataset))"
            )
        q = self.prepare(queries)
        kk = min(int(k), len(self))
        scores, positions = self._index.search(q, kk)
        similarities = -scores if self.metric == "l2" else scores
        return similarities, self.labels[positions], positions

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, extra_metadata: dict[str, Any] | None = None) -> None:
        """Write the memory as one safetensors file (atomically); metadata holds dim, metric and info."""
        metadata = {
            "schema_version": str(SCHEMA_VERSION),
            "dim": str(self.dim),
            "metric": self.metric,
            "next_order": str(self.next_order),
            "info": json.dumps(self.info, sort_keys=True),
        }
        for key, value in (extra_metadata or {}).items():
            metadata[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        tensors = {
            "features": np.ascontiguousarray(self.features),
            "labels": np.ascontiguousarray(self.labels),
            "origin": np.ascontiguousarray(self.origin),
            "order": np.ascontiguousarray(self.order),
        }
        payload = save(tensors, metadata=metadata)
        with atomic_file(path, "wb") as handle:
            handle.write(payload)

    @classmethod
    def load(
        cls, path: str | os.PathLike, capacity: int | None = None, evict_source: bool = False
    ) -> tuple[AdaNPCMemory, dict[str, str]]:
        """Read a memory written by :meth:`save`; return it and the raw metadata. Checks the file's schema."""
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        for key in ("schema_version", "dim", "metric", "next_order"):
            if key not in metadata:
                raise ValueError(f"{path} is not an hf-ada AdaNPC memory (metadata key {key!r} missing)")
        if metadata["schema_version"] != str(SCHEMA_VERSION):
            raise ValueError(
                f"{path} has memory schema_version {metadata['schema_version']}, this hf-ada reads {SCHEMA_VERSION}"
            )
        tensors = load_file(str(path))
        missing = {"features", "labels", "origin", "order"} - set(tensors)
        if missing:
            raise ValueError(f"{path} lacks tensors {sorted(missing)}")
        memory = cls(int(metadata["dim"]), metadata["metric"], capacity=capacity, evict_source=evict_source)
        n = tensors["labels"].shape[0]
        feats = tensors["features"]
        if feats.shape != (n, memory.dim) or tensors["origin"].shape != (n,) or tensors["order"].shape != (n,):
            raise ValueError(f"{path} is inconsistent: features {feats.shape}, labels ({n},), dim {memory.dim}")
        if not set(np.unique(tensors["origin"]).tolist()) <= {SOURCE, TEST}:
            raise ValueError(f"{path} has origin flags other than SOURCE/TEST")
        memory._set(feats, tensors["labels"], tensors["origin"], tensors["order"])
        memory.next_order = int(metadata["next_order"])
        memory.info = json.loads(metadata.get("info", "{}"))
        memory._rebuild_index()
        return memory, metadata
