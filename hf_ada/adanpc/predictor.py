"""AdaNPCPredictor: a classification model plus a kNN memory that adapts while it predicts.

Order semantics:

* **Batch**: every sample of a batch is voted against the memory as it was *before* the batch; the batch's
  own entries are inserted afterwards, in batch order (as in the reference). A sample therefore never
  votes for itself, and results depend on how a stream is cut into batches.
* **Stream**: batch size 1, each prediction sees every earlier insertion.

:meth:`AdaNPCPredictor.reset` forgets the test entries and keeps the source memory.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..common.files import atomic_directory, read_json
from .config import CONFIG_NAME, AdaNPCConfig
from .features import FeatureHook
from .memory import MEMORY_NAME, SOURCE, TEST, AdaNPCMemory
from .vote import knn_vote

logger = logging.getLogger(__name__)

__all__ = ["AdaNPCPredictor"]

_INPUT_COLUMN_GUESSES = ("text", "sentence", "image", "img", "audio", "pixel_values", "input_values")


def _id2label(model: torch.nn.Module) -> dict[int, str]:
    return {int(k): str(v) for k, v in model.config.id2label.items()}


class AdaNPCPredictor:
    """Test-time adaptation of a classification model with a non-parametric (kNN) classifier (AdaNPC).

    Args:
        model: any transformers ``*ForSequenceClassification`` / ``*ForImageClassification`` /
            ``*ForAudioClassification`` (single-label) model.
        processor: its tokenizer / image processor / feature extractor (needed to predict raw inputs,
            build a memory from a raw dataset and save the predictor).
        config: :class:`AdaNPCConfig` (defaults if ``None``).
        memory: an existing :class:`AdaNPCMemory`; by default an empty one is created.

    Example::

        predictor = AdaNPCPredictor(model, tokenizer, AdaNPCConfig(k=10, temperature=0.1))
        predictor.build_memory(train_dataset, input_column="text", label_column="label")
        probs = predictor.predict(["a test sentence", "another one"])   # adapts as it goes
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any | None = None,
        config: AdaNPCConfig | None = None,
        memory: AdaNPCMemory | None = None,
    ):
        self.config = config if config is not None else AdaNPCConfig()
        self.config.validate()
        problem_type = getattr(model.config, "problem_type", None)
        if problem_type in ("multi_label_classification", "regression"):
            raise ValueError(
                f"AdaNPC needs a single-label classifier; model.config.problem_type is {problem_type!r} "
                "(allowed: None or 'single_label_classification')"
            )
        self.model = model.eval()
        self.processor = processor
        self.hook = FeatureHook(model, self.config.feature_layer)
        self.id2label = _id2label(model)
        self.num_labels = int(model.config.num_labels)
        if sorted(self.id2label) != list(range(self.num_labels)):
            raise ValueError(f"model.config.id2label must map 0..{self.num_labels - 1}, got keys {sorted(self.id2label)}")
        self.label2id = {label: idx for idx, label in self.id2label.items()}
        self.memory: AdaNPCMemory | None = None
        if memory is not None:
            self._attach_memory(memory)
        elif self.hook.static_dim is not None:
            self._attach_memory(self._new_memory(self.hook.static_dim))

    def close(self) -> None:
        """Remove the feature hook from the model (the predictor cannot predict afterwards)."""
        self.hook.remove()

    def __del__(self) -> None:
        hook = getattr(self, "hook", None)
        if hook is not None:
            try:
                hook.remove()
            except Exception:  # noqa: BLE001  (interpreter shutdown)
                pass

    # ------------------------------------------------------------------ memory management
    def _new_memory(self, dim: int) -> AdaNPCMemory:
        return AdaNPCMemory(dim, self.config.metric, self.config.capacity, self.config.evict_source)

    def _attach_memory(self, memory: AdaNPCMemory) -> None:
        if memory.metric != self.config.metric:
            raise ValueError(f"memory metric {memory.metric!r} differs from config.metric {self.config.metric!r}")
        dim = self.hook.static_dim
        if dim is not None and memory.dim != dim:
            raise ValueError(
                f"memory feature dim {memory.dim} does not match the model's feature dim {dim} "
                f"(feature layer {self.hook.module_name!r}); the memory was built with another model or layer"
            )
        if len(memory) and int(memory.labels.max()) >= self.num_labels:
            raise ValueError(
                f"memory holds label id {int(memory.labels.max())}, outside the model's id2label "
                f"(0..{self.num_labels - 1})"
            )
        memory.capacity, memory.evict_source = self.config.capacity, self.config.evict_source
        self.memory = memory

    def _memory_for(self, features: np.ndarray) -> AdaNPCMemory:
        if self.memory is None:
            self._attach_memory(self._new_memory(int(features.shape[1])))
        elif features.shape[1] != self.memory.dim:
            raise ValueError(
                f"features have dim {features.shape[1]} but the memory's feature dim is {self.memory.dim} "
                f"(feature layer {self.hook.module_name!r}); memory and model do not match"
            )
        return self.memory

    def label_ids(self, labels: Iterable[Any]) -> np.ndarray:
        """Map labels (ids or names from ``model.config.id2label``) to ids; anything else is an error."""
        out = []
        for value in labels:
            if isinstance(value, (str, np.str_)):
                if value not in self.label2id:
                    raise ValueError(
                        f"label {value!r} is not in the model's id2label; allowed: {sorted(self.label2id)}"
                    )
                out.append(self.label2id[value])
            else:
                idx = int(value)
                if idx not in self.id2label:
                    raise ValueError(
                        f"label id {idx} is outside the model's id2label (0..{self.num_labels - 1}); "
                        "did the dataset and the model use different label sets?"
                    )
                out.append(idx)
        return np.asarray(out, dtype=np.int64)

    def add_source(self, features: Any, labels: Iterable[Any]) -> int:
        """Add labelled source (training-domain) features to the memory."""
        feats = np.asarray(features, dtype=np.float32)
        return self._memory_for(feats).add(feats, self.label_ids(labels), origin=SOURCE)

    def build_memory(
        self,
        dataset: Any,
        input_column: str | None = None,
        label_column: str = "label",
        batch_size: int = 32,
        show_progress: bool = True,
    ) -> AdaNPCPredictor:
        """Featurize a labelled :class:`datasets.Dataset` in batches and add it to the memory as source."""
        columns = list(getattr(dataset, "column_names", []))
        if label_column not in columns:
            raise ValueError(f"label_column {label_column!r} not in the dataset's columns {columns}")
        if input_column is None:
            guesses = [c for c in _INPUT_COLUMN_GUESSES if c in columns] or [c for c in columns if c != label_column]
            if not guesses:
                raise ValueError(f"no input column in {columns}; pass input_column=")
            input_column = guesses[0]
        elif input_column not in columns:
            raise ValueError(f"input_column {input_column!r} not in the dataset's columns {columns}")
        labels = self.label_ids(dataset[label_column])  # checked before any model work
        for start in tqdm(range(0, len(dataset), batch_size), desc="AdaNPC memory", disable=not show_progress):
            rows = dataset[start : start + batch_size][input_column]
            features, _ = self.hook.run(self.encode(rows))
            self._memory_for(features).add(features, labels[start : start + len(rows)], origin=SOURCE)
        info = getattr(dataset, "info", None)
        name = getattr(info, "dataset_name", None) or getattr(info, "builder_name", None)
        self.memory.info.setdefault("sources", []).append(
            {
                "dataset": name or "datasets.Dataset (in memory)",
                "fingerprint": getattr(dataset, "_fingerprint", None),
                "num_rows": len(dataset),
                "input_column": input_column,
                "label_column": label_column,
            }
        )
        return self

    def reset(self) -> None:
        """Forget every inserted test entry (the source memory stays)."""
        if self.memory is not None:
            self.memory.reset()

    # ------------------------------------------------------------------ inputs
    def encode(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Turn raw inputs (texts, PIL images, audio arrays) into model inputs with the processor."""
        from transformers import PreTrainedTokenizerBase
        from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
        from transformers.image_processing_utils import BaseImageProcessor

        proc = self.processor
        inputs = list(inputs)
        if proc is None:
            raise ValueError("this predictor has no processor: pass processor= or use predict_model_inputs()")
        if isinstance(proc, PreTrainedTokenizerBase):
            encoded = proc(inputs, padding=True, truncation=True, return_tensors="pt")
        elif isinstance(proc, BaseImageProcessor) or hasattr(proc, "image_mean"):
            encoded = proc(images=inputs, return_tensors="pt")
        elif isinstance(proc, SequenceFeatureExtractor):
            arrays = [x["array"] if isinstance(x, dict) else x for x in inputs]
            encoded = proc(arrays, sampling_rate=proc.sampling_rate, padding=True, return_tensors="pt")
        else:
            encoded = proc(inputs, return_tensors="pt")
        device = self.model.device
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in dict(encoded).items()}

    # ------------------------------------------------------------------ prediction
    def vote(self, features: Any) -> np.ndarray:
        """Probabilities ``(batch, num_labels)`` from the k nearest memories (no insertion)."""
        feats = np.asarray(features, dtype=np.float32)
        memory = self._memory_for(feats)
        similarities, labels, _ = memory.search(feats, self.config.k)
        return knn_vote(similarities, labels, self.num_labels, self.config.temperature)

    def insert(self, features: Any, probs: np.ndarray) -> int:
        """Insert test features with their predicted labels according to ``config.insert``."""
        if self.config.insert == "none":
            return 0
        feats = np.asarray(features, dtype=np.float32)
        predicted = probs.argmax(axis=1)
        keep = np.ones(len(predicted), dtype=bool)
        if self.config.insert == "confident":
            keep = probs.max(axis=1) >= self.config.confidence_threshold
        return self._memory_for(feats).add(feats[keep], predicted[keep], origin=TEST)

    def predict_features(self, features: Any, adapt: bool = True) -> np.ndarray:
        """Vote for a batch of features, then (if ``adapt``) insert them; see the module doc for order."""
        probs = self.vote(features)
        if adapt:
            self.insert(features, probs)
        return probs

    def predict_model_inputs(self, model_inputs: dict[str, Any], adapt: bool = True) -> tuple[np.ndarray, torch.Tensor]:
        """Run the model on prepared inputs; return ``(AdaNPC probabilities, the model's own logits)``."""
        features, logits = self.hook.run(model_inputs)
        return self.predict_features(features, adapt=adapt), logits

    def predict(self, inputs: Sequence[Any], adapt: bool = True, batch_size: int = 32) -> np.ndarray:
        """Probabilities for raw inputs, processed (and inserted) in batches of ``batch_size``, in order."""
        inputs = list(inputs)
        out = [
            self.predict_model_inputs(self.encode(inputs[i : i + batch_size]), adapt=adapt)[0]
            for i in range(0, len(inputs), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.num_labels), dtype=np.float32)

    __call__ = predict

    # ------------------------------------------------------------------ saving and sharing
    def card_values(self, repo_id: str | None = None) -> dict[str, Any]:
        """Values the model card template is filled with (all read from this predictor)."""
        memory = self.memory
        return {
            "repo_id": repo_id,
            "base_model": getattr(self.model.config, "_name_or_path", "") or None,
            "model_class": type(self.model).__name__,
            "processor_class": type(self.processor).__name__ if self.processor is not None else None,
            "feature_layer": self.hook.module_name + (":output" if self.hook.use_output else ""),
            "feature_dim": memory.dim if memory else self.hook.static_dim,
            "num_labels": self.num_labels,
            "labels": [self.id2label[i] for i in range(self.num_labels)],
            "memory_size": len(memory) if memory else 0,
            "num_source": memory.num_source if memory else 0,
            "num_test": memory.num_test if memory else 0,
            "sources": memory.info.get("sources", []) if memory else [],
            "config": self.config.to_dict(),
        }

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write model, processor, ``adanpc_config.json``, ``memory.safetensors`` and ``README.md`` atomically."""
        from ..common.cards import save_card

        if self.memory is None or len(self.memory) == 0:
            logger.warning("saving an AdaNPC predictor with an empty memory")
        with atomic_directory(save_directory) as tmp:
            self.model.save_pretrained(tmp)
            if self.processor is not None:
                self.processor.save_pretrained(tmp)
            self.config.save_pretrained(tmp)
            memory = self.memory if self.memory is not None else self._new_memory(self.hook.static_dim or 1)
            memory.save(tmp / MEMORY_NAME, extra_metadata={"id2label": self.id2label, "num_labels": self.num_labels})
            save_card(_render_card(self.card_values()), tmp)
        return Path(save_directory)

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
    ) -> AdaNPCPredictor:
        """Restore a predictor from a folder or a Hub model repo; everything pulled is checked first."""
        from ..common.hub import resolve_folder

        folder = resolve_folder(
            path_or_repo_id, revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only
        )
        for name in (CONFIG_NAME, MEMORY_NAME, "config.json"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{path_or_repo_id!r} is not an AdaNPC predictor: {name} is missing in {folder}")
        config = AdaNPCConfig.from_pretrained(folder)
        memory, metadata = AdaNPCMemory.load(folder / MEMORY_NAME, config.capacity, config.evict_source)
        model = _load_model(folder)
        saved_labels = {int(k): v for k, v in json.loads(metadata.get("id2label", "{}")).items()}
        if saved_labels != _id2label(model):
            raise ValueError(
                f"the memory's label map {saved_labels} differs from the model's id2label {_id2label(model)}: "
                "memory and model do not belong together"
            )
        return cls(model, _load_processor(folder), config, memory)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | bool | None = None,
        revision: str | None = None,
        private: bool | None = None,
        commit_message: str | None = None,
        create_pr: bool = False,
    ) -> str:
        """Save into a temporary folder and upload it as a model repo (via :func:`hf_ada.common.hub.push_folder`)."""
        from ..common.cards import save_card
        from ..common.hub import push_folder

        with tempfile.TemporaryDirectory(prefix="adanpc-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "predictor")
            save_card(_render_card(self.card_values(repo_id)), folder)
            return push_folder(
                folder,
                repo_id,
                repo_type="model",
                token=token,
                revision=revision,
                private=private,
                commit_message=commit_message or "Upload AdaNPC predictor with hf-ada",
                create_pr=create_pr,
            )


def _render_card(values: dict[str, Any]):
    from huggingface_hub import ModelCardData

    from ..common.cards import render_model_card

    base = values["base_model"]
    card_data = ModelCardData(
        library_name="hf-ada",
        tags=["hf-ada", "adanpc", "test-time-adaptation", "knn"],
        base_model=base if base and not os.path.isabs(str(base)) and "/" in str(base) else None,
    )
    return render_model_card("adanpc_predictor", card_data, **values)


def _load_model(folder: Path) -> torch.nn.Module:
    import transformers

    architectures = read_json(folder / "config.json").get("architectures") or []
    model_cls = getattr(transformers, architectures[0], None) if architectures else None
    if model_cls is None:
        raise ValueError(f"config.json in {folder} names no known transformers architecture ({architectures})")
    return model_cls.from_pretrained(folder)


def _load_processor(folder: Path) -> Any | None:
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer

    if (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(folder)
    preprocessor = folder / "preprocessor_config.json"
    if preprocessor.is_file():
        payload = read_json(preprocessor)
        if "image_processor_type" in payload:
            return AutoImageProcessor.from_pretrained(folder)
        return AutoFeatureExtractor.from_pretrained(folder)
    return None
