"""What an AdANNS index holds, and the faiss structures its scans run in.

Stored (saved and loaded):

* ``vectors``: one faiss ``IndexFlat`` with the float32 vectors in row order (re-normalised for ``ip``;
  every prefix is re-normalised again when used), unless the index is PQ-only without re-ranking;
* per coarse quantizer (``d_cluster``): its centroids and the inverted lists it assigns (``ids`` = the rows
  sorted by list, ``offsets`` = list boundaries);
* with ``pq_bytes``: the OPQ rotation, the PQ codebooks and every row's codes.

Derived on first use from the stored arrays (nothing is re-trained; the cost is one copy of the prefix,
``n x d x 4`` bytes, reported by :meth:`IndexStorage.memory`):

* ``IndexIVFFlat`` over the ``d``-dim prefixes, lists assigned by a ``d_cluster`` quantizer (faiss
  ``add_core`` / ``search_preassigned``): the low-dim list scan;
* ``IndexIVFPQ`` (``by_residual=False``) over the codes with the same lists: faiss's own PQ lookup tables;
* ``IndexFlat`` over a ``d``-dim prefix: exact scan at ``d < dim`` and re-ranking
  (``compute_distance_subset``).

Every search kernel is faiss's, so faiss's OpenMP threads apply (``faiss.omp_set_num_threads``).
"""

from __future__ import annotations

import logging
from typing import Any

import faiss
import numpy as np

from .config import AdANNSConfig, SearchSettings
from .vectors import VectorSource, check_finite, prefix

logger = logging.getLogger(__name__)

__all__ = ["IndexStorage", "faiss_metric"]


#: ``IndexIVF.parallel_mode`` for our ``search_preassigned`` calls. faiss's default (0) parallelises in
#: ``IndexIVF.search`` by cutting the queries into one slice per thread *before* it calls
#: ``search_preassigned``, which then runs single-threaded; called directly (the lists come from the
#: ``d_cluster`` quantizer), mode 3 spreads the queries over the OpenMP threads inside it (1.7x at 2 threads).
_PARALLEL_OVER_QUERIES = 3


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def _ptr(array: np.ndarray) -> Any:
    return faiss.swig_ptr(array)


