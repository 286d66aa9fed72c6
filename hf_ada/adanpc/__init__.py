"""AdaNPC: test-time adaptation of Hugging Face classifiers with a non-parametric (kNN) memory.

Zhang et al., "AdaNPC: Exploring Non-Parametric Classifier for Test-Time Adaptation", ICML 2023. ``import
hf_ada`` registers the ``adanpc-text-classification``, ``adanpc-image-classification`` and
``adanpc-audio-classification`` pipeline tasks (:mod:`hf_ada.adanpc.integration`).

By default a reach gate (:mod:`hf_ada.adanpc.guard`) decides who answers each batch: within the memory's reach
the vote, blended with T3A run alongside, answers and the batch is inserted; out of reach (an abrupt jump)
T3A answers and nothing is inserted. ``AdaNPCConfig.unguarded()`` is the paper's rule and
``AdaNPCConfig(method="t3a")`` the T3A baseline, through the same predictor and pipelines.

Departures from the reference code (yfzhang114/AdaNPC), on purpose: insertion confidence is the maximum of the
vote's probabilities (the reference's softmax over the normalised vote never passes its thresholds); the
memory starts empty (no random placeholder); the vote is an exact probability vector; T3A with
``filter_k=None`` keeps every support.
"""

from __future__ import annotations

from ..common.lazy import lazy_exports

_EXPORTS = {
    "AdaNPCConfig": "config",
    "AdaNPCMemory": "memory",
    "SOURCE": "memory",
    "TEST": "memory",
    "AdaNPCPredictor": "predictor",
    "AdaNPCPipeline": "pipeline",
    "AdaNPCTextClassificationPipeline": "pipeline",
    "AdaNPCImageClassificationPipeline": "pipeline",
    "AdaNPCAudioClassificationPipeline": "pipeline",
    "wrap": "pipeline",
    "T3AClassifier": "t3a",
    "knn_vote": "vote",
    "GuardState": "guard",
    "processor_kind": "predictor",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
