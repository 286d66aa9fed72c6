"""Configuration of an AdaNPC predictor: a dataclass that round-trips through JSON."""

from __future__ import annotations

from dataclasses import dataclass

from ..common.config import JsonConfigMixin

__all__ = ["AdaNPCConfig", "CONFIG_NAME", "SCHEMA_VERSION", "METRICS", "INSERT_POLICIES", "METHODS", "MEMORY_INDEXES"]

CONFIG_NAME = "adanpc_config.json"
SCHEMA_VERSION = 1
METRICS = ("cosine", "inner_product", "l2")
INSERT_POLICIES = ("all", "confident", "none")
METHODS = ("adanpc", "t3a")
MEMORY_INDEXES = ("auto", "flat", "ivf")


@dataclass
class AdaNPCConfig(JsonConfigMixin):
    """Settings of the AdaNPC non-parametric classifier.

    Args:
        k: number of nearest memory entries that vote.
        temperature: temperature of the similarity-weighted vote; the weight of neighbour ``j`` is
            ``softmax_j(sim_j / temperature)`` over the ``k`` neighbours (the reference's formula).
        metric: ``"cosine"`` (default: features are L2-normalised, similarity = dot product),
            ``"inner_product"`` (raw dot product) or ``"l2"`` (similarity = minus squared distance).
        capacity: maximum number of memory entries (``None``: unbounded, as in the reference).
        insert: which test samples join the memory after being predicted (within the memory's reach, see
            ``reach_quantile``): ``"all"`` (default, the paper's rule), ``"confident"`` (vote probability of
            the predicted class >= the threshold, see below) or ``"none"`` (plain kNN over the source memory).
        confidence_threshold: threshold for ``insert="confident"``, in ``[0, 1]``; ``None`` (default)
            calibrates it on the source memory: the ``confidence_quantile`` quantile of the leave-one-out
            vote confidences of the source entries (see :mod:`hf_ada.adanpc.guard`). hf-ada's confidence is
            the maximum of the vote's probability vector. The reference takes a softmax over the already
            normalised vote, which squeezes the confidence into ``[~0.1, ~0.23]`` for 10 classes, so its
            thresholds 0.25 / 0.75 / 1.1 all mean "never insert"; hf-ada deliberately does not copy that.
        confidence_quantile: quantile of the source confidences used as the calibrated threshold.
        agreement: insert only samples where the vote and the model's own head predict the same class.
        class_balance: a class never holds more test entries than source entries; a new entry of a full
            class replaces that class's oldest test entry.
        collapse_window: number of recent predictions the collapse monitor looks at (``None``: off).
        collapse_ratio: the monitor forgets the test entries when the entropy of the vote's predicted-class
            histogram over the window falls below this fraction of the head's.
        reach_quantile: the reach gate (:mod:`hf_ada.adanpc.guard`): a batch whose median input is farther
            from its nearest memory entry than all but this fraction of the training entries are from theirs
            is *out of reach* (an abrupt jump away from what the memory knows): T3A answers it (the head if T3A
            cannot run) and nothing of it is inserted. ``None`` turns the gate off (the paper's behaviour).
        reset_every: episodic mode: forget the test entries every this many inputs (``None``: never).
        method: ``"adanpc"`` (the kNN vote) or ``"t3a"`` (T3A's template adjuster on the same features,
            the usual baseline; the guard settings do not apply to it).
        blend_t3a: with ``method="adanpc"``, run T3A alongside on the same features and stream: within the
            memory's reach the answer is the mean of the vote's probabilities and T3A's (the guard still inserts
            by the vote alone), out of reach T3A answers alone. Needs the classification head's input as the
            feature (``feature_layer=None``); otherwise the vote answers alone and the head out of reach
            (logged). :meth:`unguarded` (the paper) turns it off. Measurements: ``benchmarks/results/adanpc.md``.
        t3a_filter_k: T3A's supports kept per class (``None``: all).
        evict_source: when the memory is full, the oldest *test* entries are evicted first; source
            (training) entries are only evicted, oldest first, if this is ``True``. Otherwise new test
            entries that do not fit are dropped (and a warning is logged once).
        feature_layer: module whose input is the feature (dotted name as in ``model.named_modules()``);
            append ``":output"`` to use the module's output instead. ``None``: the input of the last
            ``nn.Linear`` with ``num_labels`` outputs, i.e. the representation entering the classifier.
        memory_index: the memory's search structure: ``"auto"`` (default: exact below a size threshold, an
            IVF-Flat index above it), ``"flat"`` (always exact) or ``"ivf"``; see :mod:`hf_ada.adanpc.memory_index`.
        nprobe: IVF lists scanned per query (``None``: the default of :mod:`hf_ada.adanpc.memory_index`).
        schema_version: version of this file's schema; a mismatch on load is an error.
    """

    SCHEMA_VERSION = SCHEMA_VERSION  # the version this hf-ada writes and reads (not a field)
    CONFIG_KIND = "AdaNPC"


    k: int = 10
    temperature: float = 0.1
    metric: str = "cosine"
    capacity: int | None = None
    insert: str = "all"
    confidence_threshold: float | None = None
    confidence_quantile: float = 0.1
    agreement: bool = False
    class_balance: bool = True
    collapse_window: int | None = 128
    collapse_ratio: float = 0.8
    reach_quantile: float | None = 0.05
    reset_every: int | None = None
    evict_source: bool = False
    feature_layer: str | None = None
    memory_index: str = "auto"
    nprobe: int | None = None
    method: str = "adanpc"
    blend_t3a: bool = True
    t3a_filter_k: int | None = 100
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the field and the allowed values if a setting is invalid."""
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"AdaNPCConfig.k must be an integer >= 1, got {self.k!r}")
        if not _is_number(self.temperature) or not 0 < self.temperature < float("inf"):
            raise ValueError(f"AdaNPCConfig.temperature must be a number > 0, got {self.temperature!r}")
        if self.metric not in METRICS:
            raise ValueError(f"AdaNPCConfig.metric must be one of {METRICS}, got {self.metric!r}")
        if self.capacity is not None and (not isinstance(self.capacity, int) or isinstance(self.capacity, bool)
                                          or self.capacity < 1):
            raise ValueError(f"AdaNPCConfig.capacity must be None or an integer >= 1, got {self.capacity!r}")
        if self.insert not in INSERT_POLICIES:
            raise ValueError(f"AdaNPCConfig.insert must be one of {INSERT_POLICIES}, got {self.insert!r}")
        if self.confidence_threshold is not None and not (
            _is_number(self.confidence_threshold) and 0.0 <= self.confidence_threshold <= 1.0
        ):
            raise ValueError(
                f"AdaNPCConfig.confidence_threshold must be None (calibrated) or lie in [0, 1], "
                f"got {self.confidence_threshold!r}"
            )
        if not (_is_number(self.confidence_quantile) and 0.0 <= self.confidence_quantile <= 1.0):
            raise ValueError(f"AdaNPCConfig.confidence_quantile must lie in [0, 1], got {self.confidence_quantile!r}")
        for name in ("agreement", "class_balance", "evict_source", "blend_t3a"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"AdaNPCConfig.{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("collapse_window", "reset_every", "t3a_filter_k"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"AdaNPCConfig.{name} must be None or an integer >= 1, got {value!r}")
        if self.reach_quantile is not None and not (_is_number(self.reach_quantile)
                                                    and 0.0 <= self.reach_quantile <= 1.0):
            raise ValueError(f"AdaNPCConfig.reach_quantile must be None (off) or lie in [0, 1], "
                             f"got {self.reach_quantile!r}")
        if not (_is_number(self.collapse_ratio) and 0.0 <= self.collapse_ratio <= 1.0):
            raise ValueError(f"AdaNPCConfig.collapse_ratio must lie in [0, 1], got {self.collapse_ratio!r}")
        if self.memory_index not in MEMORY_INDEXES:
            raise ValueError(f"AdaNPCConfig.memory_index must be one of {MEMORY_INDEXES}, got {self.memory_index!r}")
        if self.nprobe is not None and (not isinstance(self.nprobe, int) or isinstance(self.nprobe, bool)
                                        or self.nprobe < 1):
            raise ValueError(f"AdaNPCConfig.nprobe must be None or an integer >= 1, got {self.nprobe!r}")
        if self.method not in METHODS:
            raise ValueError(f"AdaNPCConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.feature_layer is not None and not isinstance(self.feature_layer, str):
            raise ValueError(f"AdaNPCConfig.feature_layer must be None or a module name, got {self.feature_layer!r}")
        self.check_schema_version(self.schema_version)

    @classmethod
    def unguarded(cls, **overrides) -> AdaNPCConfig:
        """The paper's AdaNPC: every prediction inserted, no guard (for comparisons)."""
        settings = {"insert": "all", "agreement": False, "class_balance": False, "collapse_window": None,
                    "blend_t3a": False, "reach_quantile": None}
        return cls(**{**settings, **overrides})


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
