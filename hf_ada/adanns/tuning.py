"""Choosing a search plan: candidate grids, measured fronts, and the plan that meets the asked quality fastest.

Every candidate plan is run on held-out *tuning* queries (never the test queries) and measured for
recall@k / MRR@k, FLOPs per query (:func:`~hf_ada.adanns.cost.plan_cost`) and wall-clock queries/s (best of
``repeats`` timed runs of the whole batch, with the faiss threads in effect). The first pass walks the
nprobe / efSearch values a faiss user would try (powers of two); :func:`refine_grid` then adds the
neighbouring settings (nprobe, efSearch, re-rank depth) on finer ladders (steps of 1.1-1.2x) around every
plan on the recall/time front, until the front asks for nothing new, so a recall target that falls between
two powers of two is met without paying the next one. The contenders -- the front and every plan whose one
timing may have pushed it off the front -- are then timed again side by side (:func:`retime_front`), and
once more at every other faiss thread count a search may run with (:func:`tuning_threads`: one thread and
every core): plans do not speed up alike with threads (a graph walk splits its queries over the cores, a
flat scan of a small corpus gains less), so the plan that is fastest at a recall can differ between one and
two threads. Each point keeps its time per thread count (``ms_at``), and a choice uses the times measured
nearest the faiss thread count in effect where it is made (:func:`at_threads`).
:func:`choose_plan` then picks, in this order of what the caller asked:

* ``target_recall``: the fastest plan whose measured recall reaches it (the measurement itself, no margin
  either way: a margin below the target turns into a recall below it on other queries, one above it into a
  slower plan; the reason gives the plan's recall with its standard error over the tuning queries) -- a
  recall short of it by less than :data:`RECALL_RESOLUTION` of its own standard error counts as reaching it:
  the measurement cannot resolve a difference that small (the same faiss index gives a few different rows
  at another thread count, its BLAS scoring the centroids in another order);
* ``time_budget_ms``: the most accurate plan within that many milliseconds per query;
* ``budget_flops``: the most accurate plan within that many FLOPs per query;
* nothing: the fastest plan within 1% of the recall of exact flat search (which is always a candidate),
  so a tuned index is never slower than flat search at the quality it is asked for.

For a recall (asked or default), simpler plans win ties: a faiss structure over all the dims searched in one
pass (exact flat, the IVF quantizing and scanning every dim, the full-dim graph: what a faiss user attaches;
:func:`is_full_dim_structure`) is chosen over a faster plan on prefixes, and a one-pass plan over a faster plan
with a re-rank stage, unless the faster one measured more than :data:`SIMPLER_PLAN_MARGIN` faster: a smaller
lead is one timing's noise, and the simpler plan does not lose to faiss's own index when the timing was lucky.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .config import FAISS_EF_CONSTRUCTION, SEARCH_KEYS, AdANNSConfig

__all__ = ["retrieval_metrics", "pareto_front", "near_front", "default_grid", "refine_grid", "measure_plans",
           "retime_front", "time_side_by_side", "choose_plan", "describe_plan", "best_time", "faiss_threads",
           "tuning_threads", "at_threads", "time_fronts", "speedups_at_recalls", "full_graph_builds",
           "WIDER_BUILD_MIN_SPEEDUP", "NPROBES", "NPROBE_LADDER", "EF_SEARCH", "EF_LADDER", "RERANK_LADDER",
           "DEFAULT_RELATIVE_RECALL", "SIMPLER_PLAN_MARGIN", "RECALL_RESOLUTION", "reaches", "is_full_dim_structure",
           "standard_error"]

#: without an explicit target, a plan must reach this share of exact flat search's recall
DEFAULT_RELATIVE_RECALL = 0.99
#: a plan on prefixes is chosen over a full-dim faiss structure, and a plan with a re-rank stage over a one-pass
#: plan, only when it measured faster by more than this factor: a smaller gain is within the noise of one timing
#: on a shared machine (and of the batch size: threads split 500 tuning queries less evenly than a larger
#: batch), and the simpler plan is the one that does not lose when the timing was lucky
SIMPLER_PLAN_MARGIN = 1.05
#: a plan reaches a recall target when its measured recall is at most this share of its standard error short
RECALL_RESOLUTION = 0.1


def standard_error(per_query: np.ndarray) -> float:
    """The standard error of a mean over queries: the standard deviation of the per-query values / sqrt(number
    of queries) (0.0 for fewer than two)."""
    per_query = np.asarray(per_query, dtype=np.float64)
    return float(per_query.std(ddof=1) / math.sqrt(len(per_query))) if len(per_query) > 1 else 0.0


def retrieval_metrics(rows: np.ndarray, relevant: Sequence[set[int]], k: int) -> dict[str, float]:
    """recall@k (share of each query's relevant rows found in its top k, averaged), MRR@k, and
    ``recall_se``: the standard error of that recall over the queries (the standard deviation of the
    per-query recalls / sqrt(number of queries)), i.e. how much the measured recall would move on another
    sample of as many queries."""
    recalls, mrr = [], 0.0
    for found, rel in zip(np.asarray(rows)[:, :k], relevant):
        hits = [rank for rank, row in enumerate(found) if int(row) in rel]
        recalls.append(len(set(int(r) for r in found) & rel) / max(len(rel), 1))
        mrr += 1.0 / (hits[0] + 1) if hits else 0.0
    n = max(len(relevant), 1)
    per_query = np.asarray(recalls, dtype=np.float64)
    return {"recall": float(per_query.sum()) / n, "mrr": mrr / n, "recall_se": standard_error(per_query)}


def pareto_front(points: Sequence[dict[str, Any]], key: str = "recall", cost: str = "flops") -> list[dict[str, Any]]:
    """Points not dominated in (lower ``cost``, higher ``key``), sorted by ``cost``. Use ``cost="ms"`` for
    the recall/time front."""
    front, best = [], -math.inf
    for point in sorted(points, key=lambda p: (p[cost], -p[key])):
        if point[key] > best:
            front.append(point)
            best = point[key]
    return front


def _dims(config: AdANNSConfig, quick: bool = False) -> list[int]:
    dims = {config.d_search, config.dim}
    d = 16
    while d < config.dim:
        if not quick or 4 * d >= config.dim:  # quick: only the upper part of the ladder
            dims.add(d)
        d *= 2
    return sorted(dims)


#: HNSW walk widths of the first pass (faiss efSearch), the range a user of faiss HNSW would try ...
EF_SEARCH = (16, 32, 64, 128, 256)
#: ... and nprobe values of the first pass (the ones a user of faiss IVF would try).
NPROBES = (1, 2, 4, 8, 16, 32, 64)
#: The finer ladders :func:`refine_grid` walks near the recall/time front: steps of about 1.1-1.2x, so a target
#: between two first-pass settings is met without paying the next power of two.
NPROBE_LADDER = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20, 22, 24, 28, 32, 36, 40, 44, 48, 56, 64, 72, 80,
                 88, 96, 112, 128, 144, 160, 176, 192, 224, 256)
EF_LADDER = (10, 11, 12, 13, 14, 16, 18, 20, 22, 24, 28, 32, 36, 40, 44, 48, 56, 64, 72, 80, 88, 96, 112, 128, 144, 160,
             176, 192, 224, 256, 288, 320, 384, 448, 512)
#: the shallowest re-rank depth of the first pass's graph plans on a prefix
GRAPH_RERANK_K = 20
#: and the re-rank depths walked from a re-ranked plan on the front
RERANK_LADDER = (20, 30, 40, 50, 70, 100, 140, 200, 280, 400)


def default_grid(config: AdANNSConfig, quick: bool = False) -> list[dict[str, Any]]:
    """Plans :meth:`~hf_ada.adanns.AdANNSIndex.tune` measures by default.

    Exact flat search (always), exhaustive low-dim scans + full-dim re-rank, for every coarse quantizer
    x nprobe (1 ... 64): flat scans on the prefix ladder (16, 32, ... dim) with and without re-rank and the
    PQ scan when there are codes; for every HNSW graph x efSearch (16 ... 256): the walk, re-ranked at full
    dim when the graph is on a shorter prefix (also its top :data:`GRAPH_RERANK_K` only). A re-rank on no
    more dims than the scan is left out: it cannot change the order. ``quick=True`` (label-free auto-tuning)
    keeps the upper half of the prefix ladder and one re-rank depth (and the graphs' shallow one).
    """
    cfg = config
    reranks: list[tuple[int | None, int]] = [(None, cfg.rerank_k)]
    if cfg.store_vectors:
        reranks += [(cfg.dim, r) for r in (sorted({50, 200, cfg.rerank_k}) if not quick else [cfg.rerank_k])]
    dims = _dims(cfg, quick)
    grid: list[dict[str, Any]] = []
    if cfg.store_vectors:
        grid.append({"scan": "exact", "d_search": cfg.dim, "d_rerank": None})
        for d in dims:
            if d < cfg.dim:
                grid += [{"scan": "exact", "d_search": d, "d_rerank": cfg.dim, "rerank_k": r}
                         for r in ((50, 200) if not quick else (cfg.rerank_k,))]
    nprobes = sorted({min(cfg.nlist, p) for p in (*NPROBES, cfg.nprobe)})
    for d_cluster in cfg.d_clusters:
        for nprobe in nprobes:
            for d_rerank, rerank_k in reranks:
                scans: list[dict[str, Any]] = []
                if cfg.store_vectors:
                    scans = [{"scan": "flat", "d_search": d} for d in dims if not (d_rerank and d_rerank <= d)]
                if cfg.pq_bytes is not None:
                    scans.append({"scan": "pq"})
                for scan in scans:
                    grid.append({"d_cluster": d_cluster, "nprobe": nprobe, "d_rerank": d_rerank,
                                 "rerank_k": rerank_k, **scan})
    # a walk on a prefix finds its candidates in order of that prefix's score: a shallow re-rank (20) is
    # where a prefix graph pays at mid recall, so graph plans also start from there
    graph_reranks = reranks + ([(cfg.dim, GRAPH_RERANK_K)] if cfg.store_vectors else [])
    for d_graph in cfg.graph_dims:
        for d_rerank, rerank_k in graph_reranks:
            if d_rerank and d_rerank <= d_graph:
                continue
            for ef in sorted({max(ef, rerank_k if d_rerank else 0) for ef in EF_SEARCH}):
                grid.append({"scan": "hnsw", "d_search": d_graph, "ef_search": ef, "d_rerank": d_rerank,
                             "rerank_k": rerank_k})
    return grid


def _settings_of(point: dict[str, Any]) -> dict[str, Any]:
    return {key: point[key] for key in SEARCH_KEYS}


def _plan_key(point: dict[str, Any]) -> tuple:
    """What makes two measured plans the same plan (the keys that do not act on its scan are left out)."""
    scan = point["scan"]
    return (scan, point["d_search"], point["d_rerank"], point["rerank_k"] if point["d_rerank"] else None,
            point["d_cluster"] if scan in ("flat", "pq") else None, point["nprobe"] if scan in ("flat", "pq") else None,
            point["ef_search"] if scan == "hnsw" else None)


def refine_grid(points: Sequence[dict[str, Any]], nlist: int) -> list[dict[str, Any]]:
    """Plans one step below and one step above every plan of the recall/time front on the fine ladders
    (:data:`NPROBE_LADDER` for IVF plans, capped at ``nlist``; :data:`EF_LADDER` for graph plans, from the
    re-rank depth up when re-ranked; :data:`RERANK_LADDER` for the re-rank depth of re-ranked plans, at most
    efSearch for a graph walk), that ``points`` does not hold yet. :meth:`AdANNSIndex.tune
    <hf_ada.adanns.AdANNSIndex.tune>` measures them and walks again until the front asks for nothing new: the
    grid is fine exactly where a recall target can fall, and stays coarse where no target would choose."""
    seen = {_plan_key(p) for p in points}
    extra: list[dict[str, Any]] = []
    for point in pareto_front(points, cost="ms"):
        ladders: list[tuple[str, list[int]]] = []
        if point["scan"] in ("flat", "pq"):
            ladders.append(("nprobe", [v for v in NPROBE_LADDER if v <= nlist]))
        elif point["scan"] == "hnsw":
            floor = point["rerank_k"] if point["d_rerank"] else 1
            ladders.append(("ef_search", [v for v in EF_LADDER if v >= floor]))
        if point["d_rerank"]:
            cap = point["ef_search"] if point["scan"] == "hnsw" else math.inf  # a walk returns at most efSearch rows
            ladders.append(("rerank_k", [v for v in RERANK_LADDER if v <= cap]))
        for key, ladder in ladders:
            value = point[key]
            below, above = [v for v in ladder if v < value], [v for v in ladder if v > value]
            for step in below[-1:] + above[:1]:
                plan = {**_settings_of(point), key: step}
                if _plan_key(plan) not in seen:
                    seen.add(_plan_key(plan))
                    extra.append(plan)
    return extra


def is_exact_flat(point: dict[str, Any], dim: int) -> bool:
    return point["scan"] == "exact" and point["d_search"] == dim and not point["d_rerank"]


def is_full_dim_structure(point: dict[str, Any], dim: int) -> bool:
    """Whether a plan is a faiss structure over all ``dim`` dims searched in one pass: exact flat search, the
    IVF whose quantizer and scan use every dim, or the full-dim HNSW graph."""
    if point["d_rerank"] or point["d_search"] != dim:
        return False
    return point["scan"] in ("exact", "hnsw") or (point["scan"] == "flat" and point["d_cluster"] == dim)


def reaches(point: dict[str, Any], target: float) -> bool:
    """Whether a measured plan reaches the recall ``target``: at most :data:`RECALL_RESOLUTION` of its
    standard error short of it (exactly, when no standard error was measured)."""
    return point["recall"] >= target - RECALL_RESOLUTION * (point.get("recall_se") or 0.0) - 1e-12


def choose_plan(
    points: Sequence[dict[str, Any]],
    dim: int,
    *,
    target_recall: float | None = None,
    time_budget_ms: float | None = None,
    budget_flops: float | None = None,
    num_queries: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The plan (search settings + ``reason`` + its measured figures) answering what was asked (see the
    module docstring), from the times measured nearest ``threads`` faiss threads (default: the number in
    effect; :func:`at_threads`). Raises ``ValueError`` when more than one criterion is given, or a budget fits
    no plan."""
    asked = [name for name, v in (("target_recall", target_recall), ("time_budget_ms", time_budget_ms),
                                  ("budget_flops", budget_flops)) if v is not None]
    if len(asked) > 1:
        raise ValueError(f"pass at most one of target_recall, time_budget_ms, budget_flops; got {asked}")
    if not points:
        raise ValueError("no measured plans to choose from")
    timed_at = measured_threads(points) if budget_flops is None else []  # a FLOPs budget needs no times
    if len(timed_at) > 1:
        threads = nearest_threads(timed_at, faiss_threads() if threads is None else threads)
        points = at_threads(points, threads)
    flat = [p for p in points if is_exact_flat(p, dim)]
    baseline = max(flat, key=lambda p: p["qps"]) if flat else None
    where = f"on {num_queries} tuning queries" if num_queries else "on the tuning queries"
    if len(timed_at) > 1:
        where += f" (timed with {threads} faiss thread{'s' if threads != 1 else ''})"
    if budget_flops is not None or time_budget_ms is not None:
        key, budget = ("flops", budget_flops) if budget_flops is not None else ("ms", time_budget_ms)
        fits = [p for p in points if p[key] <= budget]
        if not fits:
            cheapest = min(p[key] for p in points)
            raise ValueError(f"{asked[0]}={budget:g} is below the cheapest measured plan ({cheapest:g})")
        best = max(fits, key=lambda p: (p["recall"], -p[key]))
        reason = f"most accurate measured plan within {asked[0]}={budget:g} {where}"
    else:
        if target_recall is None:
            reference = baseline["recall"] if baseline else max(p["recall"] for p in points)
            target = DEFAULT_RELATIVE_RECALL * reference
            what = (f"{DEFAULT_RELATIVE_RECALL:g} x exact flat search's recall {reference:.4f}" if baseline
                    else f"{DEFAULT_RELATIVE_RECALL:g} x the best measured recall {reference:.4f}")
        else:
            if not 0.0 <= target_recall <= 1.0:
                raise ValueError(f"target_recall must lie in [0, 1], got {target_recall!r}")
            target, what = target_recall, "the asked target"
        meets = [p for p in points if reaches(p, target)]
        if meets:
            best = max(meets, key=lambda p: (p["qps"], p["recall"]))
            for simpler in (lambda p: is_full_dim_structure(p, dim), lambda p: not p["d_rerank"]):
                close = [p for p in meets if simpler(p) and p["qps"] * SIMPLER_PLAN_MARGIN >= best["qps"]]
                if close:  # within one timing's noise of the fastest: the simplest such plan
                    best = max(close, key=lambda p: (p["qps"], p["recall"]))
                    break
            se = f" +- {best['recall_se']:.4f}" if best.get("recall_se") is not None else ""
            reason = (f"fastest measured plan with recall >= {target:.4f} ({what}) {where}: recall "
                      f"{best['recall']:.4f}{se} (standard error over the queries)")
        else:
            best = max(points, key=lambda p: (p["recall"], p["qps"]))
            reason = f"no plan reached recall {target:.4f} ({what}) {where}; using the most accurate one"
    if baseline is not None and best is not baseline:
        reason += f"; {best['qps'] / baseline['qps']:.2f}x the queries/s of exact flat search"
    elif baseline is not None:
        reason += "; exact flat search is the fastest plan at this quality on this corpus"
    return {**_settings_of(best), "reason": reason, "recall": best["recall"], "recall_se": best.get("recall_se"),
            "mrr": best["mrr"],
            "flops": best["flops"], "qps": best["qps"], "ms": best["ms"], "bytes": best.get("bytes")}


def measure_plans(
    index: Any,
    queries: np.ndarray,
    relevant: Sequence[set[int]],
    grid: Sequence[dict[str, Any]],
    *,
    k: int = 10,
    repeats: int = 2,
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """Run every plan of ``grid`` on ``queries``: its settings, recall@k, MRR@k, FLOPs/query, queries/s and
    ms/query (best of ``repeats`` timed runs of the whole batch). Measures only; chooses nothing."""
    from tqdm.auto import tqdm

    from .cost import plan_cost

    points, threads = [], str(faiss_threads())
    for overrides in tqdm(list(grid), desc="AdANNS plans", disable=not show_progress):
        s = index.settings(untuned=True, **overrides)
        index.search_batch(queries[:1], k, **s.as_dict())  # build the plan's faiss structure outside the timing
        elapsed, (_, rows) = best_time(lambda: index.search_batch(queries, k, **s.as_dict()), repeats)
        ms = 1000.0 * elapsed / len(queries)
        points.append({**s.as_dict(), **retrieval_metrics(rows, relevant, k),
                       "flops": plan_cost(index.config, s, index.num_rows)["total"],
                       "bytes": index.storage.plan_bytes(s), "qps": _qps(ms), "ms": ms, "ms_at": {threads: ms}})
    return points


def best_time(search: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(best seconds of ``repeats`` calls of ``search``, the last call's result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = search()
        best = min(best, time.perf_counter() - start)
    return best, result


def _qps(ms: float) -> float:
    """Queries per second of a plan taking ``ms`` milliseconds per query (every view computes it so)."""
    return 1000.0 / max(ms, 1e-12)


def near_front(points: Sequence[dict[str, Any]], slack: float = 1.25) -> list[dict[str, Any]]:
    """Points whose time is within ``slack`` x the fastest time of any point at least as accurate: the
    recall/time front and the plans whose one noisy timing may have pushed them off it."""
    out, best = [], math.inf
    for point in sorted(points, key=lambda p: (-p["recall"], p["ms"])):
        best = min(best, point["ms"])
        if point["ms"] <= slack * best:
            out.append(point)
    return out


#: contenders re-timed side by side: within this factor of the recall/time front (a timing of a few
#: milliseconds of search on a shared machine moves by 10-20%)
RETIME_SLACK = 1.25
#: ... and, at another thread count, within this factor of the front estimated from the tuning thread count's
#: times (plans gain unequally from threads)
OTHER_THREADS_SLACK = 1.6
#: a contender re-timed by :func:`retime_front` runs until its calls add up to this many seconds (or
#: :data:`RETIME_MAX_ROUNDS` rounds), past the rounds asked for: a plan answering the queries in 2 ms is
#: otherwise judged on a few milliseconds of search, which a single scheduler hiccup on a shared machine decides
RETIME_MIN_SECONDS = 0.2
RETIME_MAX_ROUNDS = 25


def faiss_threads() -> int:
    """The number of OpenMP threads faiss searches with in the calling thread (``faiss.omp_set_num_threads``)."""
    import faiss

    return int(faiss.omp_get_max_threads())


def tuning_threads() -> list[int]:
    """The faiss thread counts :meth:`~hf_ada.adanns.AdANNSIndex.tune` times its contenders at: one thread,
    the number in effect, and every core this process may run on (faiss's default)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return sorted({1, faiss_threads(), max(cores, 1)})


def measured_threads(points: Sequence[dict[str, Any]]) -> list[int]:
    """The thread counts some point was timed at (``ms_at``)."""
    return sorted({int(t) for p in points for t in p.get("ms_at") or {}})


def nearest_threads(measured: Sequence[int], threads: int) -> int:
    """The measured thread count closest to ``threads`` by ratio (a tie goes to the larger)."""
    return min(measured, key=lambda t: (abs(math.log(t) - math.log(max(threads, 1))), -t))


def at_threads(points: Sequence[dict[str, Any]], threads: int) -> list[dict[str, Any]]:
    """The points timed at ``threads`` faiss threads, as copies carrying those times in ``ms`` / ``qps`` (the
    others are left out: a plan not re-timed at a thread count was far from the front there). Points that
    carry no per-thread times (tuned before they were kept) are returned as they are."""
    key = str(threads)
    if not any(p.get("ms_at") for p in points):
        return list(points)
    return [{**p, "ms": p["ms_at"][key], "qps": _qps(p["ms_at"][key])} for p in points if key in (p.get("ms_at") or {})]


def time_fronts(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points on the recall/time front at any thread count they were timed at (each once, as given)."""
    keys = set()
    for threads in measured_threads(points) or [1]:  # none timed per thread count: the points as they are
        keys |= {_plan_key(p) for p in pareto_front(at_threads(points, threads), cost="ms")}
    out, seen = [], set()
    for p in sorted(points, key=lambda p: (p["ms"], -p["recall"])):
        if _plan_key(p) in keys and _plan_key(p) not in seen:
            seen.add(_plan_key(p))
            out.append(p)
    return out


def _times_at(points: Sequence[dict[str, Any]], key: str) -> list[float]:
    """Every point's ms/query at thread count ``key``: measured where it was timed there, else its time at the
    tuning thread count scaled by the median ratio of the points timed at both."""
    ratios = [p["ms_at"][key] / p["ms"] for p in points if key in (p.get("ms_at") or {}) and p["ms"] > 0]
    scale = float(np.median(ratios)) if ratios else 1.0
    return [(p.get("ms_at") or {}).get(key, p["ms"] * scale) for p in points]


def time_side_by_side(calls: Sequence[Callable[[], Any]], rounds: int, *, min_seconds: float | None = None,
                      max_rounds: int | None = None) -> list[float]:
    """Best seconds of each of ``calls``, timed side by side: in interleaved rounds (each call once per round,
    every other round in reverse order, so none always runs first or last), at least ``rounds`` runs each; a
    call whose runs add up to less than ``min_seconds`` (default :data:`RETIME_MIN_SECONDS`) goes on, up to
    ``max_rounds`` runs (default :data:`RETIME_MAX_ROUNDS`). Calls timed together see the same load."""
    min_seconds = RETIME_MIN_SECONDS if min_seconds is None else min_seconds
    max_rounds = RETIME_MAX_ROUNDS if max_rounds is None else max_rounds
    best, runs, spent = [math.inf] * len(calls), [0] * len(calls), [0.0] * len(calls)
    for r in range(max(rounds, max_rounds)):
        order = [i for i in range(len(calls))
                 if runs[i] < rounds or (spent[i] < min_seconds and runs[i] < max_rounds)]
        if not order:
            break
        for i in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            calls[i]()
            elapsed = time.perf_counter() - start
            best[i], runs[i], spent[i] = min(best[i], elapsed), runs[i] + 1, spent[i] + elapsed
    return best


def retime_front(index: Any, queries: np.ndarray, points: list[dict[str, Any]], *, k: int = 10, rounds: int = 3,
                 passes: int = 2, slack: float | None = None, threads: int | None = None) -> None:
    """Time the contenders again -- the plans within ``slack`` of the recall/time front (:func:`near_front`)
    and exact flat search -- side by side in ``rounds`` interleaved rounds (each plan once per round; its time =
    the best of its rounds; a fast plan goes on until its calls add up to :data:`RETIME_MIN_SECONDS`), ``passes``
    times (a plan that joins the contenders is timed in the next pass).
    Choosing the fastest of hundreds of plans from one timing each favours whichever was measured in a quiet
    moment, and drops a plan whose one timing was unlucky; timing every contender side by side, several times,
    removes most of that luck. Updates ``ms`` / ``qps`` of those points in place.

    ``threads``: time them with that many faiss threads instead of the number in effect (restored after);
    only the points' ``ms_at[str(threads)]`` is written then, and the contenders are the plans near the front
    estimated for that thread count (:data:`OTHER_THREADS_SLACK` by default)."""
    import faiss

    current = faiss_threads()
    threads = current if threads is None else int(threads)
    key, primary = str(threads), threads == current
    slack = (RETIME_SLACK if primary else OTHER_THREADS_SLACK) if slack is None else slack
    timed: dict[int, float] = {}
    faiss.omp_set_num_threads(threads)
    try:
        for _ in range(passes):
            times = [p["ms"] for p in points] if primary else _times_at(points, key)
            view = [{"recall": p["recall"], "ms": ms, "i": i} for i, (p, ms) in enumerate(zip(points, times))]
            contenders = {v["i"] for v in near_front(view, slack)}
            contenders |= {i for i, p in enumerate(points) if is_exact_flat(p, index.config.dim)}
            order = sorted(contenders)
            seconds = time_side_by_side([lambda s=_settings_of(points[i]): index.search_batch(queries, k, **s)
                                         for i in order], rounds)
            best = {i: min(timed.get(i, float("inf")), t) for i, t in zip(order, seconds)}
            for i in contenders:
                timed[i] = best[i]
                point, ms = points[i], 1000.0 * best[i] / len(queries)
                point["ms_at"] = {**(point.get("ms_at") or {}), key: ms}
                if primary:
                    point["ms"], point["qps"] = ms, _qps(ms)
    finally:
        faiss.omp_set_num_threads(current)


#: another HNSW build (:func:`full_graph_builds`) replaces faiss's default one only when its walk reaches every
#: recall of the default's recall/time front at least this fast (:func:`speedups_at_recalls`; below 1 by the
#: noise of one timing): the default build is the graph a faiss user attaches, so keeping it makes the rigid HNSW
#: plans that very index
WIDER_BUILD_MIN_SPEEDUP = 0.97


def full_graph_builds(m: int, ef_construction: int) -> list[tuple[int, int]]:
    """The ``(M, efConstruction)`` builds of the full-dim graph that ``tune()`` weighs against faiss's default
    (``m``, :data:`~hf_ada.adanns.config.FAISS_EF_CONSTRUCTION`): ``ef_construction`` wide with ``m`` and with
    ``m // 2`` neighbours (a smaller graph, cheaper steps)."""
    default = (m, FAISS_EF_CONSTRUCTION)
    builds: list[tuple[int, int]] = []
    for build in ((m, ef_construction), (m // 2, ef_construction)):
        if build[0] >= 2 and build != default and build not in builds:
            builds.append(build)
    return builds


def speedups_at_recalls(reference: Sequence[tuple[float, ...]], other: Sequence[tuple[float, float]]) -> list[float]:
    """How much faster ``other`` reaches each recall of ``reference``'s recall/time front: ``other`` holds
    ``(recall, seconds)`` pairs, ``reference`` ``(recall, seconds)`` or ``(recall, seconds, tolerance)`` -- a
    recall at most ``tolerance`` lower (its standard error over the queries: the measurement cannot tell them
    apart) counts as reached. Per front point: its time / the least time of an ``other`` point reaching its
    recall (0.0 where ``other`` never reaches it)."""
    points = [{"recall": r[0], "ms": r[1], "tolerance": r[2] if len(r) > 2 else 0.0} for r in reference]
    out = []
    for point in pareto_front(points, cost="ms"):
        times = [t for r, t in other if r >= point["recall"] - point["tolerance"] - 1e-12]
        out.append(point["ms"] / max(min(times), 1e-12) if times else 0.0)
    return out


def relevant_sets(relevant_ids: Sequence[Iterable[int]]) -> list[set[int]]:
    return [set(int(r) for r in rel) for rel in relevant_ids]


def describe_plan(plan: dict[str, Any]) -> str:
    """One line naming a plan's stages (the log line, the card and the CLI use it)."""
    if plan["scan"] == "exact":
        text = "exact flat search" if not plan["d_rerank"] else f"exact scan on {plan['d_search']} dims"
        if plan["d_rerank"] is None and plan.get("d_search") is not None:
            text += f" ({plan['d_search']} dims)"
    elif plan["scan"] == "hnsw":
        text = f"HNSW on {plan['d_search']} dims, efSearch={plan['ef_search']}"
    else:
        scan = "PQ codes" if plan["scan"] == "pq" else f"{plan['d_search']} dims"
        text = f"IVF d_cluster={plan['d_cluster']} nprobe={plan['nprobe']}, scan on {scan}"
    if plan["d_rerank"]:
        text += f", re-rank top {plan['rerank_k']} on {plan['d_rerank']} dims"
    return text
