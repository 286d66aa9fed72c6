"""AdANNS: adaptive approximate nearest-neighbour search over Matryoshka embeddings.

Reference: Rege et al., "AdANNS: A Framework for Adaptive Semantic Search" (NeurIPS 2023). A Matryoshka
embedding carries a usable representation in every prefix of its dimensions; AdANNS uses a cheap low-dim
prefix where the pipeline may be approximate and a richer prefix where it may not:

* **AdANNS-IVF** -- k-means centroids are learned on the first ``d_cluster`` dims and every vector is
  assigned by them; a query picks ``nprobe`` lists with its first ``d_cluster`` dims and scores their
  members with its first ``d_search`` dims (any pair is allowed), optionally re-ranking the best
  ``rerank_k`` exactly on ``d_rerank`` dims.
* **AdANNS-OPQ** -- an OPQ rotation and PQ codes of ``pq_bytes`` bytes trained on the first ``d_pq`` dims;
  combined with the IVF lists it is the paper's IVF(d_cluster) + OPQ(d_pq) composite.
* **exact** scans (every row on ``d_search`` dims; ``d_search = dim`` is exact flat search) and rigid IVF
  (an extra coarse quantizer with ``d_cluster = dim``) are plans of the same index, so :meth:`tune` can
  compare them and pick the fastest that meets the asked quality (:mod:`hf_ada.adanns.tuning`).

The parts, one job each: :mod:`~hf_ada.adanns.config` (settings, search keys), :mod:`~hf_ada.adanns.storage`
(training, stored arrays, faiss scan / re-rank structures), :mod:`~hf_ada.adanns.cost` (FLOPs model),
:mod:`~hf_ada.adanns.tuning` (grid, fronts, plan choice), :mod:`~hf_ada.adanns.serialization` (files and
load checks), :mod:`~hf_ada.adanns.card` (the README card). This class ties them together and speaks the
``datasets`` index and hf-ada artifact protocols.

Decisions where the reference notebooks differ from the paper: with ``metric="ip"`` every truncated prefix
is re-normalised to unit length (database and queries); the learned OPQ rotation is applied to both the
database and the queries; ``d_search`` may be larger than ``d_cluster``. FLOPs are multiply-adds per
query (one per dimension per scored vector), like the paper.
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
from .card import render_index_card
from .config import SEARCH_KEYS, AdANNSConfig, SearchSettings
from .cost import plan_cost
from .serialization import read_storage, write_storage
from .storage import IndexStorage
from .tuning import (
    choose_plan,
    default_grid,
    describe_plan,
    measure_plans,
    pareto_front,
    relevant_sets,
    retrieval_metrics,
)
from .vectors import ArrayVectorSource, VectorSource, check_finite, prefix

logger = logging.getLogger(__name__)

__all__ = ["AdANNSIndex", "VectorSource", "ArrayVectorSource", "SearchSettings", "prefix", "CONFIG_NAME",
           "retrieval_metrics", "pareto_front"]

CONFIG_NAME = "config.json"
_MAX_BUFFER = 4_000_000  # query x candidate cells kept at once (bounds search memory)


class AdANNSIndex(BaseIndex, HubArtifactMixin):
    """A :class:`datasets.search.BaseIndex` implementing AdANNS-IVF, AdANNS-OPQ, their composite, exact
    and rigid plans, all scanned by faiss kernels.

    Build with :meth:`build` (or ``Dataset.add_adanns_index``), search with :meth:`search` /
    :meth:`search_batch` (per-call ``d_cluster``, ``d_search``, ``nprobe``, ``d_rerank``, ``rerank_k``,
    ``scan``, or ``budget_flops`` / ``target_recall`` / ``time_budget_ms`` answered from the tuned plans),
    choose the plan with :meth:`tune`, persist with ``save_pretrained`` / ``from_pretrained`` /
    ``push_to_hub`` (a Hub *dataset* repo). Scores follow faiss: similarities (descending) for ``ip``,
    squared distances (ascending) for ``l2``.
    """

    artifact_kind = "AdANNS index"
    config_name = CONFIG_NAME
    repo_type = "dataset"

    def __init__(self, config: AdANNSConfig, storage: IndexStorage | None = None, tuning: dict[str, Any] | None = None):
        self.config = config
        self.storage = storage or IndexStorage(config)
        self.tuning: dict[str, Any] = tuning or {"pareto_front": [], "time_front": [], "plan": None}

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
        """The plan :meth:`tune` chose (settings, ``reason``, measured recall / queries/s), or ``None``."""
        return self.tuning.get("plan")

    def memory(self) -> dict[str, int]:
        """Bytes of every stored array and every faiss structure built so far (see ``IndexStorage.memory``)."""
        return self.storage.memory()

    # ------------------------------------------------------------------ search
    def settings(self, **overrides: Any) -> SearchSettings:
        """The default plan (the tuned one if any, else the config's) with ``overrides`` applied and validated."""
        cfg = self.config
        unknown = set(overrides) - set(SEARCH_KEYS)
        if unknown:
            raise TypeError(
                f"unknown search arguments {sorted(unknown)}; allowed: {', '.join(SEARCH_KEYS)}, budget_flops, "
                "target_recall, time_budget_ms"
            )
        values = self.plan_settings()
        values.update({k: v for k, v in overrides.items() if v is not None or k == "d_rerank"})
        if values["d_cluster"] not in cfg.d_clusters:
            raise ValueError(f"d_cluster must be one of the trained prefixes {cfg.d_clusters}, got {values['d_cluster']!r}")
        trial = AdANNSConfig(
            dim=cfg.dim, nlist=cfg.nlist, pq_bytes=cfg.pq_bytes, d_pq=cfg.d_pq, store_vectors=cfg.store_vectors,
            extra_d_clusters=cfg.extra_d_clusters, **values,
        )
        return trial.settings()

    def plan_settings(self) -> dict[str, Any]:
        """Search settings of the tuned plan, or of the config when not tuned."""
        source = self.plan if self.plan else self.config.settings().as_dict()
        return {key: source[key] for key in SEARCH_KEYS}

    def _check_queries(self, queries: Any, name: str = "queries") -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array (n_queries, {self.config.dim}), got shape {queries.shape}")
        if queries.shape[1] != self.config.dim:
            raise ValueError(
                f"{name} have dim {queries.shape[1]} but the index was built on {self.config.dim}-dim embeddings"
            )
        check_finite(queries, name)
        return queries

    def probe(self, queries: np.ndarray, nprobe: int | None = None, d_cluster: int | None = None) -> np.ndarray:
        """Inverted lists each query probes (chosen with its ``d_cluster`` prefix)."""
        queries = self._check_queries(queries)
        s = self.settings(nprobe=nprobe, d_cluster=d_cluster)
        return self.storage.probe(queries, s.d_cluster, s.nprobe)

    def candidates(self, queries: np.ndarray, nprobe: int | None = None) -> list[np.ndarray]:
        """Dataset rows scanned for each query: the members of the lists it probes."""
        return [np.concatenate([self.list_rows(l) for l in lists]) for lists in self.probe(queries, nprobe)]

    def _search_rows(self, queries: np.ndarray, k: int, s: SearchSettings) -> tuple[np.ndarray, np.ndarray]:
        scan_k = max(k, s.rerank_k) if s.d_rerank else k
        scores, rows = self.storage.scan(queries, scan_k, s)
        if s.d_rerank:
            scores = self.storage.rerank(queries, rows, s.d_rerank)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, rows = np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)
        return scores[:, :k], rows[:, :k]

    def _resolve(self, overrides: dict[str, Any], **asked: Any) -> SearchSettings:
        asked = {key: value for key, value in asked.items() if value is not None}
        if not asked:
            return self.settings(**overrides)
        if overrides:
            raise ValueError(f"pass either {sorted(asked)} or explicit settings {sorted(overrides)}, not both")
        points = self.tuning.get("points") or self.pareto_front
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
        re-ranking), ``rerank_k``, ``scan`` (``"flat"`` / ``"pq"`` / ``"exact"``); or ask for a quality
        / cost, answered from the plans measured by :meth:`tune`: ``target_recall`` (the fastest plan
        reaching it), ``time_budget_ms`` (per query) or ``budget_flops`` (the most accurate plan within
        it). Missing results (fewer candidates than ``k``) are padded with index -1.
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        queries = self._check_queries(queries)
        s = self._resolve(overrides, budget_flops=budget_flops, target_recall=target_recall,
                          time_budget_ms=time_budget_ms)
        width = max(int(k), s.rerank_k if s.d_rerank else 0, 1)
        chunk = max(1, _MAX_BUFFER // width)
        all_scores, all_rows = [], []
        for start in range(0, len(queries), chunk):
            scores, rows = self._search_rows(queries[start : start + chunk], int(k), s)
            if scores.shape[1] < k:
                pad = k - scores.shape[1]
                scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
                rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
            all_scores.append(scores)
            all_rows.append(rows)
        scores, rows = np.concatenate(all_scores), np.concatenate(all_rows)
        if self.config.metric == "l2":
            scores = -scores  # back to squared distances (ascending), as faiss reports them
        return BatchedSearchResults(scores, rows.astype(int))

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
        show_progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Measure every plan of ``grid`` on held-out tuning ``queries`` (``relevant_ids[i]``: the rows
        relevant to query ``i``) -- recall@k, MRR@k, FLOPs/query and wall-clock queries/s (best of
        ``repeats`` runs) -- then choose the plan :meth:`search` uses from now on
        (:func:`~hf_ada.adanns.tuning.choose_plan`: the fastest reaching ``target_recall``, the most
        accurate within ``time_budget_ms`` or ``budget_flops``, or by default the fastest within 1% of exact
        flat search's recall). The choice and its reason are logged, kept in :attr:`plan` and saved with
        the index (card included). Returns every measured point.

        Use queries that are not your test queries: the plan is fitted to them.
        """
        queries = self._check_queries(queries)
        if len(relevant_ids) != len(queries):
            raise ValueError(f"relevant_ids must have one entry per query ({len(queries)}), got {len(relevant_ids)}")
        if not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be a positive int, got {repeats!r}")
        self.tuning["plan"] = None  # measure explicit settings only
        points = measure_plans(self, queries, relevant_sets(relevant_ids), list(grid or self.default_grid()), k=k,
                               repeats=repeats, show_progress=show_progress)
        plan = choose_plan(points, self.config.dim, target_recall=target_recall, time_budget_ms=time_budget_ms,
                           budget_flops=budget_flops, num_queries=len(queries))
        self.tuning = {"k": k, "num_queries": len(queries), "points": points,
                       "pareto_front": pareto_front(points), "time_front": pareto_front(points, cost="ms"),
                       "plan": plan}
        self.storage.keep_only(self.settings())  # free the prefix stores only other plans used
        logger.info("AdANNS plan: %s -> %s", describe_plan(plan), plan["reason"])
        return points

    def quick_grid(self) -> list[dict[str, Any]]:
        """A small grid for tuning without labels: exact flat search and the config's IVF plan at 1x, 2x and
        4x its ``nprobe``, scanning ``d_search`` dims (re-ranked at full dim) or all dims."""
        cfg = self.config
        grid: list[dict[str, Any]] = [{"scan": "exact", "d_search": cfg.dim, "d_rerank": None}] if cfg.store_vectors else []
        for nprobe in sorted({min(cfg.nlist, cfg.nprobe * f) for f in (1, 2, 4)}):
            if cfg.store_vectors:
                grid.append({"scan": "flat", "nprobe": nprobe, "d_search": cfg.dim, "d_rerank": None})
                if cfg.d_search < cfg.dim:
                    grid.append({"scan": "flat", "nprobe": nprobe, "d_search": cfg.d_search, "d_rerank": cfg.dim,
                                 "rerank_k": cfg.rerank_k})
            if cfg.pq_bytes is not None:
                grid.append({"scan": "pq", "nprobe": nprobe, "d_rerank": cfg.dim if cfg.store_vectors else None})
        return grid

    def tune_on_rows(self, source: VectorSource | np.ndarray, size: int = 256, *, k: int = 10, seed: int = 0,
                     grid: Sequence[dict[str, Any]] | None = None, **choice: Any) -> list[dict[str, Any]]:
        """:meth:`tune` without labels: ``size`` rows sampled from ``source`` are the queries and exact
        search's top ``k`` the truth (``grid`` defaults to :meth:`quick_grid`; ``choice``: ``target_recall``
        / ``time_budget_ms`` / ``budget_flops``)."""
        if isinstance(source, np.ndarray):
            source = ArrayVectorSource(source)
        rows = np.sort(np.random.default_rng(seed).choice(source.num_rows, size=min(size, source.num_rows),
                                                          replace=False))
        queries = source.take(rows)
        _, truth = self.search_batch(queries, k, scan="exact", d_search=self.config.dim, d_rerank=None)
        return self.tune(queries, [set(t.tolist()) for t in truth], k=k, grid=grid or self.quick_grid(),
                         show_progress=False, **choice)

    def best_within_budget(self, budget_flops: float) -> dict[str, Any]:
        """Settings of the most accurate tuned plan whose cost is at most ``budget_flops``."""
        points = self.tuning.get("points") or self.pareto_front
        if not points:
            raise ValueError("budget_flops needs a tuned recall/compute front: call index.tune(queries, relevant_ids) first")
        plan = choose_plan(points, self.config.dim, budget_flops=budget_flops)
        return {key: plan[key] for key in SEARCH_KEYS}

    # ------------------------------------------------------------------ artifact protocol
    def _write_files(self, folder: Path) -> dict[str, Any]:
        tuning = {key: value for key, value in self.tuning.items() if key != "points"}
        write_storage(self.storage, tuning, folder)
        return {**self.config.to_dict(), "memory_bytes": self.storage.memory()}

    def _render_card(self, repo_id: str | None = None) -> Any:
        return render_index_card(self.config, self.tuning, self.storage.memory(), repo_id=repo_id)

    @classmethod
    def _from_files(
        cls,
        folder: Path,
        payload: dict[str, Any],
        *,
        expected_num_rows: int | None = None,
        expected_dim: int | None = None,
        expected_fingerprint: str | None = None,
        mmap: bool = False,
    ) -> AdANNSIndex:
        """Build from a verified folder (``from_pretrained`` keyword arguments: ``expected_num_rows``,
        ``expected_dim``, ``expected_fingerprint`` are checked; ``mmap=True`` memory-maps the vectors)."""
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
        if expected_fingerprint is not None and config.dataset_fingerprint not in (None, expected_fingerprint):
            raise ValueError(
                f"index at {folder} was built on dataset fingerprint {config.dataset_fingerprint!r}, this dataset "
                f"has {expected_fingerprint!r}; pass check_fingerprint=False if the rows are known to be the same"
            )
        storage, tuning = read_storage(folder, config, mmap=mmap)
        return cls(config, storage, tuning)

