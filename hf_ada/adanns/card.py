"""The README card of a saved AdANNS index, filled from the index's own config and tuning record."""

from __future__ import annotations

from typing import Any

from huggingface_hub import DatasetCardData

from .config import AdANNSConfig
from .tuning import describe_plan

__all__ = ["card_data", "card_values"]


def card_values(config: AdANNSConfig, tuning: dict[str, Any], memory: dict[str, int],
                repo_id: str | None = None) -> dict[str, Any]:
    """Template values for ``model_cards/adanns_index.md``, all taken from the index itself."""
    cfg = config
    values: dict[str, Any] = dict(cfg.to_dict())
    values["index_name"] = cfg.extra.get("index_name", "adanns")
    values["repo_id"] = repo_id or cfg.extra.get("repo_id")
    values["path_in_repo"] = cfg.extra.get("path_in_repo")
    values["metric_description"] = (
        "inner product on L2-normalised prefixes (cosine)" if cfg.metric == "ip" else "squared L2 on prefixes"
    )
    values["scan_description"] = (
        f"asymmetric OPQ+PQ distances ({cfg.pq_bytes} bytes, d_pq = {cfg.d_pq})"
        if cfg.scan == "pq"
        else f"exact on d_search = {cfg.d_search} dims" + (" (every row)" if cfg.scan == "exact" else "")
    )
    values["rerank_description"] = (
        f"top {cfg.rerank_k} candidates on d_rerank = {cfg.d_rerank} dims" if cfg.d_rerank else "none"
    )
    values["pq_description"] = (
        f"{cfg.pq_bytes} bytes per vector, trained on d_pq = {cfg.d_pq} dims" if cfg.pq_bytes else "none"
    )
    values["d_clusters"] = ", ".join(str(d) for d in cfg.d_clusters)
    values["graph_description"] = (
        f"on {', '.join(f'{d} (M {cfg.graph_m(d)}, efConstruction {cfg.ef_construction(d)})' for d in cfg.graph_dims)}"
        f" dims, default efSearch = {cfg.ef_search}"
        if cfg.graph_dims else "none")
    values["memory"] = [{"part": part, "mib": size / 2**20, "per_vector": size / max(cfg.num_rows or 1, 1)}
                        for part, size in memory.items() if size]
    values["pareto_front"] = tuning.get("pareto_front", [])
    plan = tuning.get("plan")
    values["plan"] = plan
    values["plan_description"] = describe_plan(plan) if plan else None
    values["plans_at"] = [{"threads": int(t), "plan": p, "description": describe_plan(p)}
                          for t, p in sorted((tuning.get("plans_at") or {}).items(), key=lambda item: int(item[0]))]
    return values


def card_data(config: AdANNSConfig) -> DatasetCardData:
    """The card's YAML metadata (the template is the index class's ``card_template``)."""
    data = DatasetCardData(tags=["hf-ada", "adanns", "faiss", "matryoshka", "vector-index"])
    if config.embedding_model:
        data.embedding_model = config.embedding_model
    return data
