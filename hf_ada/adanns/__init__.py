"""AdANNS: adaptive semantic search over Matryoshka embeddings, as a ``datasets`` index.

``import hf_ada`` attaches ``add_adanns_index``, ``add_adanns_index_from_external_arrays``,
``save_adanns_index``, ``load_adanns_index`` and ``push_adanns_index_to_hub`` to :class:`datasets.Dataset`
(:mod:`hf_ada.adanns.integration`). Public names load their submodule (faiss, sentence-transformers) on
first use.
"""

from __future__ import annotations

from ..common.lazy import lazy_exports

_EXPORTS = {
    "AdANNSConfig": "config",
    "SearchSettings": "config",
    "default_structure": "config",
    "AdANNSIndex": "index",
    "pareto_front": "tuning",
    "retrieval_metrics": "tuning",
    "choose_plan": "tuning",
    "embed": "embed",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
