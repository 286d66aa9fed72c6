"""AdANNS: adaptive semantic search over Matryoshka embeddings, as a ``datasets`` index.

Importing this package attaches ``add_adanns_index``, ``add_adanns_index_from_external_arrays``,
``save_adanns_index``, ``load_adanns_index`` and ``push_adanns_index_to_hub`` to
:class:`datasets.Dataset`.
"""

from __future__ import annotations

from .config import AdANNSConfig
from .dataset import register_dataset_methods
from .embed import embed
from .index import AdANNSIndex, pareto_front, retrieval_metrics

register_dataset_methods()

__all__ = ["AdANNSConfig", "AdANNSIndex", "embed", "pareto_front", "retrieval_metrics", "register_dataset_methods"]
