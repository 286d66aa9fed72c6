"""AdANNS: adaptive approximate nearest-neighbour search over Matryoshka embeddings.

Reference: Rege et al., "AdANNS: A Framework for Adaptive Semantic Search" (NeurIPS 2023). A Matryoshka
embedding carries a usable representation in every prefix of its dimensions; AdANNS uses a cheap low-dim
prefix where the pipeline may be approximate and a richer prefix where it may not:

* **AdANNS-IVF** -- k-means centroids are learned on the first ``d_cluster`` dims and every vector is
  assigned by them; a query picks ``nprobe`` lists with its first ``d_cluster`` dims and scores their
  candidates with its first ``d_search`` dims (any pair is allowed, ``d_search`` may exceed
  ``d_cluster``), optionally re-ranking the best ``rerank_k`` candidates exactly on ``d_rerank`` dims.
* **AdANNS-OPQ** -- an OPQ rotation and PQ codes of ``pq_bytes`` bytes trained on the first ``d_pq``
  dims; combined with the IVF lists above it is the paper's IVF(d_cluster) + OPQ(d_pq) composite.
* Rigid baselines are the same class with all dims equal, so comparisons share one code path.

faiss does the k-means, the OPQ/PQ training and encoding, the coarse assignment and the fused exact
re-rank (``IndexFlat.compute_distance_subset``); the AdANNS logic (prefix clustering, scanning/re-ranking
with other prefixes, compute-aware configuration choice) is written here.

Decisions where the reference notebooks differ from the paper (see ``reference-pitfalls.md``):

* with ``metric="ip"`` every truncated prefix is re-normalised to unit length, for the database and for
  the queries (the notebooks score raw prefixes of unit vectors);
* the learned OPQ rotation is applied to both the database and the queries (the optimized-OPQ notebook
  discards ``opq.apply``'s result);
* ``d_search`` may be larger than ``d_cluster``.

FLOPs are counted as multiply-adds per query (one per dimension per scored vector), like the paper.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from datasets.search import BaseIndex, BatchedSearchResults, SearchResults
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from ..common.files import atomic_directory, read_json, write_json
from .config import AdANNSConfig

logger = logging.getLogger(__name__)

__all__ = ["AdANNSIndex", "VectorSource", "ArrayVectorSource", "SearchSettings", "prefix", "CONFIG_NAME"]

CONFIG_NAME = "config.json"
VECTORS_NAME = "vectors.faiss"
CENTROIDS_NAME = "centroids.faiss"
OPQ_PQ_NAME = "opq_pq.faiss"
ARRAYS_NAME = "lists.safetensors"
PARETO_NAME = "pareto_front.json"

_MAX_BUFFER = 4_000_000  # query x candidate cells scored at once (bounds search memory)


def prefix(vectors: np.ndarray, dim: int, metric: str) -> np.ndarray:
    """First ``dim`` dims of ``vectors`` as C-contiguous float32, re-normalised to unit length for ``ip``."""
    out = np.ascontiguousarray(vectors[:, :dim], dtype=np.float32)
    if metric == "ip":
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, 1e-12)
    return out


class VectorSource:
    """Row-batched read access to the vectors being indexed (streaming, no full copy)."""

    num_rows: int
    dim: int

    def read(self, start: int, end: int) -> np.ndarray:
        """Rows ``start:end`` as a float32 array of shape ``(end - start, dim)``."""
        raise NotImplementedError

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given (sorted) rows as a float32 array."""
        raise NotImplementedError


class ArrayVectorSource(VectorSource):
    """A :class:`VectorSource` over an in-memory or memory-mapped 2-D array."""

    def __init__(self, array: np.ndarray, name: str = "vectors"):
        array = np.asarray(array)
        if array.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array (rows, dim), got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{name} must hold floats, got dtype {array.dtype}")
        self.array, self.name = array, name
        self.num_rows, self.dim = array.shape

    def read(self, start: int, end: int) -> np.ndarray:
        return np.asarray(self.array[start:end], dtype=np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.array[rows], dtype=np.float32)


@dataclass
class SearchSettings:
    """One search configuration (the per-call overridable part of :class:`AdANNSConfig`)."""

    d_search: int
    nprobe: int
    d_rerank: int | None
    rerank_k: int
    scan: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "d_search": self.d_search,
            "nprobe": self.nprobe,
            "d_rerank": self.d_rerank,
            "rerank_k": self.rerank_k,
            "scan": self.scan,
        }


