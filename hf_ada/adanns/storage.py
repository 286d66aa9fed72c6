"""What an AdANNS index holds, and the faiss structures its scans run in.

Stored (saved and loaded):

* ``vectors``: one faiss ``IndexFlat`` with the float32 vectors in row order (re-normalised for ``ip``;
  every prefix is re-normalised again when used), unless the index is PQ-only without re-ranking;
* per coarse quantizer (``d_cluster``): its centroids and the inverted lists it assigns (``ids`` = the rows
  sorted by list, ``offsets`` = list boundaries);
* per HNSW graph (``graph_dims``): faiss's graph arrays (levels, neighbour offsets, neighbours), whose
  nodes are the rows' ``d``-dim prefixes;
* with ``pq_bytes``: the OPQ rotation, the PQ codebooks and every row's codes.

Derived on first use from the stored arrays (nothing is re-trained; the cost is one copy of the prefix,
``n x d x 4`` bytes, reported by :meth:`IndexStorage.memory`):

* ``IndexIVFFlat`` over the ``d``-dim prefixes, lists assigned by a ``d_cluster`` quantizer (faiss
  ``add_core`` / ``search_preassigned``): the low-dim list scan;
* ``IndexIVFPQ`` (``by_residual=False``) over the codes with the same lists: faiss's own PQ lookup tables;
* ``IndexFlat`` over a ``d``-dim prefix: exact scan at ``d < dim`` and re-ranking
  (``compute_distance_subset``);
* ``IndexHNSW`` over that same prefix store (the graph arrays copied in, the vectors shared).

Every search kernel is faiss's, so faiss's OpenMP threads apply (``faiss.omp_set_num_threads``). Searches
never change a shared faiss object: per-call settings go in faiss ``SearchParameters``, and the derived
structures are built once under a lock, so one index serves many threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from .config import AdANNSConfig, SearchSettings
from .vectors import VectorSource, check_finite, prefix

logger = logging.getLogger(__name__)

__all__ = ["IndexStorage", "faiss_metric", "GRAPH_ARRAYS"]

#: The arrays of one saved HNSW graph (faiss ``HNSW`` fields) and their dtypes.
GRAPH_ARRAYS = {"levels": np.int32, "offsets": np.uint64, "neighbors": np.int32, "assign_probas": np.float64,
                "cum_nneighbor_per_level": np.int32, "header": np.int64}  # header: entry_point, max_level, M, efC


#: ``IndexIVF.parallel_mode`` for our ``search_preassigned`` calls. faiss's default (0) parallelises in
#: ``IndexIVF.search`` by cutting the queries into one slice per thread *before* it calls
#: ``search_preassigned``, which then runs single-threaded; called directly (the lists come from the
#: ``d_cluster`` quantizer), mode 3 spreads the queries over the OpenMP threads inside it.
_PARALLEL_OVER_QUERIES = 3


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def flat_index(dim: int, metric: str | int) -> faiss.IndexFlat:
    """An empty ``IndexFlatIP`` / ``IndexFlatL2`` (``metric``: ``"ip"`` / ``"l2"`` or faiss's constant): the
    classes faiss itself builds and reads back from a file. A plain ``IndexFlat(dim, metric)`` scans alike but
    hands an HNSW walk faiss's generic distance computer, measured 13-19% slower on the same graph."""
    ip = metric in ("ip", faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexFlatIP(dim) if ip else faiss.IndexFlatL2(dim)


def _ptr(array: np.ndarray) -> Any:
    return faiss.swig_ptr(array)


_SEARCH_PARAMS: dict[tuple[str, int], Any] = {}


def search_params(kind: str, value: int) -> Any:
    """faiss's per-call search parameters for ``value``: ``SearchParametersHNSW`` with that ``efSearch``
    (``kind="hnsw"``) or ``SearchParametersIVF`` with that ``nprobe`` (``kind="ivf"``). Made once per value and
    shared: faiss only reads them during a search, so concurrent searches may pass the same object (a new one
    per call costs as much as a one-query graph walk's other overheads together)."""
    key = (kind, int(value))
    params = _SEARCH_PARAMS.get(key)
    if params is None:
        params = faiss.SearchParametersHNSW() if kind == "hnsw" else faiss.SearchParametersIVF()
        setattr(params, "efSearch" if kind == "hnsw" else "nprobe", key[1])
        if len(_SEARCH_PARAMS) >= 1024:  # bounded: a caller sweeping values does not grow it forever
            _SEARCH_PARAMS.clear()
        _SEARCH_PARAMS[key] = params
    return params


def _search_preassigned(index: faiss.IndexIVF, xq: np.ndarray, k: int, lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """faiss ``search_preassigned`` with the probe count in per-call ``SearchParametersIVF`` (the Python
    wrapper would need ``index.nprobe`` set on the shared index, which races between threads)."""
    n = len(xq)
    lists = np.ascontiguousarray(lists, dtype=np.int64)
    params = search_params("ivf", lists.shape[1])
    centroid_dis = np.zeros(lists.shape, dtype=np.float32)
    scores, rows = np.empty((n, k), dtype=np.float32), np.empty((n, k), dtype=np.int64)
    index.search_preassigned_c(n, _ptr(xq), k, _ptr(lists), _ptr(centroid_dis), _ptr(scores), _ptr(rows), False,
                               params)
    return scores, rows


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
        self._pq: dict[int, faiss.IndexPQ] = {}  # 0 -> the exhaustive PQ index, once built
        self._flat: dict[int, faiss.IndexFlat] = {}
        self.graphs: dict[int, dict[str, np.ndarray]] = {}  # d -> GRAPH_ARRAYS
        self._rotation: tuple[np.ndarray, faiss.LinearTransform] | None = None  # (opq_rotation, its transform)
        self._hnsw: dict[int, faiss.IndexHNSW] = {}
        self._twins: dict[int, faiss.IndexIVF] = {}  # id(IVF index) -> its parallel_mode-3 twin
        self._lock = threading.RLock()  # derived structures are built once, whichever thread asks first

    _DERIVED = ("_coarse", "_ivf", "_ivfpq", "_pq", "_flat", "_hnsw", "_twins")

    def __getstate__(self) -> dict[str, Any]:
        """Copies (``copy.deepcopy``, pickling) carry the stored arrays; derived structures are rebuilt on use."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("_lock", "_rotation")}
        state.update({key: {} for key in self._DERIVED})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rotation, self._lock = None, threading.RLock()

    def _cached(self, table: dict, key: Any, make: Callable[[], Any]) -> Any:
        """``table[key]``, built by ``make()`` under the lock if missing (double-checked)."""
        value = table.get(key)
        if value is None:
            with self._lock:
                value = table.get(key)
                if value is None:
                    value = make()
                    table[key] = value
        return value

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
        def make() -> faiss.IndexFlat:
            index = flat_index(d_cluster, self.config.metric)
            index.add(self.centroids[d_cluster])
            return index

        return self._cached(self._coarse, d_cluster, make)

    def flat(self, dim: int) -> faiss.IndexFlat:
        """``IndexFlat`` over the (re-normalised) ``dim``-prefix, row order; built once per prefix."""
        if dim == self.config.dim:
            if self.vectors is None:
                self.vector_view()  # raises the clear error
            return self.vectors

        def make() -> faiss.IndexFlat:
            index = flat_index(dim, self.config.metric)
            view = self.vector_view()
            for start in range(0, self.num_rows, 65536):
                index.add(prefix(view[start : start + 65536], dim, self.config.metric))
            logger.debug("AdANNS: built the %d-dim prefix store (%.1f MiB)", dim, self.num_rows * dim * 4 / 2**20)
            return index

        return self._cached(self._flat, dim, make)

    def ivf(self, d_cluster: int, dim: int) -> faiss.IndexIVFFlat:
        """``IndexIVFFlat`` over the ``dim``-prefixes with the lists of the ``d_cluster`` quantizer.

        When ``d_cluster <= dim`` its quantizer is the ``d_cluster`` centroids behind a faiss transform that
        keeps the first ``d_cluster`` dims of the ``dim``-prefix query (for ``ip`` the same list ranking as
        the re-normalised ``d_cluster`` prefix: a positive rescaling), so ``search`` runs entirely in faiss
        like ``IndexIVFFlat.search`` (queries split over the threads). Otherwise the lists are chosen
        beforehand and scanned with ``search_preassigned`` (:meth:`preassigned`)."""

        def make() -> faiss.IndexIVFFlat:
            cfg = self.config
            metric = faiss_metric(cfg.metric)
            if d_cluster <= dim:
                coarse = self.coarse(d_cluster)
                if d_cluster < dim:
                    remap = faiss.RemapDimensionsTransform(dim, d_cluster, False)  # keeps the first d_cluster dims
                    quantizer = faiss.IndexPreTransform(remap, coarse)
                    quantizer.referenced_objects = [remap, coarse]
                else:
                    quantizer = coarse
            else:
                quantizer = flat_index(dim, metric)  # never searched: lists are preassigned
            index = faiss.IndexIVFFlat(quantizer, dim, cfg.nlist, metric)
            index.referenced_objects = [quantizer]
            index.is_trained = True
            index.parallel_mode = 0  # faiss's default: split the queries over the threads
            view, assign = self.vector_view(), self.list_of_rows(d_cluster)
            for start in range(0, self.num_rows, 65536):
                x = prefix(view[start : start + 65536], dim, cfg.metric)
                rows = np.arange(start, start + len(x), dtype=np.int64)
                lists = np.ascontiguousarray(assign[start : start + len(x)])
                index.add_core(len(x), _ptr(x), _ptr(rows), _ptr(lists))
            logger.debug("AdANNS: built the IVF store d_cluster=%d, d=%d (%.1f MiB)", d_cluster, dim,
                         self.num_rows * dim * 4 / 2**20)
            return index

        return self._cached(self._ivf, (d_cluster, dim), make)

    def preassigned(self, index: faiss.IndexIVF) -> faiss.IndexIVF:
        """The index to call ``search_preassigned`` on: ``index`` itself (faiss's serial scan) with one faiss
        thread, else a twin sharing its lists with ``parallel_mode`` 3 (``search_preassigned`` spreads the
        queries over the threads only in that mode, which costs a few times more with one thread)."""
        if faiss.omp_get_max_threads() <= 1:
            return index

        def make() -> faiss.IndexIVF:
            quantizer = flat_index(index.d, index.metric_type)
            if isinstance(index, faiss.IndexIVFPQ):
                twin = faiss.IndexIVFPQ(quantizer, index.d, index.nlist, index.pq.M, 8, index.metric_type)
                twin.by_residual = False
                twin.pq = index.pq
            else:
                twin = faiss.IndexIVFFlat(quantizer, index.d, index.nlist, index.metric_type)
            twin.replace_invlists(index.invlists, False)
            twin.referenced_objects = [quantizer, index]  # the lists stay owned by (and alive with) index
            twin.ntotal, twin.is_trained, twin.parallel_mode = index.ntotal, True, _PARALLEL_OVER_QUERIES
            return twin

        return self._cached(self._twins, id(index), make)

    def ivfpq(self, d_cluster: int) -> faiss.IndexIVFPQ:
        """``IndexIVFPQ`` (no residuals) over the stored codes with the lists of the ``d_cluster`` quantizer."""
        if self.codes is None:
            raise ValueError("scan='pq' needs PQ codes: build the index with pq_bytes")

        def make() -> faiss.IndexIVFPQ:
            cfg = self.config
            quantizer = flat_index(cfg.d_pq, cfg.metric)
            index = faiss.IndexIVFPQ(quantizer, cfg.d_pq, cfg.nlist, cfg.pq_bytes, 8, faiss_metric(cfg.metric))
            index.by_residual = False
            index.is_trained = True
            index.parallel_mode = 0
            faiss.copy_array_to_vector(np.ascontiguousarray(self.pq_codebooks.ravel()), index.pq.centroids)
            ids, offsets = self.ids[d_cluster], self.offsets[d_cluster]
            for lst in range(cfg.nlist):
                rows = np.ascontiguousarray(ids[offsets[lst] : offsets[lst + 1]], dtype=np.int64)
                if len(rows):
                    codes = np.ascontiguousarray(self.codes[rows])
                    index.invlists.add_entries(lst, len(rows), _ptr(rows), _ptr(codes))
            index.ntotal = self.num_rows
            return index

        return self._cached(self._ivfpq, d_cluster, make)

    def pq(self) -> faiss.IndexPQ:
        """``IndexPQ`` over the stored codes (row order): faiss's exhaustive PQ scan, used when every list is
        probed."""
        if self.codes is None:
            raise ValueError("scan='pq' needs PQ codes: build the index with pq_bytes")

        def make() -> faiss.IndexPQ:
            cfg = self.config
            index = faiss.IndexPQ(cfg.d_pq, cfg.pq_bytes, 8, faiss_metric(cfg.metric))
            faiss.copy_array_to_vector(np.ascontiguousarray(self.pq_codebooks.ravel()), index.pq.centroids)
            faiss.copy_array_to_vector(np.ascontiguousarray(self.codes.ravel()), index.codes)
            index.ntotal = self.num_rows
            index.is_trained = True
            return index

        return self._cached(self._pq, 0, make)

    def hnsw(self, dim: int) -> faiss.IndexHNSW:
        """``IndexHNSW`` walking the stored graph of the ``dim``-prefix over the prefix store (shared, not copied)."""
        if dim not in self.graphs:
            raise ValueError(f"scan='hnsw' needs a graph on the d_search prefix; graphs exist on {sorted(self.graphs)} dims")

        def make() -> faiss.IndexHNSW:
            store = self.flat(dim)
            arrays = self.graphs[dim]
            entry_point, max_level, m, ef_construction = (int(v) for v in arrays["header"])
            index = faiss.IndexHNSW(store, m)
            index.own_fields = False
            index.referenced_objects = [store]  # keep the store alive as long as the graph index
            graph = index.hnsw
            for name in ("levels", "offsets", "neighbors", "assign_probas", "cum_nneighbor_per_level"):
                faiss.copy_array_to_vector(np.ascontiguousarray(arrays[name]), getattr(graph, name))
            graph.entry_point, graph.max_level, graph.efConstruction = entry_point, max_level, ef_construction
            index.ntotal = self.num_rows
            index.is_trained = True
            return index

        return self._cached(self._hnsw, dim, make)

    def keep_only(self, s: SearchSettings) -> None:
        """Drop every derived faiss structure plan ``s`` does not use (after tuning built many)."""
        with self._lock:
            self._ivf = {key: v for key, v in self._ivf.items() if s.scan == "flat" and key == (s.d_cluster, s.d_search)}
            self._hnsw = {d: v for d, v in self._hnsw.items() if s.scan == "hnsw" and d == s.d_search}
            self._flat = {d: v for d, v in self._flat.items()
                          if (s.scan in ("exact", "hnsw") and d == s.d_search) or d == s.d_rerank}
            self._ivfpq = {dc: v for dc, v in self._ivfpq.items() if s.scan == "pq" and dc == s.d_cluster}
            if not (s.scan == "pq" and s.nprobe >= self.config.nlist):
                self._pq = {}
            kept = {id(v) for v in [*self._ivf.values(), *self._ivfpq.values()]}
            self._twins = {key: v for key, v in self._twins.items() if key in kept}

    def graph_bytes(self, dim: int) -> int:
        """Bytes of the stored graph of the ``dim``-prefix (levels, offsets, neighbours)."""
        return sum(a.nbytes for a in self.graphs[dim].values())

    def memory(self) -> dict[str, int]:
        """Bytes held now: stored arrays and every derived faiss structure built so far."""
        n = self.num_rows
        out = {"vectors": n * self.config.dim * 4 if self.vectors is not None else 0,
               "lists": sum(a.nbytes for a in self.ids.values()) + sum(a.nbytes for a in self.offsets.values()),
               "codes": self.codes.nbytes if self.codes is not None else 0}
        for d in sorted(self.graphs):
            out[f"hnsw graph d={d}"] = self.graph_bytes(d)
        for (dc, d) in self._ivf:
            out[f"ivf_flat d_cluster={dc} d={d}"] = n * (d * 4 + 8)
        for d in self._flat:
            out[f"flat d={d}"] = n * d * 4
        for dc in self._ivfpq:
            out[f"ivf_pq d_cluster={dc}"] = n * (self.config.pq_bytes + 8)
        if self._pq:
            out["pq (exhaustive)"] = n * self.config.pq_bytes
        return out

    def plan_bytes(self, s: SearchSettings) -> float:
        """Bytes per vector that plan ``s`` needs if it were the only one served: what it scans (a prefix
        store, IVF lists + their vectors, PQ codes, a graph + its prefix store) and what it re-ranks on."""
        n, cfg = max(self.num_rows, 1), self.config
        if s.scan == "exact":
            scanned = {s.d_search}
            extra = 0.0
        elif s.scan == "hnsw":
            scanned = {s.d_search}
            extra = self.graph_bytes(s.d_search) / n if s.d_search in self.graphs else 0.0
        elif s.scan == "pq":
            scanned, extra = set(), cfg.pq_bytes + 8.0
        else:
            scanned, extra = {s.d_search}, 8.0
        if s.d_rerank:
            scanned.add(s.d_rerank)
        return extra + 4.0 * sum(scanned)

    # ------------------------------------------------------------------ build
    def train(self, sample: np.ndarray) -> None:
        """k-means centroids on each ``d_cluster`` prefix, OPQ rotation + PQ codebooks on the ``d_pq`` prefix."""
        cfg = self.config
        for d_cluster in cfg.d_clusters:
            self._train_quantizer(d_cluster, sample)
        if cfg.pq_bytes is not None:
            xp = prefix(sample, cfg.d_pq, cfg.metric)
            if len(xp) < 256:
                raise ValueError(
                    f"pq_bytes needs at least 256 training vectors (8-bit codebooks), got {len(xp)}; "
                    "raise train_size or index more rows"
                )
            opq = faiss.OPQMatrix(cfg.d_pq, cfg.pq_bytes)
            opq.niter = cfg.opq_iterations
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

    def _train_quantizer(self, d_cluster: int, sample: np.ndarray) -> None:
        """k-means centroids on the ``d_cluster`` prefix of ``sample``. The quantizer on all dims -- the rigid IVF
        a faiss user attaches -- is trained exactly as faiss's ``IndexIVFFlat.train`` trains its own (faiss's
        clustering parameters for that metric, its seed and subsampling): on the same rows it gives the same
        lists, so the rigid IVF plans are that index, not a variant of it."""
        cfg = self.config
        xc = prefix(sample, d_cluster, cfg.metric)
        if cfg.nlist == 1:
            centroids = xc.mean(axis=0, keepdims=True)
        elif d_cluster == cfg.dim:
            metric = faiss_metric(cfg.metric)
            ivf = faiss.IndexIVFFlat(flat_index(d_cluster, metric), d_cluster, cfg.nlist, metric)
            params = ivf.cp  # faiss's defaults for an IVF of this metric (spherical for inner product)
            params.min_points_per_centroid = 1  # small corpora are legitimate; faiss would only warn
            clustering = faiss.Clustering(d_cluster, cfg.nlist, params)
            clustering.train(xc, flat_index(d_cluster, metric))
            centroids = faiss.vector_to_array(clustering.centroids).reshape(cfg.nlist, d_cluster)
        else:
            kmeans = faiss.Kmeans(
                d_cluster, cfg.nlist, niter=20, seed=cfg.seed, spherical=cfg.metric == "ip", verbose=False,
                min_points_per_centroid=1,  # small corpora are legitimate; faiss would only warn
            )
            kmeans.train(xc)
            centroids = kmeans.centroids
        self.centroids[d_cluster] = np.ascontiguousarray(centroids, dtype=np.float32)

    def add_quantizer(self, d_cluster: int, sample: np.ndarray) -> None:
        """Train one more coarse quantizer on the ``d_cluster`` prefix of ``sample`` and assign every stored row."""
        with self._lock:
            self._train_quantizer(d_cluster, sample)
            view, lists = self.vector_view(), np.empty(self.num_rows, dtype=np.int64)
            for start in range(0, self.num_rows, 65536):
                _, got = self.coarse(d_cluster).search(prefix(view[start : start + 65536], d_cluster, self.config.metric), 1)
                lists[start : start + len(got)] = got[:, 0]
            self._set_lists(d_cluster, lists)

    def _set_lists(self, d_cluster: int, lists: np.ndarray) -> None:
        self.ids[d_cluster] = np.argsort(lists, kind="stable").astype(np.int64, copy=False)
        self.offsets[d_cluster] = np.concatenate(
            [[0], np.cumsum(np.bincount(lists, minlength=self.config.nlist))]).astype(np.int64)

    def add_graph(self, dim: int, m: int, ef_construction: int) -> None:
        """Build the HNSW graph (faiss ``IndexHNSWFlat``, ``M = m``, ``efConstruction = ef_construction``) over
        the ``dim``-prefixes of the stored vectors and keep its arrays (the temporary copy of the prefixes is
        freed). A progress bar shows from 200,000 rows on (a build of minutes); the time is logged.

        The full-dim graph is built in one ``add`` of the stored vectors as they are (already re-normalised for
        ``ip``): the graph a faiss user gets from ``IndexHNSWFlat(dim, m).add(vectors)``, bit for bit (faiss's
        build does not depend on its thread count; normalising twice or adding in batches would change it)."""
        from tqdm.auto import tqdm

        started = time.perf_counter()
        with self._lock:
            index = faiss.IndexHNSWFlat(dim, m, faiss_metric(self.config.metric))
            index.hnsw.efConstruction = ef_construction
            view = self.vector_view()
            if dim == self.config.dim:  # the stored vectors as they are, in one add
                batches: Any = [np.ascontiguousarray(view)]
            else:
                batches = (prefix(view[start : start + 65536], dim, self.config.metric)
                           for start in range(0, self.num_rows, 65536))
            with tqdm(total=self.num_rows, desc=f"AdANNS: HNSW graph on {dim} dims", unit="row",
                      disable=self.num_rows < 200_000) as bar:
                for batch in batches:
                    index.add(batch)
                    bar.update(len(batch))
            graph = index.hnsw
            arrays = {name: faiss.vector_to_array(getattr(graph, name)).astype(dtype, copy=False)
                      for name, dtype in GRAPH_ARRAYS.items() if name != "header"}
            arrays["header"] = np.array([graph.entry_point, graph.max_level, m, ef_construction], dtype=np.int64)
            self.graphs[dim] = arrays
            self._hnsw.pop(dim, None)
            logger.info("AdANNS: built the HNSW graph on %d dims (M=%d, efConstruction=%d, %.1f MiB) in %.1f s", dim,
                        m, ef_construction, self.graph_bytes(dim) / 2**20, time.perf_counter() - started)

    def drop_structure(self, *, d_cluster: int | None = None, graph: int | None = None) -> None:
        """Forget a stored quantizer (its centroids and lists) or graph, and what was derived from it."""
        with self._lock:
            if d_cluster is not None:
                for table in (self.centroids, self.ids, self.offsets, self._coarse, self._ivfpq):
                    table.pop(d_cluster, None)
                self._ivf = {key: v for key, v in self._ivf.items() if key[0] != d_cluster}
                self._twins = {}
            if graph is not None:
                self.graphs.pop(graph, None)
                self._hnsw.pop(graph, None)

    def add_all(self, source: VectorSource, *, batch_size: int, bar: Any) -> None:
        """Assign every row to its lists, store the vectors and PQ codes; one pass over the source."""
        cfg, n = self.config, source.num_rows
        # list numbers fit int32 (half the memory of faiss's int64 labels; a stable sort orders them the same)
        assign = {dc: np.empty(n, dtype=np.int32) for dc in cfg.d_clusters}
        view = None
        if cfg.store_vectors:  # sized once (no doubling reallocations), filled batch by batch
            self.vectors = flat_index(cfg.dim, cfg.metric)
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
            batch = None  # freed before the next read: one batch alive at a time
        if self.vectors is not None:
            self.vectors.ntotal = n
        for dc in list(assign):  # each assignment freed once its lists are sorted
            self._set_lists(dc, assign.pop(dc))
        self.__dict__.pop("_encoder", None)
        for dim in cfg.graph_dims:
            self.add_graph(dim, cfg.graph_m(dim), cfg.ef_construction(dim))

    def set_graph(self, dim: int, arrays: dict[str, np.ndarray]) -> None:
        """Serve the graph ``arrays`` (as :meth:`add_graph` keeps them) for the ``dim`` prefix from now on."""
        with self._lock:
            self.graphs[dim] = arrays
            self._hnsw.pop(dim, None)

    # ------------------------------------------------------------------ search
    def _query_prefix(self, queries: np.ndarray, dim: int) -> np.ndarray:
        """The ``dim``-prefix of ``queries``, the full-dim query rows that probe / scan / rerank take, as
        :func:`~hf_ada.adanns.vectors.search_queries` gives them (unit length for ``ip``): their own full-dim
        prefix."""
        return queries if dim == self.config.dim else prefix(queries, dim, self.config.metric)

    def probe(self, queries: np.ndarray, d_cluster: int, nprobe: int) -> np.ndarray:
        """(nq, nprobe) lists chosen by the queries' ``d_cluster`` prefix."""
        if nprobe >= self.config.nlist:
            return np.tile(np.arange(self.config.nlist, dtype=np.int64), (len(queries), 1))
        xq = self._query_prefix(queries, d_cluster)
        lists = np.empty((len(xq), nprobe), dtype=np.int64)  # faiss's C call: the Python wrapper's checks cost
        distances = np.empty((len(xq), nprobe), dtype=np.float32)  # as much as a one-query probe
        self.coarse(d_cluster).search_c(len(xq), _ptr(xq), nprobe, _ptr(distances), _ptr(lists))
        return lists

    def scan(self, queries: np.ndarray, k: int, s: SearchSettings) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (similarities, rows) of the scan stage; -inf / -1 where fewer candidates exist."""
        cfg = self.config
        if s.scan == "exact":
            scores, rows = self.flat(s.d_search).search(self._query_prefix(queries, s.d_search), k)
        elif s.scan == "hnsw":
            scores, rows = self.hnsw(s.d_search).search(self._query_prefix(queries, s.d_search), k,
                                                        params=search_params("hnsw", s.ef_search))
        elif s.scan == "pq" and s.nprobe >= cfg.nlist:  # every list: faiss's exhaustive PQ scan
            xq = self.rotate(self._query_prefix(queries, cfg.d_pq))
            scores, rows = self.pq().search(xq, k)
        elif s.scan == "flat" and s.d_cluster <= s.d_search:  # faiss chooses the lists and scans them
            scores, rows = self.ivf(s.d_cluster, s.d_search).search(self._query_prefix(queries, s.d_search), k,
                                                                     params=search_params("ivf", min(s.nprobe, cfg.nlist)))
        else:
            lists = self.probe(queries, s.d_cluster, s.nprobe)
            if s.scan == "pq":
                index = self.ivfpq(s.d_cluster)
                xq = self.rotate(self._query_prefix(queries, cfg.d_pq))
            else:
                index = self.ivf(s.d_cluster, s.d_search)
                xq = self._query_prefix(queries, s.d_search)
            scores, rows = _search_preassigned(self.preassigned(index), xq, k, lists)
        if cfg.metric == "l2":
            scores = -scores
        missing = rows < 0
        if missing.any():  # fewer candidates than k: faiss's filler score -> -inf (in place: faiss's own array)
            scores[missing] = -np.inf
        return scores, rows

    def rotate(self, x: np.ndarray) -> np.ndarray:
        """``x @ opq_rotation.T`` computed by faiss (its OpenMP threads), not by numpy, whose spinning BLAS
        threads would take the cores from the faiss scan that follows."""
        rotation = self._rotation
        if rotation is None or rotation[0] is not self.opq_rotation:  # built once per rotation
            transform = faiss.LinearTransform(self.config.d_pq, self.config.d_pq, False)
            faiss.copy_array_to_vector(np.ascontiguousarray(self.opq_rotation, dtype=np.float32).ravel(),
                                       transform.A)
            transform.is_trained = True
            rotation = self._rotation = (self.opq_rotation, transform)  # one tuple: readers see old or new
        return rotation[1].apply(np.ascontiguousarray(x, dtype=np.float32))

    def rerank(self, queries: np.ndarray, rows: np.ndarray, d_rerank: int) -> np.ndarray:
        """Exact similarity on the ``d_rerank`` prefix for the given rows (-1 -> -inf), fused in faiss."""
        cfg = self.config
        index = self.flat(d_rerank)
        q = self._query_prefix(queries, d_rerank)
        missing = rows < 0
        any_missing = bool(missing.any())
        safe = np.ascontiguousarray(np.where(missing, 0, rows) if any_missing else rows, dtype=np.int64)
        out = np.empty(safe.shape, dtype=np.float32)
        index.compute_distance_subset(len(q), _ptr(q), safe.shape[1], _ptr(out), _ptr(safe))
        if cfg.metric == "l2":
            np.negative(out, out=out)
        if any_missing:
            out[missing] = -np.inf
        return out
