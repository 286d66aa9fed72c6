"""AdaNPC as transformers pipelines: ``pipeline("adanpc-text-classification", model=..., memory=train_ds)``.

:class:`AdaNPCPipeline` is a :class:`transformers.Pipeline` that swaps the model's own head for the AdaNPC
vote (see :class:`~hf_ada.adanpc.predictor.AdaNPCPredictor`) and inserts what it predicts. Concrete tasks
inherit from both it and the matching transformers pipeline, so preprocessing, batching, device handling
and the output format (``label``/``score``, ``top_k``) are exactly the wrapped pipeline's:

* ``adanpc-text-classification``  -> :class:`AdaNPCTextClassificationPipeline`
* ``adanpc-image-classification`` -> :class:`AdaNPCImageClassificationPipeline`
* ``adanpc-audio-classification`` -> :class:`AdaNPCAudioClassificationPipeline`

``score`` is the AdaNPC vote probability (``function_to_apply`` is forced to ``"none"``). Insertion happens
per model batch (``batch_size``), in input order, as the collapse guard allows (on by default); pass
``adapt=False`` to a call to only vote. ``adanpc_config={"method": "t3a"}`` runs T3A instead (the usual
baseline), everything else unchanged. The memory is featurized through the pipeline's own preprocessing,
so it sees exactly what predictions see. Unknown keyword arguments raise ``TypeError``.

Loading: ``pipeline("adanpc-...", model=<saved predictor folder>)`` and :meth:`AdaNPCPipeline.from_pretrained`
both go through :meth:`AdaNPCPredictor.from_pretrained` (every file verified, label map checked).
"""

from __future__ import annotations

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

