"""The AdaNPC memory: (feature, label) pairs in a faiss index, with origin and insertion order.

Entries come from the training domains (``origin == SOURCE``) or from test inputs inserted after they
were predicted (``origin == TEST``). Every entry carries a monotonically increasing insertion number, so
"oldest" is well defined across saves. The memory starts empty (no random placeholder entry, unlike the
reference, whose queue starts with one random vector labelled 0).

Eviction when ``capacity`` is reached: the oldest test entries go first; source entries are only evicted
(oldest first) when ``evict_source=True``. An evicted entry's slot is overwritten in place (arrays and
faiss storage), with FIFO queues naming the oldest entry, so an insertion at capacity costs amortised O(1)
plus O(dim), like one below capacity; ``reset()`` compacts (O(n)). If nothing can be evicted, the newest incoming test entries that
fit are kept and the rest are dropped (logged once); incoming *source* entries that do not fit are an error.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save

from ..common.files import atomic_file, loads_json
from .config import METRICS, SCHEMA_VERSION
from .memory_index import DEFAULT_NPROBE, INDEX_KINDS, FlatMemoryIndex, IVFMemoryIndex, choose_index

logger = logging.getLogger(__name__)

__all__ = ["AdaNPCMemory", "SOURCE", "TEST", "MEMORY_NAME"]

SOURCE = 0
TEST = 1
MEMORY_NAME = "memory.safetensors"
#: the largest insertion number a memory may hold (int64 with room for any number of later insertions)
MAX_ORDER = 2**62


def _check_capacity(capacity: Any) -> None:
    if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1):
        raise ValueError(f"capacity must be None or an integer >= 1, got {capacity!r}")


def integer_labels(labels: Any) -> np.ndarray:
    """``labels`` as a 1-D int64 array; non-integral numbers (1.7), ``None``, booleans and negative ids are
    refused rather than truncated."""
    array = labels if isinstance(labels, np.ndarray) else np.asarray(list(labels), dtype=object)
    array = array.reshape(-1)
    if array.dtype.kind == "O":  # a list: look at every value (None, bool, str...)
        for value in array.tolist():
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"labels must be integer class ids >= 0, got {value!r}")
        array = array.astype(np.float64) if array.size else np.zeros(0, dtype=np.int64)
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            raise ValueError(f"labels must be integer class ids >= 0, got {array[bad][0]!r} (not truncated)")
    elif array.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class ids >= 0, got an array of {array.dtype}")
    out = array.astype(np.int64)
    if out.size and out.min() < 0:
        raise ValueError(f"labels must be integer class ids >= 0, got {out.min()}")
    return out


class AdaNPCMemory:
    """A faiss-backed memory of float32 features with integer labels.

    Args:
        dim: feature dimension.
        metric: one of :data:`~hf_ada.adanpc.config.METRICS`; with ``"cosine"`` features are stored
            L2-normalised.
        capacity: maximum number of entries (``None``: unbounded).
        evict_source: allow evicting source entries once no test entry is left to evict.
    """

    def __init__(self, dim: int, metric: str = "cosine", capacity: int | None = None, evict_source: bool = False,
                 index: str = "auto", nprobe: int | None = None):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"AdaNPCMemory dim must be a positive integer, got {dim!r}")
        if metric not in METRICS:
            raise ValueError(f"AdaNPCMemory metric must be one of {METRICS}, got {metric!r}")
        _check_capacity(capacity)
        self.dim = dim
        self.metric = metric
        self._check_index(index, nprobe)
        self.index_kind = index
        self.nprobe = nprobe
        self.capacity = capacity
        self.evict_source = evict_source
        self._set(np.zeros((0, dim), dtype=np.float32), np.zeros((0,), dtype=np.int64),
                  np.zeros((0,), dtype=np.uint8), np.zeros((0,), dtype=np.int64))
        self.next_order = 0
        self.info: dict[str, Any] = {}
        self._warned_full = False
        self._rebuild_index()

    # ------------------------------------------------------------------ storage
    # Entries live in over-allocated buffers (grown by doubling), so inserting a batch costs O(batch),
    # not O(memory). ``features``/``labels``/``origin``/``order`` are read-only views of the filled part.
    def _set(self, features: np.ndarray, labels: np.ndarray, origin: np.ndarray, order: np.ndarray) -> None:
        self._features = np.ascontiguousarray(features, dtype=np.float32)
        self._labels = np.asarray(labels, dtype=np.int64).copy()
        self._origin = np.asarray(origin, dtype=np.uint8).copy()
        self._order = np.asarray(order, dtype=np.int64).copy()
        self._size = int(self._labels.shape[0])
        self._num_source = int((self._origin == SOURCE).sum())
        self._num_test = self._size - self._num_source

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
    @staticmethod
    def _check_index(index: Any, nprobe: Any) -> None:
        if index not in INDEX_KINDS:
            raise ValueError(f"AdaNPCMemory index must be one of {INDEX_KINDS}, got {index!r}")
        if nprobe is not None and (not isinstance(nprobe, int) or isinstance(nprobe, bool) or nprobe < 1):
            raise ValueError(f"AdaNPCMemory nprobe must be None or an integer >= 1, got {nprobe!r}")

    def set_search(self, index: str = "auto", nprobe: int | None = None) -> None:
        """Choose the search structure (``"auto"``: exact below a size threshold, IVF above; ``"flat"``;
        ``"ivf"``) and the IVF lists scanned per query (``None``: the default); see
        :mod:`hf_ada.adanpc.memory_index`."""
        self._check_index(index, nprobe)
        changed = index != self.index_kind
        self.index_kind, self.nprobe = index, nprobe
        if changed:
            self._rebuild_index()
        elif isinstance(self._index, IVFMemoryIndex):
            self._index.nprobe = nprobe or DEFAULT_NPROBE

    @property
    def search_kind(self) -> str:
        """The structure searched now: ``"flat"`` (exact) or ``"ivf"``."""
        return self._index.kind

    def _build_index(self, centroids: np.ndarray | None = None) -> FlatMemoryIndex | IVFMemoryIndex:
        if choose_index(self.index_kind, len(self)) == "flat":
            return FlatMemoryIndex(self.dim, self.metric, self.features)
        return IVFMemoryIndex(self.dim, self.metric, self.features, centroids, nprobe=self.nprobe or DEFAULT_NPROBE)

    def _rebuild_index(self, centroids: np.ndarray | None = None) -> None:
        """Index and eviction queues from the arrays (O(n): used by load, copy and reset, never per insertion)."""
        self._index = self._build_index(centroids)
        self._rebuild_queues()

    def _grow_index(self) -> None:
        """After an append: switch to IVF past the size threshold, fit it again after enough growth."""
        fitted = self._index.fitted_on if isinstance(self._index, IVFMemoryIndex) else None
        choice = choose_index(self.index_kind, len(self), fitted)
        if choice == "refit" or (choice == "ivf" and fitted is None):
            logger.info("AdaNPC memory: fitting an IVF index over %d entries", len(self))
            self._index = self._build_index()

    def _rebuild_queues(self) -> None:
        # FIFO queues of (order, slot), oldest first. A slot that is overwritten later leaves a stale pair
        # behind; stale pairs are skipped when popped (a pair is live iff the slot still holds that order),
        # so every insertion and eviction costs amortised O(1).
        self._queues: dict[Any, deque] = {SOURCE: deque(), TEST: deque()}
        self._class_queues: dict[int, deque] = {}
        self._test_per_class: dict[int, int] = {}
        self._source_per_class: dict[int, int] = {}
        for slot in np.argsort(self.order, kind="stable").tolist():
            self._enqueue(slot)
            counts = self._test_per_class if self._origin[slot] == TEST else self._source_per_class
            label = int(self._labels[slot])
            counts[label] = counts.get(label, 0) + 1

    def _enqueue(self, slot: int) -> None:
        pair = (int(self._order[slot]), slot)
        origin = int(self._origin[slot])
        self._queues[origin].append(pair)
        if origin == TEST:
            self._class_queues.setdefault(int(self._labels[slot]), deque()).append(pair)

    def _live(self, pair: tuple[int, int]) -> bool:
        order, slot = pair
        return slot < self._size and int(self._order[slot]) == order

    def _oldest(self, queue: deque) -> int | None:
        """Slot of the oldest live entry of ``queue`` (popping stale pairs), or ``None``."""
        while queue and not self._live(queue[0]):
            queue.popleft()
        return queue[0][1] if queue else None

    def _victim(self, label: int | None = None) -> int | None:
        """The slot to overwrite: the oldest test entry (of ``label`` if given), else (``evict_source``) the
        oldest source entry."""
        if label is not None:
            return self._oldest(self._class_queues.get(label, deque()))
        slot = self._oldest(self._queues[TEST])
        if slot is None and self.evict_source:
            slot = self._oldest(self._queues[SOURCE])
        return slot

    def _forget(self, slot: int) -> None:
        """Bookkeeping for the entry in ``slot`` that is about to be overwritten."""
        label = int(self._labels[slot])
        if int(self._origin[slot]) == TEST:
            self._test_per_class[label] -= 1
            self._num_test -= 1
        else:
            self._source_per_class[label] -= 1
            self._num_source -= 1

    def _overwrite(self, slot: int, feature: np.ndarray, label: int, origin: int, order: int) -> None:
        """Replace the entry in ``slot`` in place, in the arrays and in faiss's own storage (O(dim))."""
        self._features[slot] = feature
        self._labels[slot], self._origin[slot], self._order[slot] = label, origin, order

    def _count(self, origin: int, label: int) -> None:
        if origin == TEST:
            self._num_test += 1
            self._test_per_class[label] = self._test_per_class.get(label, 0) + 1
        else:
            self._num_source += 1
            self._source_per_class[label] = self._source_per_class.get(label, 0) + 1

    def __len__(self) -> int:
        return self._size

    def set_limits(self, capacity: int | None, evict_source: bool) -> None:
        """Apply a predictor's ``capacity`` / ``evict_source``. A memory holding more entries than
        ``capacity`` is refused (never trimmed: trimming would silently drop saved entries)."""
        _check_capacity(capacity)
        if capacity is not None and len(self) > capacity:
            raise ValueError(
                f"the memory holds {len(self)} entries, more than capacity={capacity}; raise capacity (or None) "
                "or build a smaller memory"
            )
        self.capacity, self.evict_source = capacity, bool(evict_source)

    def add_source_info(self, record: dict[str, Any]) -> None:
        """Record where source entries came from (shown on the model card)."""
        self.info.setdefault("sources", []).append(dict(record))

    @property
    def num_source(self) -> int:
        return self._num_source

    @property
    def num_test(self) -> int:
        return self._num_test

    def test_count(self, label: int) -> int:
        """Number of test entries labelled ``label``."""
        return self._test_per_class.get(int(label), 0)

    def source_counts(self) -> dict[int, int]:
        """Number of source entries per label (a new dict)."""
        return dict(self._source_per_class)

    def prepare(self, features: Any) -> np.ndarray:
        """Convert ``features`` to a C-contiguous ``(n, dim)`` float32 array (L2-normalised for cosine)."""
        try:
            array = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise ValueError(f"features must be a numeric (n, {self.dim}) array, got {type(features).__name__} "
                             f"({err})") from err
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
    def add(self, features: Any, labels: Any, origin: int = TEST, class_quota: dict[int, int] | None = None) -> int:
        """Insert entries in order (applying the capacity rule); return how many were inserted.

        ``class_quota`` (test entries only) caps the number of test entries per label: a new entry of a
        label at its quota replaces the oldest test entry of that label. Each insertion and eviction costs
        amortised O(1) (plus O(dim) to write the vector): an evicted entry's slot is overwritten in place,
        in faiss's storage too, so the index is never rebuilt.
        """
        if origin not in (SOURCE, TEST):
            raise ValueError(f"origin must be SOURCE ({SOURCE}) or TEST ({TEST}), got {origin!r}")
        feats = self.prepare(features)
        labs = integer_labels(labels)
        if labs.shape[0] != feats.shape[0]:
            raise ValueError(f"got {feats.shape[0]} features but {labs.shape[0]} labels")
        if feats.shape[0] == 0:
            return 0
        feats, labs = self._fit(feats, labs, origin)
        n = feats.shape[0]
        no_eviction = self.capacity is None or self._size + n <= self.capacity
        if no_eviction and (origin == SOURCE or class_quota is None):  # the common case, vectorised
            first = self._size
            self._append(feats, labs, np.full(n, origin, dtype=np.uint8),
                         np.arange(self.next_order, self.next_order + n, dtype=np.int64))
            self.next_order += n
            self._index.append(np.arange(first, first + n), feats)
            self._grow_index()
            for slot, label in zip(range(first, first + n), labs.tolist()):
                self._count(origin, label)
                self._enqueue(slot)
            return n
        # victims are entries older than this batch: the batch's own entries join the queues at its end
        inserted, fresh, appended, replaced = 0, [], [], []
        for feature, label in zip(feats, labs.tolist()):
            slot = None
            if origin == TEST and class_quota is not None and self.test_count(label) >= class_quota.get(label, 0):
                slot = self._victim(label)
                if slot is None:  # nothing older of this label to replace: not inserted
                    continue
            elif self.capacity is not None and self._size >= self.capacity:
                slot = self._victim()
            order = self.next_order
            self.next_order += 1
            if slot is None:
                slot = self._size
                self._append(feature[None], np.array([label]), np.array([origin], dtype=np.uint8), np.array([order]))
                appended.append(slot)
            else:
                self._forget(slot)
                self._overwrite(slot, feature, label, origin, order)
                replaced.append(slot)
            self._count(origin, label)
            fresh.append(slot)
            inserted += 1
        for slot in fresh:
            self._enqueue(slot)
        if replaced:  # a slot is overwritten at most once per batch (victims are older than the batch)
            slots = np.asarray(replaced, dtype=np.int64)
            self._index.replace(slots, self._features[slots])
        if appended:
            slots = np.asarray(appended, dtype=np.int64)
            self._index.append(slots, self._features[slots])
            self._grow_index()
        return inserted

    def _fit(self, feats: np.ndarray, labs: np.ndarray, origin: int) -> tuple[np.ndarray, np.ndarray]:
        """Drop the entries of a batch that cannot fit (before anything is changed)."""
        if self.capacity is None:
            return feats, labs
        evictable = self._num_test + (self._num_source if self.evict_source else 0)
        room = self.capacity - self._size + evictable
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
        keep_from = feats.shape[0] - max(room, 0)
        return feats[keep_from:], labs[keep_from:]

    def reset(self) -> None:
        """Forget every test entry; the source entries stay."""
        self._warned_full = False
        self._keep(self.origin == SOURCE)

    def copy(self) -> AdaNPCMemory:
        """An independent copy (arrays and faiss index)."""
        other = AdaNPCMemory(self.dim, self.metric, self.capacity, self.evict_source, self.index_kind, self.nprobe)
        other._set(self.features.copy(), self.labels, self.origin, self.order)
        other.next_order, other.info = self.next_order, json.loads(json.dumps(self.info))
        other._rebuild_index(self._index.state().get("ivf_centroids"))
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
        missing = positions < 0
        if missing.any():  # IVF: fewer than k entries in the scanned lists; such neighbours get weight 0
            if missing.all(axis=1).any():
                rows = np.flatnonzero(missing.all(axis=1))
                exact = FlatMemoryIndex(self.dim, self.metric, self.features).search(q[rows], kk)
                scores[rows], positions[rows] = exact
                similarities[rows] = -exact[0] if self.metric == "l2" else exact[0]
                missing = positions < 0
            similarities = np.where(missing, -np.inf, similarities)
            positions = np.where(missing, 0, positions)
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
            **self._index.state(),  # the IVF's centroids, so a load finds the same lists
        }
        payload = save(tensors, metadata=metadata)
        with atomic_file(path, "wb") as handle:
            handle.write(payload)

    @classmethod
    def load(
        cls, path: str | os.PathLike, capacity: int | None = None, evict_source: bool = False,
        index: str = "auto", nprobe: int | None = None,
    ) -> tuple[AdaNPCMemory, dict[str, str]]:
        """Read a memory written by :meth:`save`; return it and the raw metadata. Checks the file's schema."""
        from safetensors import safe_open

        from ..common.artifact import ArtifactError

        try:
            with safe_open(str(path), framework="numpy") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
        except Exception as err:  # noqa: BLE001  (safetensors raises several types for corrupt files)
            raise ArtifactError(f"{path} is not a readable safetensors file ({err})") from err
        for key in ("schema_version", "dim", "metric", "next_order"):
            if key not in metadata:
                raise ArtifactError(f"{path} is not an hf-ada AdaNPC memory (metadata key {key!r} missing)")
        if metadata["schema_version"] != str(SCHEMA_VERSION):
            raise ArtifactError(
                f"{path} has memory schema_version {metadata['schema_version']}, this hf-ada reads {SCHEMA_VERSION}"
            )
        missing = {"features", "labels", "origin", "order"} - set(tensors)
        if missing:
            raise ArtifactError(f"{path} lacks tensors {sorted(missing)}")
        if metadata["metric"] not in METRICS or not metadata["dim"].isdigit() or int(metadata["dim"]) < 1:
            raise ArtifactError(f"{path}: metadata dim/metric invalid ({metadata['dim']!r}, {metadata['metric']!r})")
        memory = cls(int(metadata["dim"]), metadata["metric"], index=index, nprobe=nprobe)
        n = tensors["labels"].shape[0]
        feats = tensors["features"]
        if feats.shape != (n, memory.dim) or tensors["origin"].shape != (n,) or tensors["order"].shape != (n,):
            raise ArtifactError(f"{path} is inconsistent: features {feats.shape}, labels ({n},), dim {memory.dim}")
        if not np.isfinite(feats).all():
            raise ArtifactError(f"{path}: stored features contain NaN or infinite values")
        if n and int(tensors["labels"].min()) < 0:
            raise ArtifactError(f"{path}: negative label id {int(tensors['labels'].min())}")
        if not set(np.unique(tensors["origin"]).tolist()) <= {SOURCE, TEST}:
            raise ArtifactError(f"{path} has origin flags other than SOURCE/TEST")
        try:
            next_order = int(metadata["next_order"])
            info = loads_json(metadata.get("info", "{}"), what=f"{path} metadata 'info'")
        except (ValueError, RecursionError) as err:
            raise ArtifactError(f"{path}: unreadable metadata ({err})") from err
        if not 0 <= next_order <= MAX_ORDER or not isinstance(info, dict):
            raise ArtifactError(f"{path}: metadata next_order {metadata['next_order']!r} must be an integer in "
                                f"[0, {MAX_ORDER}] and info a JSON object")
        order = tensors["order"]
        if n and (len(np.unique(order)) != n or int(order.min()) < 0 or int(order.max()) >= next_order):
            raise ArtifactError(f"{path}: insertion numbers are not unique values below next_order {next_order}")
        memory._set(feats, tensors["labels"], tensors["origin"], order)
        memory.next_order = next_order
        memory.info = info
        try:
            memory._rebuild_index(tensors.get("ivf_centroids"))
        except ValueError as err:
            raise ArtifactError(f"{path}: {err}") from err
        try:
            memory.set_limits(capacity, evict_source)
        except ValueError as err:
            raise ArtifactError(f"{path}: {err}") from err
        return memory, metadata
