"""AdANNS: adaptive approximate nearest-neighbour search over Matryoshka embeddings.

Reference: Rege et al., "AdANNS: A Framework for Adaptive Semantic Search" (NeurIPS 2023). A Matryoshka
embedding carries a usable representation in every prefix of its dimensions; AdANNS uses a cheap low-dim
prefix where the pipeline may be approximate and a richer one where it may not. One index holds several
structures over prefixes -- IVF lists learned on a ``d_cluster`` prefix and scanned on ``d_search`` dims,
OPQ+PQ codes, HNSW graphs over a prefix, exact scans -- each optionally re-ranked exactly on ``d_rerank``
dims. The rigid faiss structures (flat, full-dim IVF, full-dim HNSW) are plans of the same index, and
:meth:`AdANNSIndex.tune` picks the fastest plan meeting the asked quality (:mod:`hf_ada.adanns.tuning`).

With ``metric="ip"`` every prefix is re-normalised to unit length (database and queries); the OPQ
rotation is applied to both sides. FLOPs are multiply-adds per query, like the paper.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets.search import BaseIndex, BatchedSearchResults, SearchResults
from tqdm.auto import tqdm

from ..common.artifact import ArtifactError, HubArtifactMixin
from .card import card_data, card_values
from .config import FAISS_EF_CONSTRUCTION, SEARCH_KEYS, AdANNSConfig, SearchSettings
from .cost import plan_cost
from .serialization import ARRAYS_NAME, TUNING_NAME, VECTORS_NAME, read_storage, write_storage
from .storage import IndexStorage
from .tuning import (
    EF_LADDER,
    EF_SEARCH,
    WIDER_BUILD_MIN_SPEEDUP,
    best_time,
    choose_plan,
    default_grid,
    describe_plan,
    faiss_threads,
    full_graph_builds,
    measure_plans,
    nearest_threads,
    pareto_front,
    refine_grid,
    relevant_sets,
    retime_front,
    retrieval_metrics,
    speedups_at_recalls,
    standard_error,
    time_fronts,
    tuning_threads,
)
from .vectors import ArrayVectorSource, VectorSource, check_finite, prefix, search_queries

logger = logging.getLogger(__name__)

__all__ = ["AdANNSIndex", "VectorSource", "ArrayVectorSource", "SearchSettings", "prefix", "CONFIG_NAME",
           "retrieval_metrics", "pareto_front"]

CONFIG_NAME = "config.json"


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


#: build_candidates builds structures on the shortest prefixes whose exact scan, re-ranked at full dim, keeps
#: these shares of exact search's top k: quantizer and graph for the highest, a graph for the others
CANDIDATE_PREFIX_SHARES = (0.99, 0.95)


def _ladder(dim: int) -> list[int]:
    """Prefixes 16, 32, 64, ... below ``dim``: the candidates for a short-prefix structure."""
    out, d = [], 16
    while d < dim:
        out.append(d)
        d *= 2
    return out


def _check_relevant(relevant_ids: Any, num_queries: int, num_rows: int) -> list[set[int]]:
    """``relevant_ids`` as sets of row ids; refuses a wrong length, an empty set or a row out of range."""
    try:
        relevant = relevant_sets(relevant_ids)
    except (TypeError, ValueError) as err:
        raise ValueError(f"relevant_ids must hold one iterable of row ids per query ({err})") from err
    if len(relevant) != num_queries:
        raise ValueError(f"relevant_ids must have one entry per query ({num_queries}), got {len(relevant)}")
    for i, rel in enumerate(relevant):
        if not rel:
            raise ValueError(f"relevant_ids[{i}] is empty: every tuning query needs at least one relevant row")
        if min(rel) < 0 or max(rel) >= num_rows:
            raise ValueError(f"relevant_ids[{i}] holds a row outside [0, {num_rows}): {sorted(rel)[:5]}")
    return relevant
_MAX_BUFFER = 4_000_000  # query x candidate cells kept at once (bounds search memory)
_REFINE_ROUNDS = 6  # walks of the fine nprobe / efSearch ladders from the front (each adds one step each way)


class AdANNSIndex(BaseIndex, HubArtifactMixin, card_template="adanns_index"):
    """A :class:`datasets.search.BaseIndex` implementing AdANNS-IVF, AdANNS-OPQ, their composite, HNSW
    graphs over prefixes, exact and rigid plans, all scanned by faiss kernels.

    Build with :meth:`build` (or ``Dataset.add_adanns_index``), search with :meth:`search` /
    :meth:`search_batch` (per-call ``d_cluster``, ``d_search``, ``nprobe``, ``d_rerank``, ``rerank_k``,
    ``scan``, ``ef_search``, or ``budget_flops`` / ``target_recall`` / ``time_budget_ms`` answered from the tuned plans),
    choose the plan with :meth:`tune`, persist with ``save_pretrained`` / ``from_pretrained`` /
    ``push_to_hub`` (a Hub *dataset* repo). Scores follow faiss: similarities (descending) for ``ip``,
    squared distances (ascending) for ``l2``.
    """

    artifact_kind = "AdANNS index"
    config_name = CONFIG_NAME
    file_patterns = (VECTORS_NAME, ARRAYS_NAME, TUNING_NAME)  # every file a save writes (with config + card)
    repo_type = "dataset"

    def __init__(self, config: AdANNSConfig, storage: IndexStorage | None = None, tuning: dict[str, Any] | None = None):
        self.config = config
        self.storage = storage or IndexStorage(config)
        self.tuning: dict[str, Any] = tuning or {"pareto_front": [], "time_front": [], "plan": None}
        self._checked_settings: dict[tuple, SearchSettings] = {}

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
        """Train the coarse quantizers (and OPQ/PQ) on a sample, then add every vector in one streamed pass.

        Memory: one float32 copy of the vectors (inside a faiss ``IndexFlat``; none for a PQ-only index),
        the lists (8 bytes per row per quantizer) and the PQ codes.
        """
        if isinstance(source, np.ndarray):
            source = ArrayVectorSource(source)
        if device not in (None, "cpu", -1):
            raise ValueError(f"device must be None or 'cpu' (faiss-cpu build), got {device!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        n, dim = source.num_rows, source.dim
        if n == 0:
            raise ValueError("the vectors hold no rows: there is nothing to index")
        if dim != config.dim:
            raise ValueError(f"config.dim ({config.dim}) does not match the vectors' dim ({dim})")
        if config.nlist is not None and config.nlist > n:
            raise ValueError(f"nlist must be <= the number of rows ({n}), got {config.nlist}")
        config.num_rows = n
        if not config.is_complete:
            config.fill_defaults(n)
        config.validate()
        index = cls(config)
        size = min(n, config.train_size or min(n, max(256 * config.nlist, 50_000)))
        rows = np.sort(np.random.default_rng(config.seed).choice(n, size=size, replace=False))
        sample = source.take(rows)
        check_finite(sample, "the embeddings")
        index.storage.train(sample)
        del sample
        with tqdm(total=n, desc="AdANNS index", unit="vec", disable=not show_progress) as bar:
            index.storage.add_all(source, batch_size=batch_size, bar=bar)
        return index

    # ------------------------------------------------------------------ accessors
    @property
    def num_rows(self) -> int:
        return int(self.config.num_rows)

    @property
    def centroids(self) -> np.ndarray:
        """The k-means centroids of the default quantizer, shape (nlist, d_cluster)."""
        return self.storage.centroids[self.config.d_cluster].copy()

    @property
    def list_sizes(self) -> np.ndarray:
        return np.diff(self.storage.offsets[self.config.d_cluster])

    def list_rows(self, list_id: int, d_cluster: int | None = None) -> np.ndarray:
        """Dataset rows assigned to inverted list ``list_id`` (of the ``d_cluster`` quantizer)."""
        dc = d_cluster or self.config.d_cluster
        offsets = self.storage.offsets[dc]
        return self.storage.ids[dc][offsets[list_id] : offsets[list_id + 1]]

    @property
    def pareto_front(self) -> list[dict[str, Any]]:
        """Tuned recall-vs-FLOPs front (empty before :meth:`tune`)."""
        return self.tuning.get("pareto_front", [])

    @property
    def plan(self) -> dict[str, Any] | None:
        """The plan :meth:`tune` chose (settings, ``reason``, measured recall / queries/s), or ``None``: the one
        chosen from the times measured nearest the faiss thread count in effect (``tune`` times its contenders
        with one thread and with every core; ``faiss.omp_set_num_threads`` sets it per calling thread)."""
        by_threads = self.tuning.get("plans_at") or {}
        if by_threads:
            return by_threads[str(nearest_threads([int(t) for t in by_threads], faiss_threads()))]
        return self.tuning.get("plan")

    def memory(self) -> dict[str, int]:
        """Bytes of every stored array and every faiss structure built so far (see ``IndexStorage.memory``)."""
        return self.storage.memory()

    # ------------------------------------------------------------------ search
    def settings(self, *, untuned: bool = False, **overrides: Any) -> SearchSettings:
        """The default plan (the tuned one if any and not ``untuned``, else the config's) with ``overrides``
        applied and validated."""
        unknown = set(overrides) - set(SEARCH_KEYS)
        if unknown:
            raise TypeError(
                f"unknown search arguments {sorted(unknown)}; allowed: {', '.join(SEARCH_KEYS)}, budget_flops, "
                "target_recall, time_budget_ms"
            )
        values = self.config.settings().as_dict() if untuned else self.plan_settings()
        values.update({k: v for k, v in overrides.items() if v is not None or k == "d_rerank"})
        cfg = self.config
        try:  # the same settings on the same structures were checked before: reuse (a search's fixed cost)
            key = (tuple(values.items()), tuple(cfg.d_clusters), tuple(cfg.graph_dims), cfg.nlist, cfg.hnsw_m,
                   cfg.pq_bytes, cfg.d_pq, cfg.store_vectors, cfg.dim)
            hash(key)
        except TypeError:  # an unhashable value: check_settings names it
            return cfg.check_settings(values)
        checked = self._checked_settings.get(key)
        if checked is None:
            checked = cfg.check_settings(values)
            if len(self._checked_settings) > 4096:
                self._checked_settings.clear()
            self._checked_settings[key] = checked
        return checked

    def plan_settings(self) -> dict[str, Any]:
        """Search settings of the tuned plan, or of the config when not tuned."""
        plan = self.plan
        if plan:
            return {key: plan[key] for key in SEARCH_KEYS}
        return {key: getattr(self.config, key) for key in SEARCH_KEYS}  # = config.settings(), without the object

    def plan_memory(self, **overrides: Any) -> float:
        """Bytes per vector that a plan (the default one with ``overrides``) needs if it were the only one
        served (:meth:`IndexStorage.plan_bytes <hf_ada.adanns.storage.IndexStorage.plan_bytes>`)."""
        return self.storage.plan_bytes(self.settings(**overrides))

    def _check_queries(self, queries: Any, name: str = "queries") -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array (n_queries, {self.config.dim}), got shape {queries.shape}")
        if len(queries) == 0:
            raise ValueError(f"{name} must hold at least one query, got shape {queries.shape}")
        if queries.shape[1] != self.config.dim:
            raise ValueError(
                f"{name} have dim {queries.shape[1]} but the index was built on {self.config.dim}-dim embeddings"
            )
        return search_queries(queries, self.config.metric, name)

    def probe(self, queries: np.ndarray, nprobe: int | None = None, d_cluster: int | None = None) -> np.ndarray:
        """Inverted lists each query probes (chosen with its ``d_cluster`` prefix)."""
        queries = self._check_queries(queries)
        s = self.settings(nprobe=nprobe, d_cluster=d_cluster)
        return self.storage.probe(queries, s.d_cluster, s.nprobe)

    def candidates(self, queries: np.ndarray, nprobe: int | None = None) -> list[np.ndarray]:
        """Dataset rows scanned for each query: the members of the lists it probes."""
        return [np.concatenate([self.list_rows(l) for l in lists]) for lists in self.probe(queries, nprobe)]

    def _search_rows(self, queries: np.ndarray, k: int, s: SearchSettings) -> tuple[np.ndarray, np.ndarray]:
        scan_k = min(max(k, s.rerank_k), self.num_rows) if s.d_rerank else k
        scores, rows = self.storage.scan(queries, scan_k, s)
        if s.d_rerank:
            scores = self.storage.rerank(queries, rows, s.d_rerank)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            at = np.arange(len(order))[:, None]  # fancy indexing: take_along_axis costs more per call
            scores, rows = scores[at, order], rows[at, order]
        return scores[:, :k], rows[:, :k]

    def _resolve(self, overrides: dict[str, Any], **asked: Any) -> SearchSettings:
        asked = {key: value for key, value in asked.items() if value is not None}
        if not asked:
            return self.settings(**overrides)
        if overrides:
            raise ValueError(f"pass either {sorted(asked)} or explicit settings {sorted(overrides)}, not both")
        # after a load only the fronts are kept: the time front answers target_recall / time_budget_ms, the
        # FLOPs front budget_flops (every choice choose_plan can make lies on one of them)
        points = self.tuning.get("points") or [*self.tuning.get("time_front", []), *self.pareto_front]
        if not points:
            raise ValueError(f"{sorted(asked)[0]} needs a tuned index: call index.tune(queries, relevant_ids) first")
        plan = choose_plan(points, self.config.dim, **asked)
        return self.settings(**{key: plan[key] for key in SEARCH_KEYS})

    def search_batch(
        self,
        queries: Any,
        k: int = 10,
        budget_flops: float | None = None,
        *,
        target_recall: float | None = None,
        time_budget_ms: float | None = None,
        **overrides: Any,
    ) -> BatchedSearchResults:
        """Nearest rows for each query; returns ``(total_scores, total_indices)`` as numpy arrays.

        Without arguments the tuned :attr:`plan` is used (the config's settings before :meth:`tune`).
        Per-call overrides: ``d_cluster``, ``d_search``, ``nprobe``, ``d_rerank`` (``None`` disables
        re-ranking), ``rerank_k``, ``scan`` (``"flat"`` / ``"pq"`` / ``"exact"`` / ``"hnsw"``), ``ef_search``
        (HNSW walk width); they never change the index, so threads may search it concurrently. Or ask for a quality
        / cost, answered from the plans measured by :meth:`tune`: ``target_recall`` (the fastest plan
        reaching it), ``time_budget_ms`` (per query) or ``budget_flops`` (the most accurate plan within
        it). Missing results (fewer candidates than ``k``) are padded with index -1; a ``k`` above the number
        of rows is clamped to it (the result has ``min(k, num_rows)`` columns).
        """
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        k = min(int(k), self.num_rows)
        queries = self._check_queries(queries)
        s = self._resolve(overrides, budget_flops=budget_flops, target_recall=target_recall,
                          time_budget_ms=time_budget_ms)
        width = min(max(k, s.rerank_k if s.d_rerank else 0, 1), self.num_rows)
        chunk = max(1, _MAX_BUFFER // width)
        all_scores, all_rows = [], []
        for start in range(0, len(queries), chunk):
            scores, rows = self._search_rows(queries[start : start + chunk], k, s)
            if scores.shape[1] < k:
                pad = k - scores.shape[1]
                scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
                rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
            all_scores.append(scores)
            all_rows.append(rows)
        if len(all_scores) == 1:  # one chunk: no copy
            scores, rows = all_scores[0], all_rows[0]
        else:
            scores, rows = np.concatenate(all_scores), np.concatenate(all_rows)
        if self.config.metric == "l2":
            scores = -scores  # back to squared distances (ascending), as faiss reports them
        return BatchedSearchResults(scores, rows.astype(np.int64, copy=False))

    def search(self, query: Any, k: int = 10, budget_flops: float | None = None, **kwargs: Any) -> SearchResults:
        """Nearest rows for one query (1-D or (1, dim)); see :meth:`search_batch` for the options."""
        query = np.asarray(query, dtype=np.float32)
        if query.ndim == 2 and query.shape[0] == 1:
            query = query[0]
        if query.ndim != 1:
            raise ValueError(f"query must be a 1-D array of dim {self.config.dim} (or shape (1, dim)), got {query.shape}")
        scores, rows = self.search_batch(query[None, :], k, budget_flops=budget_flops, **kwargs)
        return SearchResults(scores[0], rows[0])

    # ------------------------------------------------------------------ compute and plan choice
    def cost(self, **overrides: Any) -> dict[str, float]:
        """FLOPs (multiply-adds) per query of a plan, by stage and in total (:func:`~hf_ada.adanns.cost.plan_cost`)."""
        return plan_cost(self.config, self.settings(**overrides), self.num_rows)

    def default_grid(self) -> list[dict[str, Any]]:
        """Plans :meth:`tune` measures by default (:func:`~hf_ada.adanns.tuning.default_grid`)."""
        return default_grid(self.config)

    def tune(
        self,
        queries: np.ndarray,
        relevant_ids: Sequence[Iterable[int]],
        *,
        k: int = 10,
        grid: Sequence[dict[str, Any]] | None = None,
        target_recall: float | None = None,
        time_budget_ms: float | None = None,
        budget_flops: float | None = None,
        repeats: int = 2,
        structures: bool | None = None,
        refine: bool | None = None,
        threads: Sequence[int] | None = None,
        show_progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Measure every plan of ``grid`` on held-out tuning ``queries`` (``relevant_ids[i]``: the rows
        relevant to query ``i``) -- recall@k, MRR@k, FLOPs/query, bytes/vector and wall-clock queries/s (best
        of ``repeats`` runs) -- then choose the plan :meth:`search` uses from now on
        (:func:`~hf_ada.adanns.tuning.choose_plan`: the fastest reaching ``target_recall``, the most
        accurate within ``time_budget_ms`` or ``budget_flops``, or by default the fastest within 1% of exact
        flat search's recall). The choice and its reason are logged, kept in :attr:`plan` and saved with
        the index (card included). Returns every measured point.

        ``structures`` (default: when no ``grid`` is given) first builds the candidate structures from the
        stored vectors (:meth:`build_candidates`: the rigid full-dim IVF quantizer and HNSW graph, a quantizer
        and a graph on the shortest prefix that keeps 99% of exact search's results on these queries, and a
        graph on the shortest that keeps 95% of them),
        measures the default grid over all of them, then keeps only the stored structures some plan on the
        recall/time front uses (the plan's reason says what was built, kept and dropped).

        ``refine`` (default: when no ``grid`` is given) then measures the neighbouring nprobe / efSearch
        settings of every plan on the recall/time front on finer ladders
        (:func:`~hf_ada.adanns.tuning.refine_grid`), until the front asks for nothing new.

        ``threads``: the faiss thread counts the contenders are also timed at (default
        :func:`~hf_ada.adanns.tuning.tuning_threads`: one thread, the number in effect and every core). Plans
        gain unequally from threads, so a plan is chosen per thread count, and searches use the one timed
        nearest the faiss thread count in effect when they run.

        Use queries that are not your test queries: the plan is fitted to them.
        """
        queries = self._check_queries(queries)
        relevant = _check_relevant(relevant_ids, len(queries), self.num_rows)
        return self._tune(queries, relevant, k=k, grid=grid, quick=False,
                          structures=grid is None if structures is None else structures,
                          refine=grid is None if refine is None else refine, repeats=repeats, threads=threads,
                          show_progress=show_progress, target_recall=target_recall, time_budget_ms=time_budget_ms,
                          budget_flops=budget_flops)

    def _tune(self, queries: np.ndarray, relevant: list[set[int]], *, k: int, grid: Sequence[dict[str, Any]] | None,
              quick: bool, structures: bool, refine: bool, repeats: int, show_progress: bool,
              threads: Sequence[int] | None = None, **choice: Any) -> list[dict[str, Any]]:
        if not _positive_int(k):
            raise ValueError(f"k must be a positive int, got {k!r}")
        if not _positive_int(repeats):
            raise ValueError(f"repeats must be a positive int, got {repeats!r}")
        if threads is None:
            threads = tuning_threads()
        elif isinstance(threads, (str, bytes)) or not isinstance(threads, Iterable) \
                or not all(_positive_int(t) for t in threads):
            raise ValueError(f"threads must be a list of positive ints (faiss thread counts), got {threads!r}")
        current = faiss_threads()
        built = self.build_candidates(queries, k=k) if structures else ""
        grid = list(grid) if grid is not None else default_grid(self.config, quick=quick)
        measured = points = measure_plans(self, queries, relevant, grid, k=k, repeats=repeats,
                                          show_progress=show_progress)
        retime_front(self, queries, points, k=k, rounds=max(repeats, 3))
        for _ in range(_REFINE_ROUNDS if refine else 0):  # a finer nprobe / efSearch ladder near the front
            extra = refine_grid(points, self.config.nlist)
            if not extra:
                break
            points += measure_plans(self, queries, relevant, extra, k=k, repeats=repeats, show_progress=False)
        if refine:
            retime_front(self, queries, points, k=k, rounds=max(repeats, 3))
        others = sorted({int(t) for t in threads} - {current})
        for t in others:  # the same contenders (and those near the front there) at the other thread counts
            retime_front(self, queries, points, k=k, rounds=max(repeats, 3), threads=t)
        if built:
            points, built = self._keep_front_structures(points, built)
        plans = {str(t): choose_plan(points, self.config.dim, num_queries=len(queries), threads=t, **choice)
                 for t in sorted({current, *others})}
        for plan in plans.values():
            if built:
                plan["reason"] += f"; {built}"
        plan = plans[str(current)]
        self.tuning = {"k": k, "num_queries": len(queries), "points": points,
                       "pareto_front": pareto_front(points), "time_front": time_fronts(points),
                       "plan": plan, **({"plans_at": plans} if others else {})}
        self.storage.keep_only(self.settings())  # free the derived stores only other plans used
        for t, chosen in plans.items():
            logger.info("AdANNS plan (%s faiss thread%s): %s -> %s", t, "" if t == "1" else "s", describe_plan(chosen),
                        chosen["reason"])
        return measured

    def add_quantizer(self, d_cluster: int) -> None:
        """Train a coarse quantizer (``nlist`` k-means centroids) on the ``d_cluster`` prefix of the stored
        vectors and assign every row; its IVF plans become available (``d_cluster=`` per search)."""
        cfg = self.config
        if d_cluster in cfg.d_clusters:
            return
        if not _positive_int(d_cluster) or d_cluster > cfg.dim:
            raise ValueError(f"d_cluster must be an int in [1, {cfg.dim}], got {d_cluster!r}")
        size = min(self.num_rows, cfg.train_size or min(self.num_rows, max(256 * cfg.nlist, 50_000)))
        rows = np.sort(np.random.default_rng(cfg.seed).choice(self.num_rows, size=size, replace=False))
        self.storage.add_quantizer(d_cluster, self.storage.vector_view()[rows])
        cfg.extra_d_clusters = sorted({*cfg.extra_d_clusters, d_cluster})

    def add_graph(self, dim: int, m: int | None = None) -> None:
        """Build an HNSW graph (faiss ``IndexHNSWFlat``, ``M = m`` -- then every graph's -- or
        ``config.graph_m(dim)``, ``efConstruction = config.ef_construction(dim)``) over the ``dim``-prefix of the
        stored vectors; ``scan="hnsw", d_search=dim`` plans then walk it (``ef_search=`` per search)."""
        cfg = self.config
        if not _positive_int(dim) or dim > cfg.dim:
            raise ValueError(f"dim must be an int in [1, {cfg.dim}], got {dim!r}")
        if m is not None and (not _positive_int(m) or m < 2):
            raise ValueError(f"m must be an int >= 2, got {m!r}")
        if dim in cfg.graph_dims and (m is None or m == cfg.graph_m(dim)):
            return
        self.storage.vector_view()  # a clear error for a PQ-only index
        if m is not None and (m != cfg.hnsw_m or m != cfg.graph_m(cfg.dim)):
            rebuild = [other for other in cfg.graph_dims if cfg.graph_m(other) != m]
            cfg.hnsw_m, cfg.full_graph_m = m, None  # an M given here is every graph's M
            for other in rebuild:
                self.storage.add_graph(other, m, cfg.ef_construction(other))
        self.storage.add_graph(dim, cfg.graph_m(dim), cfg.ef_construction(dim))
        cfg.graph_dims = sorted({*cfg.graph_dims, dim})

    def build_candidates(self, queries: np.ndarray, *, k: int = 10) -> str:
        """Build the structures :meth:`tune` compares (needs the stored vectors; returns what it built): the
        rigid full-dim IVF quantizer and HNSW graph; a quantizer and a graph on the shortest prefix whose exact
        scan, re-ranked at full dim, keeps 99% of exact search's top ``k`` on ``queries``; and a graph on the
        shortest prefix keeping 95% (its walk, re-ranked at full dim, serves the mid-recall targets: a walk
        over fewer dims is cheaper per step, and the re-rank restores the order). A returned row counts as kept
        when its full-dim score is as good as exact search's k-th: rows tied with it (duplicates) are
        interchangeable, so a corpus with duplicate vectors is not mistaken for one whose prefixes lose
        neighbours."""
        cfg = self.config
        if not cfg.store_vectors:
            return ""
        before = (list(cfg.d_clusters), list(cfg.graph_dims))
        sign = -1.0 if cfg.metric == "l2" else 1.0  # similarities: higher is better
        kth = sign * self.search_batch(queries, k, scan="exact", d_search=cfg.dim, d_rerank=None)[0][:, -1:]
        slack = 1e-5 * np.maximum(1.0, np.abs(np.nan_to_num(kth, neginf=0.0)))
        short = {share: cfg.dim for share in CANDIDATE_PREFIX_SHARES}
        for d in _ladder(cfg.dim):
            scores = sign * self.search_batch(queries, k, scan="exact", d_search=d, d_rerank=cfg.dim, rerank_k=200)[0]
            kept = float(np.mean(scores >= kth - slack))
            for share in short:
                if short[share] == cfg.dim and kept >= share - 1e-12:
                    short[share] = d
            if all(v < cfg.dim for v in short.values()):
                break
        high, mid = short[max(short)], short[min(short)]
        for d in sorted({cfg.dim, high}):
            if cfg.nlist > 1:
                self.add_quantizer(d)
        full_build = self._choose_full_graph_build(queries, kth - slack, sign, k) \
            if cfg.full_graph_ef_construction is None and cfg.dim not in cfg.graph_dims else ""
        for d in sorted({cfg.dim, high, mid}):
            self.add_graph(d)
        quantizers = sorted(set(cfg.d_clusters) - set(before[0]))
        graphs = sorted(set(cfg.graph_dims) - set(before[1]))
        builds = ", ".join(f"{d}: M={cfg.graph_m(d)} efConstruction {cfg.ef_construction(d)}" for d in graphs)
        return (f"built for tuning: quantizers on {quantizers or 'no new'} dims and HNSW graphs on "
                f"{graphs or 'no new'} dims ({builds or '-'}{full_build}) (full dim: the rigid faiss structures, or a "
                f"measurably faster graph build; {high}: "
                f"the shortest prefix whose exact scan re-ranked at {cfg.dim} dims keeps {max(short):g} of exact "
                f"search's top {k} on these queries; {mid}: the shortest keeping {min(short):g}, a graph only)")

    def _choose_full_graph_build(self, queries: np.ndarray, kth: np.ndarray, sign: float, k: int) -> str:
        """Build the full-dim graph as faiss does by default (``hnsw_m`` neighbours, width
        :data:`FAISS_EF_CONSTRUCTION`) and the alternatives of :func:`~hf_ada.adanns.tuning.full_graph_builds`
        (wider, and wider with half the neighbours), walk the default at efSearch 16, 32, 64, 128, 256 (what a
        faiss user would try) and the others on the fine ladder up to 320 on ``queries`` (recall = the share of
        rows scoring at least exact search's k-th, ``kth``; time: best of two), and keep the alternative whose
        walk is fastest over the default's recalls (geometric mean of the speedups), provided it reaches *each*
        of them -- within its standard error over the queries -- as fast
        (:data:`~hf_ada.adanns.tuning.WIDER_BUILD_MIN_SPEEDUP`, :func:`~hf_ada.adanns.tuning.speedups_at_recalls`);
        otherwise the default. A wider build can walk better (larger corpora) or worse (small ones), fewer
        neighbours make each step cheaper and the graph smaller but can strand a walk; only a measurement on the
        data tells. Kept, the default is the graph a faiss user attaches and the rigid HNSW plans are that index,
        so a tuned index cannot lose to it. Sets ``config.full_graph_ef_construction`` / ``full_graph_m``;
        returns the reason's words."""
        cfg = self.config
        default = (cfg.hnsw_m, FAISS_EF_CONSTRUCTION)
        builds = full_graph_builds(cfg.hnsw_m, cfg.hnsw_ef_construction)
        if not builds:
            cfg.full_graph_m, cfg.full_graph_ef_construction = default
            return ""
        curves: dict[tuple[int, int], list[tuple[float, ...]]] = {}
        graphs: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        # the default build at the efSearch values a faiss user tries (16 ... 256); the others on the fine
        # ladder (a little beyond 256), so that each reaches those recalls without overshooting by a wide step
        user_walks = list(EF_SEARCH)
        for build in (default, *builds):
            self.storage.add_graph(cfg.dim, *build)
            cfg.graph_dims = sorted({*cfg.graph_dims, cfg.dim})
            graphs[build], curves[build] = self.storage.graphs[cfg.dim], []
            for ef in user_walks if build == default else [ef for ef in EF_LADDER if ef <= 1.25 * user_walks[-1]]:
                settings = {"scan": "hnsw", "d_search": cfg.dim, "ef_search": ef, "d_rerank": None}
                elapsed, (scores, _) = best_time(lambda: self.search_batch(queries, k, **settings), 2)
                hits = np.mean(sign * scores >= kth, axis=1)  # per query: the share of its top k found
                curves[build].append((float(np.mean(hits)), elapsed, standard_error(hits)))
        best, best_mean, words = default, 1.0, []
        for build in builds:
            speedups = speedups_at_recalls(curves[default], [point[:2] for point in curves[build]])
            worst = min(speedups, default=0.0)
            mean = float(np.exp(np.mean(np.log(np.maximum(speedups, 1e-9))))) if speedups else 0.0
            words.append(f"M={build[0]} efConstruction {build[1]}: {worst:.2f}-{max(speedups, default=0.0):.2f}x "
                         f"(geometric mean {mean:.2f}x)")
            if worst >= WIDER_BUILD_MIN_SPEEDUP and mean > best_mean:
                best, best_mean = build, mean
        self.storage.set_graph(cfg.dim, graphs[best])
        cfg.full_graph_m, cfg.full_graph_ef_construction = best
        return (f"; full dim: M={best[0]} efConstruction {best[1]}, of faiss's default M={default[0]} "
                f"efConstruction {default[1]} and builds whose walks reach the recalls of the default's at efSearch "
                f"{', '.join(map(str, user_walks))} (within their standard error) {'; '.join(words)} as fast, an "
                f"alternative kept when >= {WIDER_BUILD_MIN_SPEEDUP:g}x at each, the fastest on the whole")

    def _keep_front_structures(self, points: list[dict[str, Any]], built: str) -> tuple[list[dict[str, Any]], str]:
        """Drop the stored quantizers and graphs that no plan on the recall/time or recall/FLOPs front uses
        (every choice :func:`choose_plan` can make lies on one of them)."""
        cfg = self.config
        front = time_fronts(points) + pareto_front(points)  # target_recall / time (any thread count), FLOPs budgets
        used_q = {p["d_cluster"] for p in front if p["scan"] in ("flat", "pq")}
        used_g = {p["d_search"] for p in front if p["scan"] == "hnsw"}
        drop_q = [d for d in cfg.d_clusters if d not in used_q and d != cfg.d_cluster]
        drop_g = [d for d in cfg.graph_dims if d not in used_g]
        for d in drop_q:
            self.storage.drop_structure(d_cluster=d)
        for d in drop_g:
            self.storage.drop_structure(graph=d)
        cfg.extra_d_clusters = [d for d in cfg.extra_d_clusters if d not in drop_q]
        cfg.graph_dims = [d for d in cfg.graph_dims if d not in drop_g]
        kept = [p for p in points if not ((p["scan"] in ("flat", "pq") and p["d_cluster"] in drop_q)
                                          or (p["scan"] == "hnsw" and p["d_search"] in drop_g))]
        if drop_q or drop_g:
            built += f"; dropped (no plan on the recall/time or FLOPs front uses them): quantizers {drop_q}, graphs {drop_g}"
        return kept, built

    def quick_grid(self) -> list[dict[str, Any]]:
        """The smaller grid :meth:`tune_on_rows` measures by default (:func:`~hf_ada.adanns.tuning.default_grid`
        with ``quick=True``)."""
        return default_grid(self.config, quick=True)

    def tune_on_rows(self, source: VectorSource | np.ndarray, size: int = 256, *, k: int = 10, seed: int = 0,
                     grid: Sequence[dict[str, Any]] | None = None, structures: bool | None = None,
                     **choice: Any) -> list[dict[str, Any]]:
        """:meth:`tune` without labels: ``size`` rows sampled from ``source`` are the queries and exact
        search's top ``k`` the truth (``grid``: :meth:`quick_grid` over the candidate structures unless given;
        ``choice``: ``target_recall`` / ``time_budget_ms`` / ``budget_flops``)."""
        if isinstance(source, np.ndarray):
            source = ArrayVectorSource(source)
        if not _positive_int(size):
            raise ValueError(f"size must be a positive int (rows used as tuning queries), got {size!r}")
        rows = np.sort(np.random.default_rng(seed).choice(source.num_rows, size=min(size, source.num_rows),
                                                          replace=False))
        queries = self._check_queries(source.take(rows))
        _, truth = self.search_batch(queries, k, scan="exact", d_search=self.config.dim, d_rerank=None)
        relevant = [set(t.tolist()) - {-1} for t in truth]
        return self._tune(queries, relevant, k=k, grid=grid, quick=True,
                          structures=grid is None if structures is None else structures, refine=grid is None, repeats=2,
                          show_progress=False, **choice)

    # ------------------------------------------------------------------ artifact protocol
    def _write_files(self, folder: Path) -> dict[str, Any]:
        tuning = {key: value for key, value in self.tuning.items() if key != "points"}
        write_storage(self.storage, tuning, folder)
        return {**self.config.to_dict(), "memory_bytes": self.storage.memory()}

    def _card_values(self, repo_id: str | None = None) -> tuple[Any, dict[str, Any]]:
        return card_data(self.config), card_values(self.config, self.tuning, self.storage.memory(), repo_id)

    @classmethod
    def _from_files(
        cls,
        folder: Path,
        payload: dict[str, Any],
        *,
        expected_num_rows: int | None = None,
        expected_dim: int | None = None,
        mmap: bool = False,
    ) -> AdANNSIndex:
        """Build from a verified folder (``from_pretrained`` keyword arguments: ``expected_num_rows`` and
        ``expected_dim`` are checked; ``mmap=True`` memory-maps the vectors)."""
        payload.pop("memory_bytes", None)
        try:
            config = AdANNSConfig.from_dict(payload)
        except (TypeError, ValueError) as err:
            raise ArtifactError(f"{folder / CONFIG_NAME}: {err}") from err
        if not config.is_complete or config.num_rows is None:
            raise ArtifactError(f"{folder / CONFIG_NAME}: the index structure (d_cluster, nlist, num_rows) is missing")
        if expected_dim is not None and config.dim != expected_dim:
            raise ValueError(f"index at {folder} was built on {config.dim}-dim embeddings, the column has {expected_dim}")
        if expected_num_rows is not None and config.num_rows != expected_num_rows:
            raise ValueError(
                f"index at {folder} holds {config.num_rows} rows but the dataset has {expected_num_rows}: it was "
                "built on another dataset (or another version of it)"
            )
        storage, tuning = read_storage(folder, config, mmap=mmap)
        return cls(config, storage, tuning)

