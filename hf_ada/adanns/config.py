"""Configuration of an AdANNS index: which Matryoshka prefix each stage of the search uses.

An :class:`AdANNSConfig` round-trips through JSON (``config.json`` inside a saved index folder). It holds
the build-time structure (``d_cluster``, ``nlist``, graphs, the OPQ/PQ code shape), the default search
settings (:class:`SearchSettings`), and the provenance a load is checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..common.config import JsonConfigMixin

__all__ = ["AdANNSConfig", "SearchSettings", "SEARCH_KEYS", "SCHEMA_VERSION", "METRICS", "SCANS", "default_structure",
           "FAISS_EF_CONSTRUCTION"]

SCHEMA_VERSION = 2
METRICS = ("ip", "l2")
#: faiss's default HNSW build width (what a user of ``IndexHNSWFlat`` gets): ``tune()`` weighs the full-dim graph
#: built with it against one built with ``hnsw_ef_construction``
FAISS_EF_CONSTRUCTION = 40
#: ``flat``: exact scores on ``d_search`` dims for the members of the probed lists (faiss IndexIVFFlat);
#: ``pq``: OPQ+PQ asymmetric distances for the members of the probed lists (faiss IndexIVFPQ);
#: ``exact``: exact scores on ``d_search`` dims for every row, no lists (faiss IndexFlat);
#: ``hnsw``: a walk of the HNSW graph built over the ``d_search``-dim prefix (faiss IndexHNSW), ``ef_search`` wide.
SCANS = ("flat", "pq", "exact", "hnsw")


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
    ef_search: int

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
    nlist = int(max(1, min(nlist, num_rows // 39)))  # never 0: a dataset of < 39 rows gets one list
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
        graph_dims: prefixes that carry an HNSW graph (``scan="hnsw"`` plans walk the graph of their
            ``d_search`` prefix); ``index.add_graph(d)`` / ``tune`` add more.
        hnsw_m: neighbours per node of the HNSW graphs (faiss ``M``).
        hnsw_ef_construction: width of the search that picks each node's neighbours while a graph is built
            (faiss ``efConstruction``; default 160; faiss's own default is 40, hnswlib's 200). Wider builds slower
            and usually gives a graph that reaches a recall with a narrower walk, though each step of it costs
            more (fuller neighbour lists). Used for the graphs on prefixes, and for the full-dim graph unless
            ``full_graph_ef_construction`` says otherwise.
        full_graph_ef_construction: build width of the full-dim graph -- the rigid HNSW a faiss user would
            attach. ``None`` (default): ``tune()`` builds it as faiss does by default (``hnsw_m`` neighbours,
            width 40) and two alternatives (width ``hnsw_ef_construction`` with ``hnsw_m`` and with ``hnsw_m // 2``
            neighbours), walks each on the tuning queries and keeps an alternative only where its walk reaches
            every recall of faiss's default build (efSearch 16-256; within its standard error) as
            fast; before that choice, graphs use ``hnsw_ef_construction``.
        full_graph_m: neighbours per node of the full-dim graph (``None``: ``hnsw_m``); set by ``tune()`` with
            ``full_graph_ef_construction``.
        ef_search: default width of the HNSW walk (``efSearch``), overridable per search.
        metric: ``"ip"`` (inner product on L2-normalised prefixes: cosine) or ``"l2"`` (squared L2).
        scan: ``"flat"`` (exact scores on ``d_search`` dims) or ``"pq"`` (asymmetric PQ distances);
            defaults to ``"pq"`` when ``pq_bytes`` is set.
        train_size: number of vectors the k-means / OPQ / PQ training uses (``None``: all, capped at
            ``256 * nlist`` for k-means as faiss recommends).
        opq_iterations: training iterations of the OPQ rotation (faiss ``OPQMatrix.niter``; default 50, as
            faiss): fewer build faster, more fit the rotation longer. Used only with ``pq_bytes``.
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
    graph_dims: list[int] = field(default_factory=list)
    hnsw_m: int = 32
    hnsw_ef_construction: int = 160
    full_graph_ef_construction: int | None = None
    full_graph_m: int | None = None
    ef_search: int = 64
    metric: str = "ip"
    scan: str | None = None
    train_size: int | None = None
    opq_iterations: int = 50
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
        for name in ("dim", "d_cluster", "d_search", "nlist", "nprobe", "pq_bytes", "d_pq", "d_rerank", "rerank_k",
                     "hnsw_m", "hnsw_ef_construction", "full_graph_ef_construction", "full_graph_m", "ef_search",
                     "train_size", "opq_iterations", "num_rows"):
            if isinstance(getattr(self, name), np.integer):  # JSON-safe
                setattr(self, name, int(getattr(self, name)))
        for name in ("extra_d_clusters", "graph_dims"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple, set)) or not all(_is_int(v) for v in values):
                raise ValueError(f"{name} must be a list of ints in [1, {self.dim}], got {values!r}")
            setattr(self, name, [int(v) for v in values])
        if self.pq_bytes is not None and self.d_pq is None:
            self.d_pq = self.dim
        if self.scan is None:
            self.scan = "pq" if self.pq_bytes is not None else "flat"
        self.extra_d_clusters = sorted(set(self.extra_d_clusters) - {self.d_cluster})
        self.graph_dims = sorted(set(self.graph_dims))
        if self.store_vectors is None:
            self.store_vectors = not (self.pq_bytes is not None and self.scan == "pq" and self.d_rerank is None)
        if self.num_rows is not None and self.is_complete is False:
            self.fill_defaults(self.num_rows)
        self.validate()

    def ef_construction(self, dim: int) -> int:
        """The efConstruction the graph on the ``dim`` prefix is built with."""
        if dim == self.dim and self.full_graph_ef_construction is not None:
            return self.full_graph_ef_construction
        return self.hnsw_ef_construction

    def graph_m(self, dim: int) -> int:
        """The neighbours per node (faiss ``M``) of the graph on the ``dim`` prefix."""
        if dim == self.dim and self.full_graph_m is not None:
            return self.full_graph_m
        return self.hnsw_m

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
        if self.d_cluster is None:  # an explicit value (0 included) is the caller's, checked by validate()
            self.d_cluster = auto["d_cluster"]
        if self.d_search is None:
            self.d_search = auto["d_search"]
        self.extra_d_clusters = sorted(set(self.extra_d_clusters) - {self.d_cluster})

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the first invalid argument."""
        if not _is_int(self.dim) or self.dim < 1:
            raise ValueError(f"dim must be a positive int, got {self.dim!r}")
        for name in ("d_cluster", "d_search", "d_pq", "d_rerank"):
            value = getattr(self, name)
            if value is None and (name in ("d_pq", "d_rerank") or not self.is_complete):
                continue
            if not _is_int(value) or not 1 <= value <= self.dim:
                raise ValueError(
                    f"{name} must be an int in [1, {self.dim}] (the embedding dim), got {value!r}"
                )
        for name in ("extra_d_clusters", "graph_dims"):
            for value in getattr(self, name):
                if not _is_int(value) or not 1 <= value <= self.dim:
                    raise ValueError(f"{name} must hold ints in [1, {self.dim}], got {value!r}")
        if not self.is_complete:
            return self._validate_rest()
        if not _is_int(self.nlist) or self.nlist < 1:
            raise ValueError(f"nlist must be a positive int, got {self.nlist!r}")
        if self.num_rows is not None and self.nlist > self.num_rows:
            raise ValueError(f"nlist must be <= the number of rows ({self.num_rows}), got {self.nlist}")
        if not _is_int(self.nprobe) or not 1 <= self.nprobe <= self.nlist:
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
        for name in ("rerank_k", "hnsw_m", "hnsw_ef_construction", "ef_search"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.full_graph_ef_construction is not None and (
                not _is_int(self.full_graph_ef_construction) or self.full_graph_ef_construction < 1):
            raise ValueError(f"full_graph_ef_construction must be a positive int or None (chosen by tune() between "
                             f"{FAISS_EF_CONSTRUCTION} and hnsw_ef_construction), got {self.full_graph_ef_construction!r}")
        if self.full_graph_m is not None and (not _is_int(self.full_graph_m) or self.full_graph_m < 2):
            raise ValueError(f"full_graph_m must be an int >= 2 or None (hnsw_m; chosen by tune() with the full-dim "
                             f"graph's width), got {self.full_graph_m!r}")
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size < 1):
            raise ValueError(f"train_size must be a positive int or None, got {self.train_size!r}")
        if not _is_int(self.opq_iterations) or self.opq_iterations < 1:
            raise ValueError(f"opq_iterations must be an int >= 1 (training iterations of the OPQ rotation; "
                             f"default 50), got {self.opq_iterations!r}")
        if self.scan in ("flat", "exact", "hnsw") and self.store_vectors is False:
            raise ValueError(f"scan={self.scan!r} needs the float32 vectors: store_vectors must not be False")
        if self.d_rerank is not None and self.store_vectors is False:
            raise ValueError("d_rerank needs the float32 vectors: store_vectors must not be False")
        self.check_schema_version(self.schema_version)

    def settings(self) -> SearchSettings:
        """The default search plan this config describes."""
        return SearchSettings(**{key: getattr(self, key) for key in SEARCH_KEYS})

    def check_settings(self, values: dict[str, Any]) -> SearchSettings:
        """``values`` (every key of :data:`SEARCH_KEYS`) as a :class:`SearchSettings` valid for an index with
        this config's structure; :class:`ValueError` naming the first bad setting otherwise."""
        missing = [key for key in SEARCH_KEYS if key not in values]
        if missing:
            raise ValueError(f"search settings lack {missing}")
        if values["d_cluster"] not in self.d_clusters:
            raise ValueError(f"d_cluster must be one of the trained prefixes {self.d_clusters}, got {values['d_cluster']!r}")
        if values["scan"] == "hnsw" and values["d_search"] not in self.graph_dims:
            raise ValueError(
                f"scan='hnsw' walks the graph of the d_search prefix; this index has graphs on {self.graph_dims} "
                f"dims, got d_search={values['d_search']!r} (add one with index.add_graph(d))"
            )
        trial = AdANNSConfig(
            dim=self.dim, nlist=self.nlist, pq_bytes=self.pq_bytes, d_pq=self.d_pq, store_vectors=self.store_vectors,
            extra_d_clusters=self.extra_d_clusters, graph_dims=self.graph_dims, hnsw_m=self.hnsw_m,
            **{key: values[key] for key in SEARCH_KEYS},
        )
        return trial.settings()


def _is_int(value: Any) -> bool:
    """A real integer (numpy ints included), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