from .config import CONFIG_NAME, AdaNPCConfig
from .memory import AdaNPCMemory
from .predictor import AdaNPCPredictor, processor_kind

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
        show_progress: progress bar while the memory is built (``None``: on unless ``TQDM_DISABLE`` is set).
    Call arguments: everything the wrapped pipeline accepts, plus ``adapt`` (default ``True``).
    Any other keyword argument raises ``TypeError`` (it would otherwise be silently ignored).
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
        show_progress: bool | None = None,
        **kwargs: Any,
    ):
        _check_kwargs(type(self), kwargs, constructor=True)
        super().__init__(*args, **kwargs)
        if predictor is not None:
            if predictor.model is not self.model:
                raise ValueError("predictor.model must be the pipeline's model (use AdaNPCPipeline.from_predictor)")
            if adanpc_config is not None:
                raise ValueError("pass either predictor= or adanpc_config=, not both")
            self.predictor = predictor
        else:
            if isinstance(adanpc_config, dict):
                unknown = sorted(set(adanpc_config) - set(AdaNPCConfig.__dataclass_fields__))
                if unknown:
                    raise TypeError(f"adanpc_config has unknown keys {unknown}; allowed: "
                                    f"{sorted(AdaNPCConfig.__dataclass_fields__)}")
                adanpc_config = AdaNPCConfig(**adanpc_config)
            elif adanpc_config is not None and not isinstance(adanpc_config, AdaNPCConfig):
                raise TypeError(f"adanpc_config must be an AdaNPCConfig or a dict, got {type(adanpc_config).__name__}")
            processor = self.tokenizer or self.image_processor or self.feature_extractor
            saved = _saved_predictor_folder(self.model)
            if saved is not None:
                # pipeline("adanpc-...", model="<saved predictor>"): the one load path, with every check
                if memory is not None or adanpc_config is not None:
                    raise ValueError(
                        f"{saved} is a saved AdaNPC predictor: it brings its own memory and config; do not pass "
                        "memory= or adanpc_config= with it (load it, then change predictor.config or reset())"
                    )
                self.predictor = AdaNPCPredictor.from_pretrained(saved, model=self.model, processor=processor)
            else:
                self.predictor = AdaNPCPredictor(self.model, processor, adanpc_config)
        if isinstance(memory, AdaNPCMemory):
            self.predictor._attach_memory(memory)
        elif memory is not None:
            self.predictor.build_memory(
                memory, input_column=input_column, label_column=label_column, batch_size=memory_batch_size,
                show_progress=show_progress, encode=self._encode_raw,
            )

    def _encode_raw(self, rows: list[Any]) -> dict[str, Any]:
        """Model inputs for raw inputs, through this pipeline's own ``preprocess`` (the RGB conversion of
        images, the tokenizer settings) and its batch collation, as a prediction would see them."""
        from transformers.pipelines.base import pad_collate_fn

        if isinstance(self, AudioClassificationPipeline):  # datasets returns a plain audio column as lists
            import numpy as np

            rows = [np.asarray(row, dtype=np.float32) if isinstance(row, list) else row for row in rows]
        items = [self.preprocess(row, **self._preprocess_params) for row in rows]
        extractor = self.feature_extractor if self.feature_extractor is not None else self.image_processor
        batch = pad_collate_fn(self.tokenizer, extractor)(items)
        return self._ensure_tensor_on_device(batch, device=self.device)

    # --------------------------------------------------------------- pipeline hooks
    def _sanitize_parameters(self, adapt: bool | None = None, **kwargs: Any):
        _check_kwargs(type(self), kwargs, constructor=False)
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
    def save_pretrained(self, save_directory: str | os.PathLike, *, overwrite: bool = True,  # noqa: D102
                        protected: tuple[str | os.PathLike, ...] = (), **kwargs: Any) -> Path:
        """Save the predictor (model, processor, config, memory, guard state, card) into ``save_directory``
        with the artifact protocol (:meth:`AdaNPCPredictor.save_pretrained`): only its own files are written."""
        unknown = sorted(set(kwargs) - {"push_to_hub", "repo_id"})
        if unknown:
            raise TypeError(f"unsupported save_pretrained arguments {unknown}; allowed: overwrite, protected, "
                            "push_to_hub, repo_id (use push_to_hub() for more upload options)")
        return self.predictor.save_pretrained(save_directory, overwrite=overwrite, protected=protected, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:  # type: ignore[override]
        """Upload the predictor as a model repo (see :meth:`AdaNPCPredictor.push_to_hub`)."""
        return self.predictor.push_to_hub(repo_id, **kwargs)

    @classmethod
    def from_predictor(cls, predictor: AdaNPCPredictor, **kwargs: Any) -> AdaNPCPipeline:
        """The pipeline for ``predictor`` (task chosen from its processor / model class)."""
        proc = predictor.processor
        proc_kw = processor_kind(proc)
        tasks = {"tokenizer": AdaNPCTextClassificationPipeline, "image_processor": AdaNPCImageClassificationPipeline,
                 "feature_extractor": AdaNPCAudioClassificationPipeline}
        if proc_kw not in tasks:
            raise ValueError(f"the predictor's processor ({type(proc).__name__}) is not a tokenizer, image processor "
                             "or feature extractor, so no AdaNPC pipeline can preprocess its inputs")
        task_cls = tasks[proc_kw]
        if cls not in (AdaNPCPipeline, task_cls):
            raise ValueError(f"{cls.__name__} cannot serve a predictor whose processor is {type(proc).__name__}")
        return task_cls(model=predictor.model, predictor=predictor, task=task_cls.task_name, **{proc_kw: proc}, **kwargs)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *, subfolder: str | None = None,
                        revision: str | None = None, token: str | bool | None = None,
                        cache_dir: str | os.PathLike | None = None, local_files_only: bool = False,
                        force_download: bool = False, **kwargs: Any) -> AdaNPCPipeline:
        """Load a saved predictor (folder or Hub repo) as a pipeline through
        :meth:`AdaNPCPredictor.from_pretrained`; ``kwargs`` go to the pipeline (device, batch_size...)."""
        predictor = AdaNPCPredictor.from_pretrained(
            path_or_repo_id, subfolder=subfolder, revision=revision, token=token, cache_dir=cache_dir,
            local_files_only=local_files_only, force_download=force_download,
        )
        return cls.from_predictor(predictor, **kwargs)