def _check_finite(batch: np.ndarray, name: str, start: int = 0) -> None:
    if not np.isfinite(batch).all():
        bad = start + int(np.argwhere(~np.isfinite(batch).all(axis=1))[0, 0])
        raise ValueError(f"{name} contains NaN or infinite values (first at row {bad}); clean them before indexing")


class AdANNSIndex(BaseIndex):
    """A :class:`datasets.search.BaseIndex` implementing AdANNS-IVF, AdANNS-OPQ and their composite.

    Build with :meth:`build` (or ``Dataset.add_adanns_index``), search with :meth:`search` /
    :meth:`search_batch` (per-call ``d_search``, ``nprobe``, ``d_rerank``, ``rerank_k``, ``scan`` or a
    ``budget_flops``), measure the recall/compute front with :meth:`tune`, persist with :meth:`save` /
    :meth:`load`. Scores follow faiss: similarities (descending) for ``ip``, squared distances
    (ascending) for ``l2``.
    """

    def __init__(self, config: AdANNSConfig):
        self.config = config
        self.centroids_index: faiss.Index | None = None  # IndexFlat over d_cluster-dim centroids
        self.vectors_index: faiss.IndexFlat | None = None  # the full vectors, in list order
        self.opq_pq: faiss.IndexPreTransform | None = None  # trained OPQ rotation + PQ (no codes)
        self.codes: np.ndarray | None = None  # (n, pq_bytes) uint8 PQ codes, in list order
        self.ids: np.ndarray | None = None  # position in list order -> dataset row
        self.list_offsets: np.ndarray | None = None  # (nlist + 1,) list boundaries
        self.pareto_front: list[dict[str, Any]] = []
        self._sqnorms: dict[int, np.ndarray] = {}  # prefix dim -> squared prefix norms (list order)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        source: VectorSource | np.ndarray,
        config: AdANNSConfig,
        *,
        batch_size: int = 10_000,
        show_progress: bool = True,
        device: int | str | None = None,
    ) -> AdANNSIndex:
        """Train the centroids (and OPQ/PQ) on a sample and add every vector, streaming in batches.

        Only one float32 copy of the vectors is kept, inside a faiss ``IndexFlat`` (in list order); the
        source is read twice, batch by batch.
        """
        if isinstance(source, np.ndarray):
            source = ArrayVectorSource(source)
        if device not in (None, "cpu", -1):
            raise ValueError(f"device must be None or 'cpu' (faiss-cpu build), got {device!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        n, dim = source.num_rows, source.dim
        if dim != config.dim:
            raise ValueError(f"config.dim ({config.dim}) does not match the vectors' dim ({dim})")
        if config.nlist > n:
            raise ValueError(f"nlist must be <= the number of rows ({n}), got {config.nlist}")
        config.num_rows = n
        config.validate()
        index = cls(config)
        sample = index._training_sample(source)
        index._train(sample)
        del sample
        index._add_all(source, batch_size=batch_size, show_progress=show_progress)
        return index

    def _training_sample(self, source: VectorSource) -> np.ndarray:
        cfg, n = self.config, source.num_rows
        size = cfg.train_size or min(n, max(256 * cfg.nlist, 50_000))
        size = min(size, n)
        rows = np.sort(np.random.default_rng(cfg.seed).choice(n, size=size, replace=False))
        sample = source.take(rows)
        _check_finite(sample, "the embeddings")
        return sample

    def _train(self, sample: np.ndarray) -> None:
        cfg = self.config
        metric = faiss.METRIC_INNER_PRODUCT if cfg.metric == "ip" else faiss.METRIC_L2
        xc = prefix(sample, cfg.d_cluster, cfg.metric)
        if cfg.nlist == 1:
            centroids = xc.mean(axis=0, keepdims=True)
        else:
            kmeans = faiss.Kmeans(
                cfg.d_cluster, cfg.nlist, niter=20, seed=cfg.seed, spherical=cfg.metric == "ip", verbose=False,
                min_points_per_centroid=1,  # small corpora are legitimate; faiss would only warn
            )
            kmeans.train(xc)
            centroids = kmeans.centroids
        self.centroids_index = faiss.IndexFlat(cfg.d_cluster, metric)
        self.centroids_index.add(np.ascontiguousarray(centroids, dtype=np.float32))
        if cfg.pq_bytes is not None:
            xp = prefix(sample, cfg.d_pq, cfg.metric)
            if len(xp) < 256:
                raise ValueError(
                    f"pq_bytes needs at least 256 training vectors (8-bit codebooks), got {len(xp)}; "
                    "raise train_size or index more rows"
                )
            opq = faiss.OPQMatrix(cfg.d_pq, cfg.pq_bytes)
            opq_pq_trainer = faiss.ProductQuantizer(cfg.d_pq, cfg.pq_bytes, 8)
            opq_pq_trainer.cp.min_points_per_centroid = 1  # small samples: no faiss warning spam
            opq.pq = opq_pq_trainer
            codes_index = faiss.IndexPQ(cfg.d_pq, cfg.pq_bytes, 8, metric)
            codes_index.pq.cp.min_points_per_centroid = 1
            self.opq_pq = faiss.IndexPreTransform(opq, codes_index)
            self.opq_pq.train(xp)
            opq.pq = None  # the trainer is a Python-owned object; do not leave a dangling pointer

    def _ladder(self) -> list[int]:
        cfg = self.config
        dims = {cfg.d_cluster, cfg.d_search, cfg.dim}
        dims |= {d for d in (cfg.d_rerank, cfg.d_pq) if d}
        d = 8
        while d < cfg.dim:
            dims.add(d)
            d *= 2
        return sorted(dims)

    def _add_all(self, source: VectorSource, *, batch_size: int, show_progress: bool) -> None:
        cfg, n = self.config, source.num_rows
        assign = np.empty(n, dtype=np.int64)
        bar = tqdm(total=2 * n, desc="AdANNS index (2 passes)", unit="vec", disable=not show_progress)
        for start in range(0, n, batch_size):  # pass 1: list assignment with the d_cluster prefix
            batch = source.read(start, min(n, start + batch_size))
            _check_finite(batch, "the embeddings", start)
            assign[start : start + len(batch)] = self._probe(batch, 1)[:, 0]
            bar.update(len(batch))
        order = np.argsort(assign, kind="stable")
        self.ids = order.astype(np.int64)
        self.list_offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=cfg.nlist))]).astype(
            np.int64
        )
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        del assign, order
        metric = faiss.METRIC_INNER_PRODUCT if cfg.metric == "ip" else faiss.METRIC_L2
        self.vectors_index = faiss.IndexFlat(cfg.dim, metric)
        zeros = np.zeros((min(n, batch_size), cfg.dim), dtype=np.float32)
        for start in range(0, n, batch_size):  # reserve storage inside faiss, filled in list order below
            self.vectors_index.add(zeros[: min(batch_size, n - start)])
        del zeros
        storage = self._vectors()
        ladder = self._ladder()
        sqnorms = np.empty((len(ladder), n), dtype=np.float32)
        if cfg.pq_bytes is not None:
            self.codes = np.empty((n, cfg.pq_bytes), dtype=np.uint8)
        for start in range(0, n, batch_size):  # pass 2: copy into list order, prefix norms, PQ codes
            batch = source.read(start, min(n, start + batch_size))
            pos = position[start : start + len(batch)]
            storage[pos] = batch
            cum = np.cumsum(np.square(batch, dtype=np.float32), axis=1)
            sqnorms[:, pos] = cum[:, np.asarray(ladder) - 1].T
            if self.opq_pq is not None:
                self.codes[pos] = self.opq_pq.sa_encode(prefix(batch, cfg.d_pq, cfg.metric))
            bar.update(len(batch))
        bar.close()
        self._sqnorms = {d: sqnorms[i] for i, d in enumerate(ladder)}

    # ------------------------------------------------------------------ accessors
    def _vectors(self) -> np.ndarray:
        """Zero-copy numpy view (n, dim) of the vectors held by faiss, in list order."""
        n, dim = self.vectors_index.ntotal, self.vectors_index.d
        return faiss.rev_swig_ptr(self.vectors_index.get_xb(), n * dim).reshape(n, dim)

    @property
    def num_rows(self) -> int:
        return int(self.vectors_index.ntotal)

    @property
    def centroids(self) -> np.ndarray:
        """The k-means centroids, shape (nlist, d_cluster)."""
        index = self.centroids_index
        return faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d).copy()

    @property
    def list_sizes(self) -> np.ndarray:
        return np.diff(self.list_offsets)

    def list_rows(self, list_id: int) -> np.ndarray:
        """Dataset rows assigned to inverted list ``list_id``."""
        return self.ids[self.list_offsets[list_id] : self.list_offsets[list_id + 1]]

    def _prefix_sqnorms(self, dim: int) -> np.ndarray:
        if dim not in self._sqnorms:  # any prefix is allowed; unseen ones are computed once
            self._sqnorms[dim] = np.einsum("ij,ij->i", self._vectors()[:, :dim], self._vectors()[:, :dim])
        return self._sqnorms[dim]

    # ------------------------------------------------------------------ search
    def settings(self, **overrides: Any) -> SearchSettings:
        """The index's default search settings with ``overrides`` applied and validated."""
        cfg = self.config
        unknown = set(overrides) - {"d_search", "nprobe", "d_rerank", "rerank_k", "scan"}
        if unknown:
            raise TypeError(
                f"unknown search arguments {sorted(unknown)}; allowed: d_search, nprobe, d_rerank, "
                "rerank_k, scan, budget_flops"
            )
        values = {
            "d_search": cfg.d_search,
            "nprobe": cfg.nprobe,
            "d_rerank": cfg.d_rerank,
            "rerank_k": cfg.rerank_k,
            "scan": cfg.scan,
        }
        values.update({k: v for k, v in overrides.items() if v is not None or k == "d_rerank"})
        if "d_rerank" not in overrides:
            values["d_rerank"] = cfg.d_rerank
        trial = AdANNSConfig(
            dim=cfg.dim, d_cluster=cfg.d_cluster, nlist=cfg.nlist, pq_bytes=cfg.pq_bytes, d_pq=cfg.d_pq, **values
        )
        return SearchSettings(trial.d_search, trial.nprobe, trial.d_rerank, trial.rerank_k, trial.scan)

    def _check_queries(self, queries: Any, name: str = "queries") -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array (n_queries, {self.config.dim}), got shape {queries.shape}")
        if queries.shape[1] != self.config.dim:
            raise ValueError(
                f"{name} have dim {queries.shape[1]} but the index was built on {self.config.dim}-dim embeddings"
            )
        _check_finite(queries, name)
        return queries

    def _probe(self, queries: np.ndarray, nprobe: int) -> np.ndarray:
        """Lists chosen by the queries' ``d_cluster`` prefix, shape (nq, nprobe)."""
        if nprobe >= self.config.nlist:
            return np.tile(np.arange(self.config.nlist, dtype=np.int64), (len(queries), 1))
        _, lists = self.centroids_index.search(prefix(queries, self.config.d_cluster, self.config.metric), nprobe)
        return lists

    def probe(self, queries: np.ndarray, nprobe: int | None = None) -> np.ndarray:
        """Inverted lists each query probes (chosen with its ``d_cluster`` prefix)."""
        queries = self._check_queries(queries)
        return self._probe(queries, self.settings(nprobe=nprobe).nprobe)

    def candidates(self, queries: np.ndarray, nprobe: int | None = None) -> list[np.ndarray]:
        """Dataset rows scanned for each query: the members of the lists it probes."""
        return [np.concatenate([self.list_rows(l) for l in lists]) for lists in self.probe(queries, nprobe)]

    def _lookup_tables(self, queries: np.ndarray) -> np.ndarray:
        """Per-query PQ tables (nq, M, 256): similarity contributions of every code of every sub-space."""
        cfg = self.config
        opq = faiss.downcast_VectorTransform(self.opq_pq.chain.at(0))
        pq = faiss.downcast_index(self.opq_pq.index).pq
        rotated = opq.apply(prefix(queries, cfg.d_pq, cfg.metric))  # the rotation IS applied
        tables = np.empty((len(queries), pq.M, pq.ksub), dtype=np.float32)
        if cfg.metric == "ip":
            pq.compute_inner_prod_tables(len(queries), faiss.swig_ptr(rotated), faiss.swig_ptr(tables))
        else:
            pq.compute_distance_tables(len(queries), faiss.swig_ptr(rotated), faiss.swig_ptr(tables))
            tables = -tables
        return tables

    def _scan(self, queries: np.ndarray, lists: np.ndarray, s: SearchSettings) -> tuple[np.ndarray, np.ndarray]:
        """Similarity of every candidate of the probed lists, padded: (scores, positions), -inf / -1 pads."""
        cfg = self.config
        sizes = self.list_sizes[lists]
        col_start = np.cumsum(sizes, axis=1) - sizes
        width = max(int(sizes.sum(axis=1).max()), 1)
        scores = np.full((len(queries), width), -np.inf, dtype=np.float32)
        positions = np.full((len(queries), width), -1, dtype=np.int64)
        if s.scan == "pq":
            tables = self._lookup_tables(queries)
            m_range = np.arange(cfg.pq_bytes)
        else:
            vectors = self._vectors()[:, : s.d_search]
            q = prefix(queries, s.d_search, cfg.metric)
            sqn = self._prefix_sqnorms(s.d_search)
            inv = 1.0 / np.sqrt(np.maximum(sqn, 1e-24)) if cfg.metric == "ip" else None
        flat_q = np.repeat(np.arange(len(queries)), lists.shape[1])
        flat_l, flat_c = lists.ravel(), col_start.ravel()
        order = np.argsort(flat_l, kind="stable")
        flat_q, flat_l, flat_c = flat_q[order], flat_l[order], flat_c[order]
        bounds = np.flatnonzero(np.diff(flat_l)) + 1
        for group in np.split(np.arange(len(flat_l)), bounds):
            lst = flat_l[group[0]]
            start, end = self.list_offsets[lst], self.list_offsets[lst + 1]
            if start == end:
                continue
            qs = flat_q[group]
            if s.scan == "pq":
                codes = self.codes[start:end]
                block = np.zeros((len(qs), end - start), dtype=np.float32)
                sub = tables[qs]
                for m in m_range:
                    block += sub[:, m, :][:, codes[:, m]]
            elif cfg.metric == "ip":
                block = (q[qs] @ vectors[start:end].T) * inv[start:end]
            else:
                block = 2.0 * (q[qs] @ vectors[start:end].T) - sqn[start:end] - np.einsum("ij,ij->i", q[qs], q[qs])[:, None]
            cols = flat_c[group][:, None] + np.arange(end - start)
            scores[qs[:, None], cols] = block
            positions[qs[:, None], cols] = np.arange(start, end)
        return scores, positions

    @staticmethod
    def _top(scores: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, scores.shape[1])
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(
            np.arange(scores.shape[1]), (len(scores), 1)
        )
        top_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return np.take_along_axis(top_scores, order, axis=1), np.take_along_axis(
            np.take_along_axis(positions, part, axis=1), order, axis=1
        )

    def _rerank(self, queries: np.ndarray, positions: np.ndarray, d_rerank: int) -> np.ndarray:
        """Exact similarity on the ``d_rerank`` prefix for the given positions (-1 -> -inf)."""
        cfg = self.config
        valid = positions >= 0
        safe = np.where(valid, positions, 0)
        q = prefix(queries, d_rerank, cfg.metric)
        if d_rerank == cfg.dim:  # fused gather + dot product inside faiss
            out = np.empty(safe.shape, dtype=np.float32)
            self.vectors_index.compute_distance_subset(
                len(q), faiss.swig_ptr(q), safe.shape[1], faiss.swig_ptr(out), faiss.swig_ptr(np.ascontiguousarray(safe))
            )
            if cfg.metric == "l2":
                out = -out
        else:  # gathers only the d_rerank-dim prefix of each candidate
            gathered = self._vectors()[:, :d_rerank][safe]
            out = np.einsum("qrd,qd->qr", gathered, q)
            if cfg.metric == "l2":
                out = 2.0 * out - self._prefix_sqnorms(d_rerank)[safe] - np.einsum("ij,ij->i", q, q)[:, None]
        if cfg.metric == "ip":
            out = out / np.sqrt(np.maximum(self._prefix_sqnorms(d_rerank)[safe], 1e-24))
        return np.where(valid, out, -np.inf).astype(np.float32)

    def _search_positions(self, queries: np.ndarray, k: int, s: SearchSettings) -> tuple[np.ndarray, np.ndarray]:
        lists = self._probe(queries, s.nprobe)
        scan_k = max(k, s.rerank_k) if s.d_rerank else k
        scores, positions = self._scan(queries, lists, s)
        scores, positions = self._top(scores, positions, scan_k)
        if s.d_rerank:
            scores = self._rerank(queries, positions, s.d_rerank)
            scores, positions = self._top(scores, positions, k)
        return scores[:, :k], positions[:, :k]

    def _resolve(self, budget_flops: float | None, overrides: dict[str, Any]) -> SearchSettings:
        if budget_flops is None:
            return self.settings(**overrides)
        if overrides:
            raise ValueError(f"pass either budget_flops or explicit settings {sorted(overrides)}, not both")
        return self.settings(**self.best_within_budget(budget_flops))

    def search_batch(self, queries: Any, k: int = 10, budget_flops: float | None = None, **overrides: Any):
        """Nearest rows for each query; returns ``(total_scores, total_indices)`` as numpy arrays.

        Per-call overrides: ``d_search``, ``nprobe``, ``d_rerank`` (``None`` disables re-ranking),
        ``rerank_k``, ``scan`` (``"flat"``/``"pq"``), or ``budget_flops`` to use the most accurate tuned
        configuration costing at most that many FLOPs per query. Missing results (fewer candidates than
        ``k``) are padded with index -1.
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        queries = self._check_queries(queries)
        s = self._resolve(budget_flops, overrides)
        expected = max(1, self.num_rows * s.nprobe // self.config.nlist)
        chunk = max(1, _MAX_BUFFER // max(expected, 1))
        all_scores, all_rows = [], []
        for start in range(0, len(queries), chunk):
            scores, positions = self._search_positions(queries[start : start + chunk], int(k), s)
            if scores.shape[1] < k:  # fewer candidates than k: pad like faiss
                pad = k - scores.shape[1]
                scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
                positions = np.pad(positions, ((0, 0), (0, pad)), constant_values=-1)
            rows = np.where(positions >= 0, self.ids[np.maximum(positions, 0)], -1)
            all_scores.append(scores)
            all_rows.append(rows)
        scores, rows = np.concatenate(all_scores), np.concatenate(all_rows)
        if self.config.metric == "l2":
            scores = -scores  # back to squared distances (ascending), as faiss reports them
        return BatchedSearchResults(scores, rows.astype(int))

    def search(self, query: Any, k: int = 10, budget_flops: float | None = None, **overrides: Any) -> SearchResults:
        """Nearest rows for one query (1-D or (1, dim)); see :meth:`search_batch` for the options."""
        query = np.asarray(query, dtype=np.float32)
        if query.ndim == 2 and query.shape[0] == 1:
            query = query[0]
        if query.ndim != 1:
            raise ValueError(f"query must be a 1-D array of dim {self.config.dim} (or shape (1, dim)), got {query.shape}")
        scores, rows = self.search_batch(query[None, :], k, budget_flops=budget_flops, **overrides)
        return SearchResults(scores[0], rows[0])

    # ------------------------------------------------------------------ compute
    def cost(self, **overrides: Any) -> dict[str, float]:
        """FLOPs (multiply-adds) per query of a configuration, by stage and in total.

        ``coarse``: scoring the ``nlist`` centroids on ``d_cluster`` dims (skipped when all lists are
        probed); ``scan``: ``d_search`` per expected candidate (flat) or ``pq_bytes`` additions per
        candidate plus the 256 x ``d_pq`` lookup table and the ``d_pq``^2 rotation (pq); ``rerank``:
        ``d_rerank`` per re-ranked candidate. The expected candidate count is ``n * nprobe / nlist``.
        """
        cfg, s = self.config, self.settings(**overrides)
        n = self.num_rows if self.vectors_index is not None else (cfg.num_rows or 0)
        candidates = n * s.nprobe / cfg.nlist
        coarse = 0.0 if s.nprobe >= cfg.nlist else float(cfg.nlist * cfg.d_cluster)
        if s.scan == "pq":
            scan = candidates * cfg.pq_bytes + 256.0 * cfg.d_pq + float(cfg.d_pq) ** 2
        else:
            scan = candidates * s.d_search
        rerank = float(min(s.rerank_k, candidates) * s.d_rerank) if s.d_rerank else 0.0
        return {"coarse": coarse, "scan": float(scan), "rerank": rerank, "total": coarse + scan + rerank,
                "candidates": float(candidates)}

    def default_grid(self) -> list[dict[str, Any]]:
        """Configurations :meth:`tune` explores by default: prefixes x nprobe x re-rank."""
        cfg = self.config
        dims = [d for d in self._ladder() if d >= 8]
        nprobes = sorted({min(cfg.nlist, p) for p in (1, 2, 4, 8, 16, 32, 64, cfg.nprobe)})
        reranks: list[tuple[int | None, int]] = [(None, cfg.rerank_k)]
        reranks += [(cfg.dim, r) for r in (50, 200)]
        grid = []
        for nprobe in nprobes:
            for d_rerank, rerank_k in reranks:
                scans = [{"scan": "flat", "d_search": d} for d in dims]
                if cfg.pq_bytes is not None:
                    scans.append({"scan": "pq"})
                for scan in scans:
                    grid.append({"nprobe": nprobe, "d_rerank": d_rerank, "rerank_k": rerank_k, **scan})
        return grid

    def tune(
        self,
        queries: np.ndarray,
        relevant_ids: Sequence[Iterable[int]],
        *,
        k: int = 10,
        grid: Sequence[dict[str, Any]] | None = None,
        show_progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Measure recall@k / MRR@k / FLOPs / queries-per-second of each configuration in ``grid`` on
        held-out ``queries`` (``relevant_ids[i]``: the rows relevant to query ``i``), store the
        recall-vs-FLOPs Pareto front with the index (``self.pareto_front``, saved with it) and return
        every measured point."""
        queries = self._check_queries(queries)
        if len(relevant_ids) != len(queries):
            raise ValueError(f"relevant_ids must have one entry per query ({len(queries)}), got {len(relevant_ids)}")
        relevant = [set(int(r) for r in rel) for rel in relevant_ids]
        points = []
        for overrides in tqdm(list(grid or self.default_grid()), desc="AdANNS tune", disable=not show_progress):
            start = time.perf_counter()
            _, rows = self.search_batch(queries, k, **overrides)
            elapsed = time.perf_counter() - start
            metrics = retrieval_metrics(rows, relevant, k)
            settings = self.settings(**overrides).as_dict()
            points.append({**settings, **metrics, "flops": self.cost(**overrides)["total"],
                           "qps": len(queries) / max(elapsed, 1e-9)})
        self.pareto_front = pareto_front(points, key="recall")
        return points

    def best_within_budget(self, budget_flops: float) -> dict[str, Any]:
        """Settings of the most accurate tuned configuration whose cost is at most ``budget_flops``."""
        if not self.pareto_front:
            raise ValueError("budget_flops needs a tuned recall/compute front: call index.tune(queries, relevant_ids) first")
        fits = [p for p in self.pareto_front if p["flops"] <= budget_flops]
        if not fits:
            cheapest = min(p["flops"] for p in self.pareto_front)
            raise ValueError(f"budget_flops={budget_flops:g} is below the cheapest tuned configuration ({cheapest:g} FLOPs)")
        best = max(fits, key=lambda p: (p["recall"], -p["flops"]))
        return {key: best[key] for key in ("d_search", "nprobe", "d_rerank", "rerank_k", "scan")}

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike, card: Callable[[AdANNSIndex, Path], None] | None = None) -> Path:
        """Write the index as a folder (atomically): config, faiss files, lists, Pareto front, card."""
        folder = Path(folder)
        with atomic_directory(folder) as tmp:
            self.config.save(tmp / CONFIG_NAME)
            faiss.write_index(self.vectors_index, str(tmp / VECTORS_NAME))
            faiss.write_index(self.centroids_index, str(tmp / CENTROIDS_NAME))
            arrays = {"ids": self.ids, "list_offsets": self.list_offsets}
            for d, values in self._sqnorms.items():
                arrays[f"sqnorms_{d}"] = np.ascontiguousarray(values)
            if self.opq_pq is not None:
                faiss.write_index(self.opq_pq, str(tmp / OPQ_PQ_NAME))
                arrays["codes"] = self.codes
            save_file(arrays, str(tmp / ARRAYS_NAME))
            write_json(tmp / PARETO_NAME, self.pareto_front)
            if card is None:
                from .card import write_index_card

                card = write_index_card
            card(self, tmp)
        logger.info("Saved AdANNS index to %s", folder)
        return folder

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        *,
        expected_num_rows: int | None = None,
        expected_dim: int | None = None,
        expected_fingerprint: str | None = None,
    ) -> AdANNSIndex:
        """Read an index saved by :meth:`save`, checking it against what the caller expects.

        Raises:
            FileNotFoundError: a file of the index is missing.
            ValueError: schema version, dims, row count or fingerprint differ from the expected ones, or the
                files disagree with the config.
        """
        folder = Path(folder)
        required = [CONFIG_NAME, VECTORS_NAME, CENTROIDS_NAME, ARRAYS_NAME]
        missing = [name for name in required if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a saved AdANNS index: missing {missing}")
        config = AdANNSConfig.load(folder / CONFIG_NAME)
        if expected_dim is not None and config.dim != expected_dim:
            raise ValueError(f"index at {folder} was built on {config.dim}-dim embeddings, the column has {expected_dim}")
        if expected_num_rows is not None and config.num_rows != expected_num_rows:
            raise ValueError(
                f"index at {folder} holds {config.num_rows} rows but the dataset has {expected_num_rows}: it was "
                "built on another dataset (or another version of it)"
            )
        if expected_fingerprint is not None and config.dataset_fingerprint not in (None, expected_fingerprint):
            raise ValueError(
                f"index at {folder} was built on dataset fingerprint {config.dataset_fingerprint!r}, this dataset "
                f"has {expected_fingerprint!r}; pass check_fingerprint=False if the rows are known to be the same"
            )
        index = cls(config)
        index.vectors_index = faiss.read_index(str(folder / VECTORS_NAME))
        index.centroids_index = faiss.read_index(str(folder / CENTROIDS_NAME))
        arrays = load_file(str(folder / ARRAYS_NAME))
        index.ids, index.list_offsets = arrays["ids"], arrays["list_offsets"]
        index._sqnorms = {int(key.split("_")[1]): value for key, value in arrays.items() if key.startswith("sqnorms_")}
        if config.pq_bytes is not None:
            if not (folder / OPQ_PQ_NAME).is_file() or "codes" not in arrays:
                raise FileNotFoundError(f"{folder}: config has pq_bytes={config.pq_bytes} but the PQ files are missing")
            index.opq_pq = faiss.read_index(str(folder / OPQ_PQ_NAME))
            index.codes = arrays["codes"]
        index._check_consistency(folder)
        if (folder / PARETO_NAME).is_file():
            index.pareto_front = read_json(folder / PARETO_NAME)
        return index

    def _check_consistency(self, folder: Path) -> None:
        cfg, problems = self.config, []
        if self.vectors_index.d != cfg.dim or self.vectors_index.ntotal != cfg.num_rows:
            problems.append(f"vectors {self.vectors_index.ntotal}x{self.vectors_index.d} vs config {cfg.num_rows}x{cfg.dim}")
        if self.centroids_index.d != cfg.d_cluster or self.centroids_index.ntotal != cfg.nlist:
            problems.append(f"centroids {self.centroids_index.ntotal}x{self.centroids_index.d} vs nlist={cfg.nlist}, d_cluster={cfg.d_cluster}")
        if len(self.ids) != cfg.num_rows or len(self.list_offsets) != cfg.nlist + 1 or self.list_offsets[-1] != cfg.num_rows:
            problems.append("inverted lists do not cover the rows")
        if self.codes is not None and self.codes.shape != (cfg.num_rows, cfg.pq_bytes):
            problems.append(f"PQ codes {self.codes.shape} vs ({cfg.num_rows}, {cfg.pq_bytes})")
        if self.opq_pq is not None and self.opq_pq.d != cfg.d_pq:
            problems.append(f"OPQ/PQ dim {self.opq_pq.d} vs d_pq={cfg.d_pq}")
        if problems:
            raise ValueError(f"AdANNS index at {folder} is corrupt or inconsistent: {'; '.join(problems)}")


def retrieval_metrics(rows: np.ndarray, relevant: Sequence[set[int]], k: int) -> dict[str, float]:
    """recall@k (share of each query's relevant rows found in its top k, averaged) and MRR@k."""
    recall, mrr = 0.0, 0.0
    for found, rel in zip(np.asarray(rows)[:, :k], relevant):
        hits = [rank for rank, row in enumerate(found) if int(row) in rel]
        recall += len(set(int(r) for r in found) & rel) / max(len(rel), 1)
        mrr += 1.0 / (hits[0] + 1) if hits else 0.0
    n = max(len(relevant), 1)
    return {"recall": recall / n, "mrr": mrr / n}


def pareto_front(points: Sequence[dict[str, Any]], key: str = "recall") -> list[dict[str, Any]]:
    """Points not dominated in (lower ``flops``, higher ``key``), sorted by FLOPs."""
    front, best = [], -math.inf
    for point in sorted(points, key=lambda p: (p["flops"], -p[key])):
        if point[key] > best:
            front.append(point)
            best = point[key]
    return front
