"""AdaNPC: test-time adaptation of Hugging Face classifiers with a non-parametric (kNN) memory.

Zhang et al., "AdaNPC: Exploring Non-Parametric Classifier for Test-Time Adaptation", ICML 2023. Importing
this package registers the ``adanpc-text-classification``, ``adanpc-image-classification`` and
``adanpc-audio-classification`` pipeline tasks.

Where hf-ada departs from the reference code (yfzhang114/AdaNPC), on purpose:

* insertion confidence is the maximum of the vote's probability vector; the reference's softmax over the
  already normalised vote lies in about [0.10, 0.23] for 10 classes, so its thresholds never insert
  (:class:`AdaNPCConfig`, ``insert="confident"``);
* the memory starts empty (the reference seeds it with one random vector labelled 0);
* the vote is returned as an exact probability vector (the reference adds 1e-5 and clamps);
* T3A with ``filter_k=None`` keeps every support (the reference's ``-1`` drops one per class).

AdaNPC trusts its own predictions: under an abrupt, severe shift, mislabelled insertions can pull later
predictions further off and whole classes can vanish. It is meant for gradual drift; ``reset()`` between
unrelated streams, or use ``insert="confident"``.
"""

from __future__ import annotations

from .config import AdaNPCConfig
from .memory import SOURCE, TEST, AdaNPCMemory
from .pipeline import (
    AdaNPCAudioClassificationPipeline,
    AdaNPCImageClassificationPipeline,
    AdaNPCPipeline,
    AdaNPCTextClassificationPipeline,
    register_pipelines,
    wrap,
)
from .predictor import AdaNPCPredictor
from .t3a import T3AClassifier
from .vote import knn_vote

register_pipelines()

__all__ = [
    "AdaNPCConfig",
    "AdaNPCMemory",
    "AdaNPCPredictor",
    "AdaNPCPipeline",
    "AdaNPCTextClassificationPipeline",
    "AdaNPCImageClassificationPipeline",
    "AdaNPCAudioClassificationPipeline",
    "T3AClassifier",
    "knn_vote",
    "register_pipelines",
    "wrap",
    "SOURCE",
    "TEST",
]
