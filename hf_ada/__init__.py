"""hf-ada: Adan, AdANNS and AdaNPC as first-class citizens of the Hugging Face ecosystem.

``import hf_ada`` runs each method's one integration step (see ARCHITECTURE.md):

* :mod:`hf_ada.optim.integration` -- ``optim="adan"`` / ``--optim adan`` becomes a valid
  :class:`transformers.TrainingArguments` optimizer, with its model-card section;
* :mod:`hf_ada.adanns.integration` -- :class:`datasets.Dataset` gains ``add_adanns_index`` and friends;
* :mod:`hf_ada.adanpc.integration` -- the ``adanpc-*`` tasks join :func:`transformers.pipeline` (as soon as
  ``transformers.pipelines`` is imported).

The public classes below load their module (faiss, sentence-transformers, pipelines) on first use.
"""

from __future__ import annotations

import logging

from .adanns import integration as _adanns_integration
from .adanpc import integration as _adanpc_integration
from .common.lazy import lazy_exports
from .optim import integration as _optim_integration

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_optim_integration.register()
_adanns_integration.register()
_adanpc_integration.register()

#: Kept for scripts written against hf-ada 0.1: registration already happened on import.
register_adan = _optim_integration.register

_EXPORTS = {
    "Adan": "optim",
    "AdANNSConfig": "adanns",
    "AdANNSIndex": "adanns",
    "embed": "adanns",
    "AdaNPCConfig": "adanpc",
    "AdaNPCPipeline": "adanpc",
    "AdaNPCPredictor": "adanpc",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [*sorted(_EXPORTS), "register_adan", "__version__"]
