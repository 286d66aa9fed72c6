"""Configuration of an AdANNS index: which Matryoshka prefix each stage of the search uses.

An :class:`AdANNSConfig` round-trips through JSON (``config.json`` inside a saved index folder). It holds
the build-time structure (``d_cluster``, ``nlist``, the OPQ/PQ code shape), the default search settings
(``d_search``, ``nprobe``, re-ranking), and the provenance that a load is checked against (embedding dim,
number of rows, dataset fingerprint, embedding model name and revision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ..common.config import JsonConfigMixin

__all__ = ["AdANNSConfig", "SearchSettings", "SEARCH_KEYS", "SCHEMA_VERSION", "METRICS", "SCANS", "default_structure"]

SCHEMA_VERSION = 2
METRICS = ("ip", "l2")
#: ``flat``: exact scores on ``d_search`` dims for the members of the probed lists (faiss IndexIVFFlat);
#: ``pq``: OPQ+PQ asymmetric distances for the members of the probed lists (faiss IndexIVFPQ);
#: ``exact``: exact scores on ``d_search`` dims for every row, no lists (faiss IndexFlat).
SCANS = ("flat", "pq", "exact")


@dataclass(frozen=True)
class SearchSettings:
    """One search plan: the per-call overridable part of :class:`AdANNSConfig` (its field names are the
    search keyword arguments, defined here once)."""

    d_cluster: int
    d_search: int
    nprobe: int
    d_rerank: int | None
    rerank_k: int
    scan: str

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SEARCH_KEYS}


#: The search keyword arguments (``index.search(..., d_search=..., nprobe=...)``), in one place.
SEARCH_KEYS: tuple[str, ...] = tuple(f.name for f in fields(SearchSettings))


def default_structure(dim: int, num_rows: int) -> dict[str, int]:
    """Build settings used when the caller gives none, from the data size and the embedding dim.

    ``nlist`` ~ 4 sqrt(n) rounded to a power of two, with at least 39 rows per list (faiss's k-means
    minimum); ``d_cluster`` ~ dim / 6 (64 for 384-d: short prefixes cluster as well as the full vector on
    Matryoshka embeddings); ``d_search`` = 2 ``d_cluster``; exact re-rank of the best 100 at full dim;
    ``nprobe`` = nlist / 16. ``index.tune(...)`` then picks the fastest plan meeting a recall target.
    """
    nlist = 2 ** round(math.log2(max(1.0, 4.0 * math.sqrt(max(num_rows, 1)))))
    nlist = int(max(1, min(nlist, num_rows // 39)))
    d_cluster = min(dim, max(16, (dim // 6) // 8 * 8))
    d_search = min(dim, 2 * d_cluster)
    return {"nlist": nlist, "d_cluster": d_cluster, "d_search": d_search, "nprobe": max(1, nlist // 16),
            "d_rerank": dim if d_search < dim else None}


@dataclass
class AdANNSConfig(JsonConfigMixin):
    """Settings and provenance of an :class:`~hf_ada.adanns.AdANNSIndex`.

    Args:
        dim: full embedding dimension ``D`` of the indexed vectors.
        d_cluster: prefix length used to learn the k-means centroids and to pick the lists a query probes
            (``None``: chosen from the data, see :func:`default_structure`).
        d_search: prefix length used to score the candidates of the probed lists (flat scan).
        nlist: number of inverted lists (k-means centroids). ``nlist=1`` means exhaustive search.
        extra_d_clusters: more coarse quantizers trained on other prefixes (e.g. ``[dim]`` for the rigid
            full-dim IVF), selectable per search with ``d_cluster=``; ``tune`` compares them.
        store_vectors: keep the float32 vectors (needed by flat / exact scans and re-ranking). ``None``:
            keep them unless the index is a PQ-only index without re-ranking.
        nprobe: number of lists a query probes by default.
        pq_bytes: bytes per vector of the OPQ+PQ codes (``None``: no compressed codes).
        d_pq: prefix length the OPQ rotation and the PQ codebooks are trained on (defaults to ``dim``).
        d_rerank: prefix length of the exact re-ranking of the best scanned candidates (``None``: none).
        rerank_k: how many scanned candidates are re-ranked exactly.
        metric: ``"ip"`` (inner product on L2-normalised prefixes: cosine) or ``"l2"`` (squared L2).
        scan: ``"flat"`` (exact scores on ``d_search`` dims) or ``"pq"`` (asymmetric PQ distances);
            defaults to ``"pq"`` when ``pq_bytes`` is set.
        train_size: number of vectors the k-means / OPQ / PQ training uses (``None``: all, capped at
            ``256 * nlist`` for k-means as faiss recommends).
        seed: random seed of the training sample and of k-means.
        num_rows: number of indexed vectors (set at build time).
        column: dataset column the index was built from (``None`` for external arrays).
        dataset_fingerprint: fingerprint of the dataset at build time (``None`` for external arrays).
        content_hash: SHA-256 of every row of the indexed column (its Arrow value buffers, at disk speed) and
            the row count: a machine-independent check that a dataset loaded elsewhere holds the same vectors
            (``datasets`` fingerprints depend on local cache paths).
        embedding_model: name or path of the model that produced the embeddings, when known.
        embedding_model_revision: its revision (commit hash), when known.
        schema_version: version of this file's layout; loads refuse other versions.
    """

    SCHEMA_VERSION = SCHEMA_VERSION  # the version this hf-ada writes and reads (not a field)
    CONFIG_KIND = "AdANNS index"


    dim: int
    d_cluster: int | None = None
    d_search: int | None = None
    nlist: int | None = None
    nprobe: int | None = None
    pq_bytes: int | None = None
    d_pq: int | None = None
    d_rerank: int | None = None
    rerank_k: int = 100
    metric: str = "ip"
    scan: str | None = None
    train_size: int | None = None
    extra_d_clusters: list[int] = field(default_factory=list)
    store_vectors: bool | None = None
    seed: int = 0
    num_rows: int | None = None
    column: str | None = None
    dataset_fingerprint: str | None = None
    content_hash: str | None = None
    embedding_model: str | None = None
    embedding_model_revision: str | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pq_bytes is not None and self.d_pq is None:
            self.d_pq = self.dim
        if self.scan is None:
            self.scan = "pq" if self.pq_bytes is not None else "flat"
        self.extra_d_clusters = sorted({int(d) for d in self.extra_d_clusters} - {self.d_cluster})
        if self.store_vectors is None:
            self.store_vectors = not (self.pq_bytes is not None and self.scan == "pq" and self.d_rerank is None)
        if self.num_rows is not None and self.is_complete is False:
            self.fill_defaults(self.num_rows)
        self.validate()

    @property
    def is_complete(self) -> bool:
        return None not in (self.d_cluster, self.d_search, self.nlist, self.nprobe)

    @property
    def d_clusters(self) -> list[int]:
        """Every prefix a coarse quantizer is trained on (the default ``d_cluster`` first)."""
        return [self.d_cluster, *self.extra_d_clusters]

    def fill_defaults(self, num_rows: int) -> None:
        """Fill ``d_cluster`` / ``d_search`` / ``nlist`` / ``nprobe`` (and ``d_rerank`` when none of the
        dims was given) from :func:`default_structure`."""
        auto = default_structure(self.dim, num_rows)
        if self.d_search is None and self.d_cluster is None and self.d_rerank is None and self.scan != "pq":
            self.d_rerank = auto["d_rerank"]
        if self.nlist is None:
            self.nlist = auto["nlist"]
        if self.nprobe is None:
            self.nprobe = min(self.nlist, max(1, self.nlist // 16))
        self.d_cluster = self.d_cluster or auto["d_cluster"]
        self.d_search = self.d_search or auto["d_search"]
        self.extra_d_clusters = sorted(set(self.extra_d_clusters) - {self.d_cluster})

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the first invalid argument."""
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim must be a positive int, got {self.dim!r}")
        for name in ("d_cluster", "d_search", "d_pq", "d_rerank"):
            value = getattr(self, name)
            if value is None and (name in ("d_pq", "d_rerank") or not self.is_complete):
                continue
            if not isinstance(value, int) or not 1 <= value <= self.dim:
                raise ValueError(
                    f"{name} must be an int in [1, {self.dim}] (the embedding dim), got {value!r}"
                )
        for value in self.extra_d_clusters:
            if not 1 <= value <= self.dim:
                raise ValueError(f"extra_d_clusters must hold ints in [1, {self.dim}], got {value!r}")
        if not self.is_complete:
            return self._validate_rest()
        if not isinstance(self.nlist, int) or self.nlist < 1:
            raise ValueError(f"nlist must be a positive int, got {self.nlist!r}")
        if self.num_rows is not None and self.nlist > self.num_rows:
            raise ValueError(f"nlist must be <= the number of rows ({self.num_rows}), got {self.nlist}")
        if not isinstance(self.nprobe, int) or not 1 <= self.nprobe <= self.nlist:
            raise ValueError(f"nprobe must be an int in [1, nlist={self.nlist}], got {self.nprobe!r}")
        self._validate_rest()

    def _validate_rest(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {self.scan!r}")
        if self.scan == "pq" and self.pq_bytes is None:
            raise ValueError("scan='pq' needs pq_bytes (the index has no PQ codes)")
        if self.pq_bytes is not None:
            if not isinstance(self.pq_bytes, int) or self.pq_bytes < 1:
                raise ValueError(f"pq_bytes must be a positive int, got {self.pq_bytes!r}")
            if self.d_pq % self.pq_bytes != 0:
                raise ValueError(
                    f"d_pq ({self.d_pq}) must be a multiple of pq_bytes ({self.pq_bytes}): each byte codes "
                    "one sub-vector of d_pq / pq_bytes dims"
                )
        if not isinstance(self.rerank_k, int) or self.rerank_k < 1:
            raise ValueError(f"rerank_k must be a positive int, got {self.rerank_k!r}")
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size < 1):
            raise ValueError(f"train_size must be a positive int or None, got {self.train_size!r}")
        if self.scan in ("flat", "exact") and self.store_vectors is False:
            raise ValueError(f"scan={self.scan!r} needs the float32 vectors: store_vectors must not be False")
        if self.d_rerank is not None and self.store_vectors is False:
            raise ValueError("d_rerank needs the float32 vectors: store_vectors must not be False")
        self.check_schema_version(self.schema_version)

    def settings(self) -> SearchSettings:
        """The default search plan this config describes."""
        return SearchSettings(**{key: getattr(self, key) for key in SEARCH_KEYS})
