"""AdaNPC: test-time adaptation of Hugging Face classifiers with a non-parametric (kNN) memory.

Zhang et al., "AdaNPC: Exploring Non-Parametric Classifier for Test-Time Adaptation", ICML 2023. Importing
this package registers the ``adanpc-text-classification``, ``adanpc-image-classification`` and
``adanpc-audio-classification`` pipeline tasks.
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
