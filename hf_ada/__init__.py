"""hf-ada: Adan, AdANNS and AdaNPC as first-class citizens of the Hugging Face ecosystem.

Importing :mod:`hf_ada` registers everything with the libraries it extends:

* ``optim="adan"`` / ``--optim adan`` becomes a valid :class:`transformers.TrainingArguments` optimizer;
* :class:`datasets.Dataset` gains ``add_adanns_index`` and friends;
* the ``adanpc-*`` pipeline tasks are registered with :func:`transformers.pipeline`.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from .optim import Adan  # noqa: E402
from .optim.trainer_integration import register_adan  # noqa: E402

register_adan()

from . import adanns, adanpc  # noqa: E402  (both register themselves on import)
from .adanns import AdANNSConfig, AdANNSIndex, embed  # noqa: E402
from .adanpc import AdaNPCConfig, AdaNPCPipeline, AdaNPCPredictor  # noqa: E402

__all__ = [
    "Adan",
    "AdANNSConfig",
    "AdANNSIndex",
    "AdaNPCConfig",
    "AdaNPCPipeline",
    "AdaNPCPredictor",
    "adanns",
    "adanpc",
    "embed",
    "register_adan",
    "__version__",
]
