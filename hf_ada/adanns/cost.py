"""The compute model of an AdANNS search plan: multiply-adds (FLOPs) per query, by stage, like the paper."""

from __future__ import annotations

from .config import AdANNSConfig, SearchSettings

__all__ = ["plan_cost"]


def plan_cost(config: AdANNSConfig, s: SearchSettings, num_rows: int) -> dict[str, float]:
    """FLOPs (multiply-adds) per query of plan ``s`` on an index of ``num_rows`` rows.

    ``coarse``: scoring the ``nlist`` centroids on ``d_cluster`` dims (skipped when all lists are probed or
    the scan is exhaustive); ``scan``: ``d_search`` per candidate (flat / exact) or ``pq_bytes`` additions
    per candidate plus the 256 x ``d_pq`` lookup table and the ``d_pq``^2 rotation (pq); ``rerank``:
    ``d_rerank`` per re-ranked candidate. Candidates: ``n * nprobe / nlist`` (all ``n`` for ``exact``;
    for ``hnsw`` an estimate of the distances a walk computes, ``ef_search`` x the graph's M, capped at ``n``).
    """
    if s.scan == "exact":
        candidates, coarse = float(num_rows), 0.0
    elif s.scan == "hnsw":
        candidates, coarse = float(min(num_rows, s.ef_search * config.graph_m(s.d_search))), 0.0
    else:
        candidates = num_rows * s.nprobe / config.nlist
        coarse = 0.0 if s.nprobe >= config.nlist else float(config.nlist * s.d_cluster)
    if s.scan == "pq":
        scan = candidates * config.pq_bytes + 256.0 * config.d_pq + float(config.d_pq) ** 2
    else:
        scan = candidates * s.d_search
    rerank = float(min(s.rerank_k, candidates) * s.d_rerank) if s.d_rerank else 0.0
    return {"coarse": coarse, "scan": float(scan), "rerank": rerank, "total": coarse + scan + rerank,
            "candidates": float(candidates)}