def _saved_predictor_folder(model: Any) -> Path | None:
    """The local folder ``model`` was loaded from, if it holds a saved AdaNPC predictor."""
    name = getattr(model, "name_or_path", "") or ""
    folder = Path(name) if name else None
    if folder is not None and folder.is_dir() and (folder / CONFIG_NAME).is_file():
        return folder
    return None


# keyword arguments transformers' Pipeline constructor reads (besides its named parameters)
_PIPELINE_KWARGS = {"args_parser", "torch_dtype", "dtype", "assistant_model", "assistant_tokenizer", "batch_size",
                    "num_workers", "model", "tokenizer", "feature_extractor", "image_processor", "video_processor",
                    "processor", "task", "device", "binary_output", "modelcard", "framework"}
# tokenizer settings TextClassificationPipeline forwards to its tokenizer
_TOKENIZER_KWARGS = {"truncation", "padding", "max_length", "stride", "add_special_tokens", "return_token_type_ids",
                     "return_all_scores", "pad_to_multiple_of"}


def _call_kwargs(task_cls: type) -> set[str]:
    """The call-time options of the transformers pipeline ``task_cls`` wraps."""
    import inspect

    base = next(c for c in task_cls.__mro__ if c in (TextClassificationPipeline, ImageClassificationPipeline,
                                                      AudioClassificationPipeline))
    named = {name for name, p in inspect.signature(base._sanitize_parameters).parameters.items()
             if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return named | (_TOKENIZER_KWARGS if base is TextClassificationPipeline else set())


def _check_kwargs(task_cls: type, kwargs: dict[str, Any], constructor: bool) -> None:
    """Raise ``TypeError`` naming unknown keyword arguments and the allowed ones."""
    if task_cls is AdaNPCPipeline:
        return
    allowed = _call_kwargs(task_cls) | ({"adapt"} if not constructor else _PIPELINE_KWARGS)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        extra = ["memory", "predictor", "adanpc_config", "input_column", "label_column", "memory_batch_size",
                 "show_progress"] if constructor else []
        raise TypeError(
            f"{task_cls.__name__} got unknown keyword arguments {unknown}; allowed: {sorted(allowed | set(extra))} "
            "(AdaNPC settings go in adanpc_config=AdaNPCConfig(...) or a dict)"
        )


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
    *,
    input_column: str | None = None,
    label_column: str = "label",
    memory_batch_size: int = 32,
    show_progress: bool | None = None,
    **call_defaults: Any,
) -> AdaNPCPipeline:
    """AdaNPC around an existing text / image / audio classification pipeline (same model, processor, device).

    ``memory`` is a labelled dataset (featurized through the pipeline's own preprocessing) or an
    :class:`AdaNPCMemory`; the options the existing pipeline was created with (``truncation=True``,
    ``top_k``...) carry over, and ``call_defaults`` add to or override them. Unknown keyword arguments raise
    ``TypeError``.
    """
    if isinstance(existing, AdaNPCPipeline):
        raise ValueError("this pipeline already is an AdaNPC pipeline")
    for base_cls, task_cls in _WRAPPED:
        if isinstance(existing, base_cls):
            break
    else:
        allowed = [b.__name__ for b, _ in _WRAPPED]
        raise ValueError(f"wrap() needs one of {allowed}, got {type(existing).__name__}")
    # pipeline("text-classification", ..., truncation=True): keep what the user set on the existing pipeline
    inherited = {key: value for params in (existing._preprocess_params, existing._forward_params,
                                           existing._postprocess_params)
                 for key, value in params.items() if not key.startswith("_")}  # "_legacy": derived from top_k
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
        input_column=input_column,
        label_column=label_column,
        memory_batch_size=memory_batch_size,
        show_progress=show_progress,
        **{**inherited, **call_defaults},
    )
