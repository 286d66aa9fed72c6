"""AdaNPC: test-time adaptation of Hugging Face classifiers with a non-parametric (kNN) memory.

Zhang et al., "AdaNPC: Exploring Non-Parametric Classifier for Test-Time Adaptation", ICML 2023. ``import hf_ada`` (through :mod:`hf_ada.adanpc.integration`)
registers the ``adanpc-text-classification``, ``adanpc-image-classification`` and
``adanpc-audio-classification`` pipeline tasks.

Where hf-ada departs from the reference code (yfzhang114/AdaNPC), on purpose:

* insertion confidence is the maximum of the vote's probability vector; the reference's softmax over the
  already normalised vote lies in about [0.10, 0.23] for 10 classes, so its thresholds never insert
  (:class:`AdaNPCConfig`, ``insert="confident"``);
* the memory starts empty (the reference seeds it with one random vector labelled 0);
* the vote is returned as an exact probability vector (the reference adds 1e-5 and clamps);
* T3A with ``filter_k=None`` keeps every support (the reference's ``-1`` drops one per class).

AdaNPC trusts its own predictions: under an abrupt, severe shift, mislabelled insertions can pull later
predictions further off and whole classes can vanish. By default (:mod:`hf_ada.adanpc.guard`) a *reach gate*
decides who answers each batch: within the memory's reach (its inputs about as close to the memory as training
entries are to each other, as in a gradual drift) the vote answers, blended with T3A run alongside
(``blend_t3a``), and every prediction is inserted; out of reach (an abrupt jump) T3A answers and nothing is
inserted. Class balance and a collapse monitor stay on as a second line.
``AdaNPCConfig.unguarded()`` is the paper's rule;
``AdaNPCConfig(method="t3a")`` runs the T3A baseline through the same predictor and pipelines.
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
