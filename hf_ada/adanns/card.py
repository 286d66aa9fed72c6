"""The README card of a saved AdANNS index, filled from the index's own config (never by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import DatasetCardData

from ..common.cards import render_dataset_card, save_card

if TYPE_CHECKING:
    from .index import AdANNSIndex

__all__ = ["card_values", "write_index_card"]


def card_values(index: AdANNSIndex) -> dict[str, Any]:
    """Template values for ``model_cards/adanns_index.md``, all taken from the index itself."""
    cfg = index.config
    values: dict[str, Any] = dict(cfg.to_dict())
    values["index_name"] = cfg.extra.get("index_name", "adanns")
    values["repo_id"] = cfg.extra.get("repo_id")
    values["path_in_repo"] = cfg.extra.get("path_in_repo")
    values["metric_description"] = (
        "inner product on L2-normalised prefixes (cosine)" if cfg.metric == "ip" else "squared L2 on prefixes"
    )
    values["scan_description"] = (
        f"asymmetric OPQ+PQ distances ({cfg.pq_bytes} bytes, d_pq = {cfg.d_pq})"
        if cfg.scan == "pq"
        else f"exact on d_search = {cfg.d_search} dims"
    )
    values["rerank_description"] = (
        f"top {cfg.rerank_k} candidates on d_rerank = {cfg.d_rerank} dims" if cfg.d_rerank else "none"
    )
    values["pq_description"] = (
        f"{cfg.pq_bytes} bytes per vector, trained on d_pq = {cfg.d_pq} dims" if cfg.pq_bytes else "none"
    )
    values["pareto_front"] = index.pareto_front
    return values


def write_index_card(index: AdANNSIndex, folder: Path) -> Path:
    """Render the card of ``index`` into ``folder/README.md``."""
    cfg = index.config
    card_data = DatasetCardData(tags=["hf-ada", "adanns", "faiss", "matryoshka", "vector-index"])
    if cfg.embedding_model:
        card_data.embedding_model = cfg.embedding_model
    card = render_dataset_card("adanns_index", card_data, **card_values(index))
    return save_card(card, folder)