class IndexStorage:
    """The stored arrays of an index and the faiss search structures derived from them."""

    def __init__(self, config: AdANNSConfig):
        self.config = config
        self.vectors: faiss.IndexFlat | None = None
        self.centroids: dict[int, np.ndarray] = {}  # d_cluster -> (nlist, d_cluster) float32
        self.ids: dict[int, np.ndarray] = {}  # d_cluster -> rows sorted by list
        self.offsets: dict[int, np.ndarray] = {}  # d_cluster -> (nlist + 1,) list boundaries
        self.opq_rotation: np.ndarray | None = None  # (d_pq, d_pq), applied as x @ R.T
        self.pq_codebooks: np.ndarray | None = None  # (pq_bytes, 256, d_pq / pq_bytes)
        self.codes: np.ndarray | None = None  # (n, pq_bytes) uint8, row order
        self._coarse: dict[int, faiss.IndexFlat] = {}
        self._ivf: dict[tuple[int, int], faiss.IndexIVFFlat] = {}
        self._ivfpq: dict[int, faiss.IndexIVFPQ] = {}
        self._pq: faiss.IndexPQ | None = None
        self._flat: dict[int, faiss.IndexFlat] = {}
        self._rotation: tuple[np.ndarray, faiss.LinearTransform] | None = None  # (opq_rotation, its transform)

    # ------------------------------------------------------------------ accessors
    @property
    def num_rows(self) -> int:
        return int(self.config.num_rows)

    def vector_view(self) -> np.ndarray:
        """Zero-copy (n, dim) view of the stored vectors."""
        if self.vectors is None:
            raise ValueError(
                "this index stores no float32 vectors (a PQ-only index without re-ranking); rebuild it with "
                "store_vectors=True to use flat/exact scans or re-ranking"
            )
        n, d = self.vectors.ntotal, self.vectors.d
        return faiss.rev_swig_ptr(self.vectors.get_xb(), n * d).reshape(n, d)

    def list_of_rows(self, d_cluster: int) -> np.ndarray:
        """(n,) list id of every row under the ``d_cluster`` quantizer."""
        sizes = np.diff(self.offsets[d_cluster])
        out = np.empty(self.num_rows, dtype=np.int64)
        out[self.ids[d_cluster]] = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        return out

    def coarse(self, d_cluster: int) -> faiss.IndexFlat:
        if d_cluster not in self.centroids:
            raise ValueError(f"d_cluster must be one of the trained prefixes {sorted(self.centroids)}, got {d_cluster}")
        if d_cluster not in self._coarse:
            index = faiss.IndexFlat(d_cluster, faiss_metric(self.config.metric))
            index.add(self.centroids[d_cluster])
            self._coarse[d_cluster] = index
        return self._coarse[d_cluster]

    def flat(self, dim: int) -> faiss.IndexFlat:
        """``IndexFlat`` over the (re-normalised) ``dim``-prefix, row order; built once per prefix."""
        if dim == self.config.dim:
            self.vector_view()  # raises a clear error when there are none
            return self.vectors
        if dim not in self._flat:
            index = faiss.IndexFlat(dim, faiss_metric(self.config.metric))
            view = self.vector_view()
            for start in range(0, self.num_rows, 65536):
                index.add(prefix(view[start : start + 65536], dim, self.config.metric))
            logger.debug("AdANNS: built the %d-dim prefix store (%.1f MiB)", dim, self.num_rows * dim * 4 / 2**20)
            self._flat[dim] = index
        return self._flat[dim]

    def ivf(self, d_cluster: int, dim: int) -> faiss.IndexIVFFlat:
        """``IndexIVFFlat`` over the ``dim``-prefixes with the lists of the ``d_cluster`` quantizer."""
        key = (d_cluster, dim)
        if key not in self._ivf:
            cfg = self.config
            quantizer = faiss.IndexFlat(dim, faiss_metric(cfg.metric))  # never searched: lists are preassigned
            index = faiss.IndexIVFFlat(quantizer, dim, cfg.nlist, faiss_metric(cfg.metric))
            index.is_trained = True
            index.parallel_mode = _PARALLEL_OVER_QUERIES
            view, assign = self.vector_view(), self.list_of_rows(d_cluster)
            for start in range(0, self.num_rows, 65536):
                x = prefix(view[start : start + 65536], dim, cfg.metric)
                rows = np.arange(start, start + len(x), dtype=np.int64)
                lists = np.ascontiguousarray(assign[start : start + len(x)])
                index.add_core(len(x), _ptr(x), _ptr(rows), _ptr(lists))
            logger.debug("AdANNS: built the IVF store d_cluster=%d, d=%d (%.1f MiB)", d_cluster, dim,
                        self.num_rows * dim * 4 / 2**20)
            self._ivf[key] = index
        return self._ivf[key]

    def ivfpq(self, d_cluster: int) -> faiss.IndexIVFPQ:
        """``IndexIVFPQ`` (no residuals) over the stored codes with the lists of the ``d_cluster`` quantizer."""
        if self.codes is None:
            raise ValueError("scan='pq' needs PQ codes: build the index with pq_bytes")
        if d_cluster not in self._ivfpq:
            cfg = self.config
            quantizer = faiss.IndexFlat(cfg.d_pq, faiss_metric(cfg.metric))
            index = faiss.IndexIVFPQ(quantizer, cfg.d_pq, cfg.nlist, cfg.pq_bytes, 8, faiss_metric(cfg.metric))
            index.by_residual = False
            index.is_trained = True
            index.parallel_mode = _PARALLEL_OVER_QUERIES
            faiss.copy_array_to_vector(np.ascontiguousarray(self.pq_codebooks.ravel()), index.pq.centroids)
            ids, offsets = self.ids[d_cluster], self.offsets[d_cluster]
            for lst in range(cfg.nlist):
                rows = np.ascontiguousarray(ids[offsets[lst] : offsets[lst + 1]], dtype=np.int64)
                if len(rows):
                    codes = np.ascontiguousarray(self.codes[rows])
                    index.invlists.add_entries(lst, len(rows), _ptr(rows), _ptr(codes))
            index.ntotal = self.num_rows
            self._ivfpq[d_cluster] = index
        return self._ivfpq[d_cluster]

    def pq(self) -> faiss.IndexPQ:
        """``IndexPQ`` over the stored codes (row order): faiss's exhaustive PQ scan, used when every list is
        probed."""
        if self.codes is None:
            raise ValueError("scan='pq' needs PQ codes: build the index with pq_bytes")
        if self._pq is None:
            cfg = self.config
            index = faiss.IndexPQ(cfg.d_pq, cfg.pq_bytes, 8, faiss_metric(cfg.metric))
            faiss.copy_array_to_vector(np.ascontiguousarray(self.pq_codebooks.ravel()), index.pq.centroids)
            faiss.copy_array_to_vector(np.ascontiguousarray(self.codes.ravel()), index.codes)
            index.ntotal = self.num_rows
            index.is_trained = True
            self._pq = index
        return self._pq

    def keep_only(self, s: SearchSettings) -> None:
        """Drop every derived faiss structure plan ``s`` does not use (after tuning built many)."""
        self._ivf = {key: v for key, v in self._ivf.items() if s.scan == "flat" and key == (s.d_cluster, s.d_search)}
        self._flat = {d: v for d, v in self._flat.items() if (s.scan == "exact" and d == s.d_search) or d == s.d_rerank}
        self._ivfpq = {dc: v for dc, v in self._ivfpq.items() if s.scan == "pq" and dc == s.d_cluster}
        if not (s.scan == "pq" and s.nprobe >= self.config.nlist):
            self._pq = None

    def memory(self) -> dict[str, int]:
        """Bytes held now: stored arrays and every derived faiss structure built so far."""
        n = self.num_rows
        out = {"vectors": n * self.config.dim * 4 if self.vectors is not None else 0,
               "lists": sum(a.nbytes for a in self.ids.values()) + sum(a.nbytes for a in self.offsets.values()),
               "codes": self.codes.nbytes if self.codes is not None else 0}
        for (dc, d) in self._ivf:
            out[f"ivf_flat d_cluster={dc} d={d}"] = n * (d * 4 + 8)
        for d in self._flat:
            out[f"flat d={d}"] = n * d * 4
        for dc in self._ivfpq:
            out[f"ivf_pq d_cluster={dc}"] = n * (self.config.pq_bytes + 8)
        if self._pq is not None:
            out["pq (exhaustive)"] = n * self.config.pq_bytes
        return out

    # ------------------------------------------------------------------ build
    def train(self, sample: np.ndarray) -> None:
        """k-means centroids on each ``d_cluster`` prefix, OPQ rotation + PQ codebooks on the ``d_pq`` prefix."""
        cfg = self.config
        for d_cluster in cfg.d_clusters:
            xc = prefix(sample, d_cluster, cfg.metric)
            if cfg.nlist == 1:
                centroids = xc.mean(axis=0, keepdims=True)
            else:
                kmeans = faiss.Kmeans(
                    d_cluster, cfg.nlist, niter=20, seed=cfg.seed, spherical=cfg.metric == "ip", verbose=False,
                    min_points_per_centroid=1,  # small corpora are legitimate; faiss would only warn
                )
                kmeans.train(xc)
                centroids = kmeans.centroids
            self.centroids[d_cluster] = np.ascontiguousarray(centroids, dtype=np.float32)
        if cfg.pq_bytes is not None:
            xp = prefix(sample, cfg.d_pq, cfg.metric)
            if len(xp) < 256:
                raise ValueError(
                    f"pq_bytes needs at least 256 training vectors (8-bit codebooks), got {len(xp)}; "
                    "raise train_size or index more rows"
                )
            opq = faiss.OPQMatrix(cfg.d_pq, cfg.pq_bytes)
            trainer = faiss.ProductQuantizer(cfg.d_pq, cfg.pq_bytes, 8)
            trainer.cp.min_points_per_centroid = 1
            opq.pq = trainer
            opq.train(xp)
            opq.pq = None  # the trainer is Python-owned; do not leave a dangling pointer
            self.opq_rotation = faiss.vector_to_array(opq.A).reshape(cfg.d_pq, cfg.d_pq).astype(np.float32)
            pq = faiss.ProductQuantizer(cfg.d_pq, cfg.pq_bytes, 8)
            pq.cp.min_points_per_centroid = 1
            pq.train(self.rotate(xp))
            self.pq_codebooks = faiss.vector_to_array(pq.centroids).reshape(cfg.pq_bytes, 256, -1).astype(np.float32)
            self._encoder = pq

    def add_all(self, source: VectorSource, *, batch_size: int, bar: Any) -> None:
        """Assign every row to its lists, store the vectors and PQ codes; one pass over the source."""
        cfg, n = self.config, source.num_rows
        assign = {dc: np.empty(n, dtype=np.int64) for dc in cfg.d_clusters}
        view = None
        if cfg.store_vectors:  # sized once (no doubling reallocations), filled batch by batch
            self.vectors = faiss.IndexFlat(cfg.dim, faiss_metric(cfg.metric))
            self.vectors.codes.resize(n * cfg.dim * 4)
            view = faiss.rev_swig_ptr(self.vectors.codes.data(), n * cfg.dim * 4).view(np.float32).reshape(n, cfg.dim)
        if cfg.pq_bytes is not None:
            self.codes = np.empty((n, cfg.pq_bytes), dtype=np.uint8)
        for start in range(0, n, batch_size):
            batch = source.read(start, min(n, start + batch_size))
            check_finite(batch, "the embeddings", start)
            end = start + len(batch)
            for dc in cfg.d_clusters:
                _, lists = self.coarse(dc).search(prefix(batch, dc, cfg.metric), 1)
                assign[dc][start:end] = lists[:, 0]
            if cfg.pq_bytes is not None:
                self.codes[start:end] = self._encoder.compute_codes(
                    self.rotate(prefix(batch, cfg.d_pq, cfg.metric)))
            if view is not None:
                view[start:end] = prefix(batch, cfg.dim, cfg.metric)
            bar.update(len(batch))
        if self.vectors is not None:
            self.vectors.ntotal = n
        for dc, lists in assign.items():
            self.ids[dc] = np.argsort(lists, kind="stable").astype(np.int64)
            self.offsets[dc] = np.concatenate([[0], np.cumsum(np.bincount(lists, minlength=cfg.nlist))]).astype(np.int64)
        self.__dict__.pop("_encoder", None)

    # ------------------------------------------------------------------ search
    def probe(self, queries: np.ndarray, d_cluster: int, nprobe: int) -> np.ndarray:
        """(nq, nprobe) lists chosen by the queries' ``d_cluster`` prefix."""
        if nprobe >= self.config.nlist:
            return np.tile(np.arange(self.config.nlist, dtype=np.int64), (len(queries), 1))
        _, lists = self.coarse(d_cluster).search(prefix(queries, d_cluster, self.config.metric), nprobe)
        return lists

    def scan(self, queries: np.ndarray, k: int, s: SearchSettings) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (similarities, rows) of the scan stage; -inf / -1 where fewer candidates exist."""
        cfg = self.config
        if s.scan == "exact":
            scores, rows = self.flat(s.d_search).search(prefix(queries, s.d_search, cfg.metric), k)
        elif s.scan == "pq" and s.nprobe >= cfg.nlist:  # every list: faiss's exhaustive PQ scan
            xq = self.rotate(prefix(queries, cfg.d_pq, cfg.metric))
            scores, rows = self.pq().search(xq, k)
        else:
            lists = self.probe(queries, s.d_cluster, s.nprobe)
            if s.scan == "pq":
                index = self.ivfpq(s.d_cluster)
                xq = self.rotate(prefix(queries, cfg.d_pq, cfg.metric))
            else:
                index = self.ivf(s.d_cluster, s.d_search)
                xq = prefix(queries, s.d_search, cfg.metric)
            index.nprobe = lists.shape[1]
            scores, rows = index.search_preassigned(xq, k, lists, None)
        if cfg.metric == "l2":
            scores = -scores
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
        return scores, rows

    def rotate(self, x: np.ndarray) -> np.ndarray:
        """``x @ opq_rotation.T`` computed by faiss (its OpenMP threads), not by numpy: numpy's BLAS threads
        keep spinning after a matmul and take the cores from the faiss scan that follows (measured: the
        exhaustive PQ scan at 2 threads went from 28 ms to 60 ms for 721 queries)."""
        if self._rotation is None or self._rotation[0] is not self.opq_rotation:  # built once per rotation
            transform = faiss.LinearTransform(self.config.d_pq, self.config.d_pq, False)
            faiss.copy_array_to_vector(np.ascontiguousarray(self.opq_rotation, dtype=np.float32).ravel(),
                                       transform.A)
            transform.is_trained = True
            self._rotation = (self.opq_rotation, transform)
        return self._rotation[1].apply(np.ascontiguousarray(x, dtype=np.float32))

    def rerank(self, queries: np.ndarray, rows: np.ndarray, d_rerank: int) -> np.ndarray:
        """Exact similarity on the ``d_rerank`` prefix for the given rows (-1 -> -inf), fused in faiss."""
        cfg = self.config
        index = self.flat(d_rerank)
        q = prefix(queries, d_rerank, cfg.metric)
        safe = np.ascontiguousarray(np.where(rows >= 0, rows, 0), dtype=np.int64)
        out = np.empty(safe.shape, dtype=np.float32)
        index.compute_distance_subset(len(q), _ptr(q), safe.shape[1], _ptr(out), _ptr(safe))
        if cfg.metric == "l2":
            out = -out
        return np.where(rows >= 0, out, -np.inf).astype(np.float32)
