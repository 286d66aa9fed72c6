"""The guard: who answers a batch, which predictions AdaNPC inserts, and when it goes back to its source memory.

All signals are label-free and each is a setting of :class:`~hf_ada.adanpc.config.AdaNPCConfig`:

* **reach gate** (``reach_quantile``, on by default): a batch whose median input is farther from its nearest
  memory entry than all but ``reach_quantile`` of the training entries are from theirs
  (:func:`calibrate_reach`, :func:`within_reach`) is out of reach, an abrupt jump: T3A answers it and nothing
  of it is inserted. Within reach (a gradual drift lands near entries inserted just before) the vote answers.
* **confident insertion** (``insert="confident"``): only votes at least as confident as the
  ``confidence_quantile`` quantile of the source's leave-one-out votes (:func:`calibrate_threshold`).
* **agreement** (``agreement``): only where the vote and the model's head predict the same class.
* **class balance** (``class_balance``): a class holds at most as many test entries as source entries.
* **collapse monitor** (``collapse_window``, ``collapse_ratio``): when the entropy of the vote's
  predicted-class histogram falls below ``collapse_ratio`` x the head's, the test entries are forgotten and
  the head answers until :meth:`~hf_ada.adanpc.AdaNPCPredictor.reset`.

:class:`GuardState` is what the guard remembers between batches; only its methods change it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from .vote import knn_vote

__all__ = ["GuardState", "calibrate_reach", "calibrate_threshold", "histogram_entropy", "insertion_mask", "within_reach"]

CALIBRATION_SAMPLES = 2048


def _source_sample(memory: Any, max_samples: int) -> tuple[Any, np.ndarray]:
    """A memory of the source entries alone (exact search, oldest first) and the positions of at most
    ``max_samples`` of them, evenly spaced, that take part in a leave-one-out calibration; ``(None, ...)``
    with fewer than two source entries."""
    from .memory import SOURCE, AdaNPCMemory

    slots = np.flatnonzero(memory.origin == SOURCE)
    if slots.size < 2:
        return None, np.zeros(0, dtype=np.int64)
    slots = slots[np.argsort(memory.order[slots], kind="stable")]
    source = AdaNPCMemory(memory.dim, memory.metric, index="flat")  # neighbours among the source entries only
    source.add(memory.features[slots], memory.labels[slots], origin=SOURCE)
    queries = np.arange(slots.size)
    if slots.size > max_samples:
        queries = np.linspace(0, slots.size - 1, max_samples).round().astype(np.int64)
    return source, queries


def calibrate_threshold(memory: Any, k: int, temperature: float, num_classes: int, quantile: float,
                        max_samples: int = CALIBRATION_SAMPLES) -> float:
    """The ``quantile`` of the leave-one-out vote confidence (max probability) over the source entries.

    Each source entry votes with its ``k`` nearest *other source* entries (itself and test entries left
    out). At most ``max_samples`` entries vote (evenly spaced by insertion order), so the cost stays bounded.
    Returns 0.0 for a memory with fewer than two source entries.
    """
    source, queries = _source_sample(memory, max_samples)
    if source is None:
        return 0.0
    kk = min(k + 1, len(source))
    sims, labels, positions = source.search(source.features[queries], kk)
    own = positions == queries[:, None]
    # drop the entry itself; where it is absent (exact ties), drop the last neighbour instead
    drop = np.where(own.any(axis=1), own.argmax(axis=1), kk - 1)
    keep = np.ones_like(own)
    keep[np.arange(len(queries)), drop] = False
    width = kk - 1
    sims = sims[keep].reshape(len(queries), width)
    labels = labels[keep].reshape(len(queries), width)
    confidence = knn_vote(sims, labels, num_classes, temperature).max(axis=1)
    return float(np.quantile(confidence, quantile))


def calibrate_reach(memory: Any, quantile: float, max_samples: int = CALIBRATION_SAMPLES) -> float | None:
    """The similarity a test input must have to its nearest memory entry to lie *within the memory's reach*:
    the ``quantile`` quantile of the leave-one-out nearest-neighbour similarities of the source entries
    (each source entry to its nearest *other* source entry; at most ``max_samples`` of them, evenly spaced).
    With ``quantile=0.05``, 95% of the training entries are at least this close to another training entry.
    Returns ``None`` (everything within reach) for a memory with fewer than two source entries."""
    source, queries = _source_sample(memory, max_samples)
    if source is None:
        return None
    sims, _, positions = source.search(source.features[queries], 2)
    own = positions[:, 0] == queries
    nearest_other = np.where(own, sims[:, 1], sims[:, 0])  # exact duplicates: the twin is the neighbour
    return float(np.quantile(nearest_other, quantile))


def within_reach(nearest_similarity: np.ndarray, reach: float | None) -> bool:
    """Whether a batch lies within the memory's reach: at least half of its inputs are at least ``reach``
    similar to their nearest memory entry (the batch's median input is as close as a training entry);
    ``reach=None``: always."""
    if reach is None:
        return True
    return bool(np.mean(np.asarray(nearest_similarity) >= reach) >= 0.5)


def insertion_mask(probs: np.ndarray, head_predicted: np.ndarray | None, threshold: float | None,
                   agreement: bool) -> np.ndarray:
    """Which samples of a batch may be inserted: confidence >= ``threshold`` (if given) and, with
    ``agreement``, vote argmax == head argmax (when the head's predictions are known)."""
    keep = np.ones(len(probs), dtype=bool)
    if threshold is not None:
        keep &= probs.max(axis=1) >= threshold
    if agreement and head_predicted is not None:
        keep &= probs.argmax(axis=1) == head_predicted
    return keep


def histogram_entropy(predicted: Any, num_classes: int) -> float:
    """Entropy (nats) of the histogram of predicted class ids."""
    counts = np.bincount(np.asarray(list(predicted), dtype=np.int64), minlength=num_classes).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


class GuardState:
    """What the guard remembers between batches (saved with the predictor).

    Attributes:
        threshold: the calibrated confidence threshold (``None`` until calibrated).
        vote_window / head_window: the last ``window`` predicted class ids of the vote and of the head.
        seen: inputs predicted since the last reset (for ``reset_every``).
        stepped_in: the monitor detected a collapse; the head answers until ``reset()``.
        collapses: how many times the monitor reset the memory; inserted / rejected: insertion counts.
        reach: the calibrated reach similarity (``None`` until calibrated); answered_vote / answered_t3a:
            inputs answered within the memory's reach (vote) and out of it (T3A).
    """

    def __init__(self, window: int | None = None):
        self.threshold: float | None = None
        self.window = window
        self.vote_window: deque[int] = deque(maxlen=window)
        self.head_window: deque[int] = deque(maxlen=window)
        self.seen = 0
        self.stepped_in = False
        self.collapses = 0
        self.inserted = 0
        self.rejected = 0
        self.reach: float | None = None
        self.answered_vote = 0
        self.answered_t3a = 0

    def reset(self) -> None:
        """Back to the start of a stream: the window, the input count and a stepped-in monitor are cleared
        (the calibrated threshold and the counters stay)."""
        self.clear_window()
        self.seen = 0
        self.stepped_in = False

    def recalibrate(self) -> None:
        """Forget the calibrated threshold and reach (the source memory changed); computed again at next use."""
        self.threshold = None
        self.reach = None

    def set_threshold(self, value: float) -> None:
        """Store the threshold calibrated on the source memory."""
        self.threshold = float(value)

    def set_reach(self, value: float) -> None:
        """Store the reach similarity calibrated on the source memory (:func:`calibrate_reach`)."""
        self.reach = float(value)

    def route(self, n: int, by_vote: bool) -> None:
        """Record that ``n`` inputs were answered by the vote (within reach) or by T3A (out of reach)."""
        if by_vote:
            self.answered_vote += int(n)
        else:
            self.answered_t3a += int(n)

    def count(self, added: int, rejected: int, seen: int = 0) -> None:
        """Record ``added`` inserted and ``rejected`` refused test inputs, and ``seen`` predicted ones."""
        self.inserted += int(added)
        self.rejected += int(rejected)
        self.seen += int(seen)

    def step_in(self) -> None:
        """The monitor detected a collapse: the head answers until :meth:`reset`."""
        self.clear_window()
        self.stepped_in = True
        self.collapses += 1

    def observe(self, vote_predicted: np.ndarray, head_predicted: np.ndarray | None) -> None:
        if self.window is None or head_predicted is None:
            return
        self.vote_window.extend(int(x) for x in vote_predicted)
        self.head_window.extend(int(x) for x in head_predicted)

    def collapsed(self, num_classes: int, ratio: float) -> bool:
        """Whether the window is full and the vote's predicted-class entropy < ``ratio`` x the head's."""
        if self.window is None or len(self.vote_window) < self.window:
            return False
        head = histogram_entropy(self.head_window, num_classes)
        return histogram_entropy(self.vote_window, num_classes) < ratio * head

    def clear_window(self) -> None:
        self.vote_window.clear()
        self.head_window.clear()

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "vote_window": list(self.vote_window),
                "head_window": list(self.head_window), "seen": self.seen, "stepped_in": self.stepped_in,
                "collapses": self.collapses,
                "inserted": self.inserted, "rejected": self.rejected, "reach": self.reach,
                "answered_vote": self.answered_vote, "answered_t3a": self.answered_t3a}

    @classmethod
    def from_dict(cls, payload: dict[str, Any], window: int | None, num_classes: int) -> GuardState:
        """Inverse of :meth:`to_dict`; refuses values a saved predictor cannot hold."""
        state = cls(window)
        if not isinstance(payload, dict):
            raise ValueError(f"guard state must be a JSON object, got {type(payload).__name__}")
        threshold = payload.get("threshold")
        if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"guard state threshold must be null or in [0, 1], got {threshold!r}")
        state.threshold = None if threshold is None else float(threshold)
        reach = payload.get("reach")
        if reach is not None and (not isinstance(reach, (int, float)) or isinstance(reach, bool)
                                  or not np.isfinite(reach)):
            raise ValueError(f"guard state reach must be null or a number, got {reach!r}")
        state.reach = None if reach is None else float(reach)
        for name in ("vote_window", "head_window"):
            values = payload.get(name, [])
            if not isinstance(values, list) or any(
                not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < num_classes for v in values
            ):
                raise ValueError(f"guard state {name} must be a list of label ids in [0, {num_classes})")
            getattr(state, name).extend(values)
        stepped_in = payload.get("stepped_in", False)
        if not isinstance(stepped_in, bool):
            raise ValueError(f"guard state stepped_in must be true or false, got {stepped_in!r}")
        state.stepped_in = stepped_in
        for name in ("seen", "collapses", "inserted", "rejected", "answered_vote", "answered_t3a"):
            value = payload.get(name, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"guard state {name} must be an integer >= 0, got {value!r}")
            setattr(state, name, value)
        return state
