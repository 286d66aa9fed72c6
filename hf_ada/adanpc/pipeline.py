"""AdaNPC as transformers pipelines: ``pipeline("adanpc-text-classification", model=..., memory=train_ds)``.

:class:`AdaNPCPipeline` is a :class:`transformers.Pipeline` that swaps the model's own head for the AdaNPC
vote (see :class:`~hf_ada.adanpc.predictor.AdaNPCPredictor`) and inserts what it predicts. Concrete tasks
inherit from both it and the matching transformers pipeline, so preprocessing, batching, device handling
and the output format (``label``/``score``, ``top_k``) are exactly the wrapped pipeline's:

* ``adanpc-text-classification``  -> :class:`AdaNPCTextClassificationPipeline`
* ``adanpc-image-classification`` -> :class:`AdaNPCImageClassificationPipeline`
* ``adanpc-audio-classification`` -> :class:`AdaNPCAudioClassificationPipeline`

``score`` is the AdaNPC vote probability (``function_to_apply`` is forced to ``"none"``). Insertion happens
per model batch (``batch_size``), in input order; pass ``adapt=False`` to a call to only vote.
"""

from __future__ import annotations

import sys

import logging
import os
from pathlib import Path
from typing import Any

from transformers import (
    AudioClassificationPipeline,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    ImageClassificationPipeline,
    Pipeline,
    TextClassificationPipeline,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.pipelines import PIPELINE_REGISTRY

from .config import CONFIG_NAME, AdaNPCConfig
from .memory import MEMORY_NAME, AdaNPCMemory
from .predictor import AdaNPCPredictor

logger = logging.getLogger(__name__)

__all__ = [
    "AdaNPCPipeline",
    "AdaNPCTextClassificationPipeline",
    "AdaNPCImageClassificationPipeline",
    "AdaNPCAudioClassificationPipeline",
    "TASKS",
    "wrap",
]


class AdaNPCPipeline(Pipeline):
    """Base of the AdaNPC pipelines (a transformers :class:`~transformers.Pipeline`).

    Extra constructor arguments (all keyword-only, accepted by :func:`transformers.pipeline` too):
        memory: a labelled :class:`datasets.Dataset` (featurized in batches with this pipeline's model) or an
            :class:`AdaNPCMemory`.
        predictor: an existing :class:`AdaNPCPredictor` for this model (instead of ``memory``/``adanpc_config``).
        adanpc_config: :class:`AdaNPCConfig` or a dict of its fields.
        input_column / label_column / memory_batch_size: how to read ``memory`` when it is a dataset.
    Call arguments: everything the wrapped pipeline accepts, plus ``adapt`` (default ``True``).
    """

    base_task: str = ""

    def __init__(
        self,
        *args: Any,
        memory: Any = None,
        predictor: AdaNPCPredictor | None = None,
        adanpc_config: AdaNPCConfig | dict[str, Any] | None = None,
        input_column: str | None = None,
        label_column: str = "label",
        memory_batch_size: int = 32,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if predictor is not None:
            if predictor.model is not self.model:
                raise ValueError("predictor.model must be the pipeline's model (use AdaNPCPipeline.from_predictor)")
            if adanpc_config is not None:
                raise ValueError("pass either predictor= or adanpc_config=, not both")
            self.predictor = predictor
        else:
            if isinstance(adanpc_config, dict):
                adanpc_config = AdaNPCConfig(**adanpc_config)
            processor = self.tokenizer or self.image_processor or self.feature_extractor
            saved = _saved_predictor_folder(self.model)
            if saved is not None and memory is None:
                # pipeline("adanpc-...", model="<folder saved by save_pretrained>") restores config and memory
                loaded_memory, _ = AdaNPCMemory.load(saved / MEMORY_NAME)
                memory = loaded_memory
                if adanpc_config is None:
                    adanpc_config = AdaNPCConfig.from_pretrained(saved)
            self.predictor = AdaNPCPredictor(self.model, processor, adanpc_config)
        if isinstance(memory, AdaNPCMemory):
            self.predictor._attach_memory(memory)
        elif memory is not None:
            self.predictor.build_memory(
                memory, input_column=input_column, label_column=label_column, batch_size=memory_batch_size
            )

    # --------------------------------------------------------------- pipeline hooks
    def _sanitize_parameters(self, adapt: bool | None = None, **kwargs: Any):
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        if kwargs.get("function_to_apply") not in (None, "none"):
            raise ValueError("AdaNPC pipelines return vote probabilities: function_to_apply must be None or 'none'")
        postprocess["function_to_apply"] = super()._sanitize_parameters(function_to_apply="none")[2]["function_to_apply"]
        if adapt is not None:
            forward["adapt"] = bool(adapt)
        return preprocess, forward, postprocess

    def _forward(self, model_inputs: dict[str, Any], adapt: bool = True) -> SequenceClassifierOutput:
        import torch

        probs, _ = self.predictor.predict_model_inputs(dict(model_inputs), adapt=adapt)
        return SequenceClassifierOutput(logits=torch.from_numpy(probs))

    # --------------------------------------------------------------- adaptation state
    @property
    def memory(self) -> AdaNPCMemory | None:
        return self.predictor.memory

    def reset(self) -> None:
        """Forget the test entries inserted so far."""
        self.predictor.reset()

    # --------------------------------------------------------------- saving and sharing
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:  # noqa: D102
        """Save the predictor (model, processor, config, memory, card) into ``save_directory``."""
        if kwargs:
            raise ValueError(f"unsupported save_pretrained arguments {sorted(kwargs)}; use push_to_hub() to upload")
        self.predictor.save_pretrained(save_directory)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:  # type: ignore[override]
        """Upload the predictor as a model repo (see :meth:`AdaNPCPredictor.push_to_hub`)."""
        return self.predictor.push_to_hub(repo_id, **kwargs)

    @classmethod
    def from_predictor(cls, predictor: AdaNPCPredictor, **kwargs: Any) -> AdaNPCPipeline:
        """The pipeline for ``predictor`` (task chosen from its processor / model class)."""
        from transformers import PreTrainedTokenizerBase
        from transformers.image_processing_utils import BaseImageProcessor

        proc = predictor.processor
        if isinstance(proc, PreTrainedTokenizerBase):
            task_cls, proc_kw = AdaNPCTextClassificationPipeline, "tokenizer"
        elif isinstance(proc, BaseImageProcessor):
            task_cls, proc_kw = AdaNPCImageClassificationPipeline, "image_processor"
        elif proc is not None:
            task_cls, proc_kw = AdaNPCAudioClassificationPipeline, "feature_extractor"
        else:
            raise ValueError("the predictor has no processor, so no pipeline can preprocess its inputs")
        if cls not in (AdaNPCPipeline, task_cls):
            raise ValueError(f"{cls.__name__} cannot serve a predictor whose processor is {type(proc).__name__}")
        return task_cls(model=predictor.model, predictor=predictor, task=task_cls.task_name, **{proc_kw: proc}, **kwargs)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *, revision: str | None = None,
                        token: str | bool | None = None, cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False, **kwargs: Any) -> AdaNPCPipeline:
        """Load a saved predictor (folder or Hub repo) as a pipeline; ``kwargs`` go to the pipeline (device...)."""
        predictor = AdaNPCPredictor.from_pretrained(
            path_or_repo_id, revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only
        )
        return cls.from_predictor(predictor, **kwargs)


def _saved_predictor_folder(model: Any) -> Path | None:
    """The local folder ``model`` was loaded from, if it is a saved AdaNPC predictor."""
    name = getattr(model, "name_or_path", "") or ""
    folder = Path(name) if name else None
    if folder is not None and (folder / CONFIG_NAME).is_file() and (folder / MEMORY_NAME).is_file():
        return folder
    return None


class AdaNPCTextClassificationPipeline(AdaNPCPipeline, TextClassificationPipeline):
    """``adanpc-text-classification``: AdaNPC around :class:`~transformers.TextClassificationPipeline`."""

    task_name = "adanpc-text-classification"


class AdaNPCImageClassificationPipeline(AdaNPCPipeline, ImageClassificationPipeline):
    """``adanpc-image-classification``: AdaNPC around :class:`~transformers.ImageClassificationPipeline`."""

    task_name = "adanpc-image-classification"


class AdaNPCAudioClassificationPipeline(AdaNPCPipeline, AudioClassificationPipeline):
    """``adanpc-audio-classification``: AdaNPC around :class:`~transformers.AudioClassificationPipeline`."""

    task_name = "adanpc-audio-classification"


TASKS = {
    AdaNPCTextClassificationPipeline.task_name: (AdaNPCTextClassificationPipeline, AutoModelForSequenceClassification, "text"),
    AdaNPCImageClassificationPipeline.task_name: (AdaNPCImageClassificationPipeline, AutoModelForImageClassification, "image"),
    AdaNPCAudioClassificationPipeline.task_name: (AdaNPCAudioClassificationPipeline, AutoModelForAudioClassification, "audio"),
}
_WRAPPED = (
    (TextClassificationPipeline, AdaNPCTextClassificationPipeline),
    (ImageClassificationPipeline, AdaNPCImageClassificationPipeline),
    (AudioClassificationPipeline, AdaNPCAudioClassificationPipeline),
)


def wrap(
    existing: Pipeline,
    memory: Any = None,
    adanpc_config: AdaNPCConfig | dict[str, Any] | None = None,
    **kwargs: Any,
) -> AdaNPCPipeline:
    """AdaNPC around an existing text / image / audio classification pipeline (same model, processor, device).

    ``memory`` is a labelled dataset or an :class:`AdaNPCMemory`; ``kwargs`` are the :class:`AdaNPCPipeline`
    options (``input_column``, ``label_column``, ``memory_batch_size``) and pipeline call defaults.
    """
    if isinstance(existing, AdaNPCPipeline):
        raise ValueError("this pipeline already is an AdaNPC pipeline")
    for base_cls, task_cls in _WRAPPED:
        if isinstance(existing, base_cls):
            break
    else:
        allowed = [b.__name__ for b, _ in _WRAPPED]
        raise ValueError(f"wrap() needs one of {allowed}, got {type(existing).__name__}")
    return task_cls(
        model=existing.model,
        tokenizer=existing.tokenizer,
        feature_extractor=existing.feature_extractor,
        image_processor=existing.image_processor,
        device=existing.device,
        batch_size=existing._batch_size,
        task=task_cls.task_name,
        memory=memory,
        adanpc_config=adanpc_config,
        **kwargs,
    )
