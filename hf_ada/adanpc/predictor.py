"""AdaNPCPredictor: a classification model plus a kNN memory that adapts while it predicts.

Order semantics:

* **Batch**: every sample of a batch is voted against the memory as it was *before* the batch; the batch's
  own entries are inserted afterwards, in batch order (as in the reference). A sample therefore never
  votes for itself, and results depend on how a stream is cut into batches.
* **Stream**: batch size 1, each prediction sees every earlier insertion.

:meth:`AdaNPCPredictor.reset` forgets the test entries and keeps the source memory. Which predictions are
inserted, and when the memory goes back to its source entries by itself, is decided by the collapse guard
(:mod:`hf_ada.adanpc.guard`, on by default). With ``blend_t3a`` (default) the returned probabilities are the
mean of the vote's and T3A's (:mod:`hf_ada.adanpc.t3a`, fed the same batches); insertion follows the vote.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..common.artifact import ArtifactError, HubArtifactMixin
from ..common.files import loads_json, read_json
from .config import CONFIG_NAME, AdaNPCConfig
from .features import FeatureHook
from .guard import GuardState, calibrate_reach, calibrate_threshold, insertion_mask, within_reach
from .memory import MEMORY_NAME, SOURCE, TEST, AdaNPCMemory, integer_labels
from .t3a import T3AClassifier
from .vote import knn_vote, softmax

logger = logging.getLogger(__name__)

__all__ = ["AdaNPCPredictor"]

_INPUT_COLUMN_GUESSES = ("text", "sentence", "image", "img", "audio", "pixel_values", "input_values")
T3A_NAME = "t3a.safetensors"


#: ``build_memory`` sorts inputs by length within chunks of this many batches (bounded extra memory)
SORT_CHUNK_BATCHES = 64


def check_batch_size(batch_size: Any) -> None:
    """Raise ``ValueError`` naming ``batch_size`` unless it is an integer >= 1."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def progress_enabled(show_progress: bool | None) -> bool:
    """``show_progress`` if given, else on unless the ``TQDM_DISABLE`` environment variable is set."""
    if show_progress is not None:
        return bool(show_progress)
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("", "0", "false", "no")


def _id2label(model: torch.nn.Module) -> dict[int, str]:
    return {int(k): str(v) for k, v in model.config.id2label.items()}


class AdaNPCPredictor(HubArtifactMixin, card_template="adanpc_predictor"):
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

    Saving, loading and sharing follow hf-ada's artifact protocol (:mod:`hf_ada.common.artifact`): a save
    writes and replaces only the predictor's own files, a load verifies every file and the label map.
    """

    artifact_kind = "AdaNPC predictor"
    config_name = CONFIG_NAME
    repo_type = "model"

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
        self.guard = GuardState(self.config.collapse_window)
        #: T3A: the method itself (``method="t3a"``) or the vote's blending partner (``blend_t3a``)
        self.t3a = self._t3a_for(model)
        if memory is not None:
            self._attach_memory(memory)
        elif self.hook.static_dim is not None:
            self._attach_memory(self._new_memory(self.hook.static_dim))

    def _t3a_for(self, model: torch.nn.Module) -> T3AClassifier | None:
        if self.config.method == "t3a":
            return T3AClassifier.from_model(model, self.config.t3a_filter_k)
        if not self.config.blend_t3a:
            return None
        if self.config.feature_layer is not None:
            logger.warning("AdaNPC: blend_t3a needs the classification head's input as the feature, not "
                           "feature_layer=%r: the vote answers alone", self.config.feature_layer)
            return None
        try:
            return T3AClassifier.from_model(model, self.config.t3a_filter_k)
        except ValueError as err:
            logger.warning("AdaNPC: blend_t3a is on but T3A cannot run on this model (%s): the vote answers alone",
                           err)
            return None

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
        return AdaNPCMemory(dim, self.config.metric, self.config.capacity, self.config.evict_source,
                            self.config.memory_index, self.config.nprobe)

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
        memory.set_limits(self.config.capacity, self.config.evict_source)
        memory.set_search(self.config.memory_index, self.config.nprobe)
        self.memory = memory

    def _memory_for(self, features: np.ndarray) -> AdaNPCMemory:
        if features.ndim != 2:
            raise ValueError(f"features must be a 2-D (batch, dim) array, got shape {features.shape}")
        if self.memory is None:
            self._attach_memory(self._new_memory(int(features.shape[1])))
        elif features.shape[1] != self.memory.dim:
            raise ValueError(
                f"features have dim {features.shape[1]} but the memory's feature dim is {self.memory.dim} "
                f"(feature layer {self.hook.module_name!r}); memory and model do not match"
            )
        return self.memory

    def label_ids(self, labels: Iterable[Any], class_names: Sequence[str] | None = None) -> np.ndarray:
        """Map labels (ids or names from ``model.config.id2label``) to ids; anything else is an error.

        ``class_names``: the dataset's ``ClassLabel`` names, when ``labels`` are that column's ids: ids are
        then mapped by name to the model's ids (the two orders may differ). Names the model does not know
        are refused, unless the model only has placeholder names (``LABEL_0``...), whose ids are taken as is.
        Non-integral numbers (1.7), ``None`` and booleans are refused, never truncated.
        """
        values = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)
        mapping = self._class_name_mapping(class_names) if class_names is not None else None
        if not any(isinstance(v, (str, np.str_)) for v in values):  # ids only: vectorised
            ids = integer_labels(values)
            if mapping is not None:
                outside = ids[(ids >= len(class_names))]
                if outside.size:
                    raise ValueError(f"label id {int(outside[0])} is outside the dataset's ClassLabel names "
                                     f"{list(class_names)}")
                ids = np.asarray([mapping[i] for i in range(len(class_names))], dtype=np.int64)[ids] if ids.size else ids
            if ids.size and ids.max() >= self.num_labels:
                raise ValueError(
                    f"label id {int(ids.max())} is outside the model's id2label (0..{self.num_labels - 1}); "
                    "did the dataset and the model use different label sets?"
                )
            return ids
        out = []
        for value in values:
            if isinstance(value, (str, np.str_)):
                if value not in self.label2id:
                    raise ValueError(
                        f"label {value!r} is not in the model's id2label; allowed: {sorted(self.label2id)}"
                    )
                out.append(self.label2id[value])
                continue
            idx = int(integer_labels([value])[0])
            if mapping is not None:
                if idx not in mapping:
                    raise ValueError(f"label id {idx} is outside the dataset's ClassLabel names {list(class_names)}")
                idx = mapping[idx]
            if idx not in self.id2label:
                raise ValueError(
                    f"label id {idx} is outside the model's id2label (0..{self.num_labels - 1}); "
                    "did the dataset and the model use different label sets?"
                )
            out.append(idx)
        return np.asarray(out, dtype=np.int64)

    def _class_name_mapping(self, class_names: Sequence[str]) -> dict[int, int]:
        """Dataset ``ClassLabel`` id -> model id, by name."""
        names = [str(n) for n in class_names]
        if all(name in self.label2id for name in names):
            return {i: self.label2id[name] for i, name in enumerate(names)}
        if all(self.id2label[i] == f"LABEL_{i}" for i in range(self.num_labels)):
            return {i: i for i in range(len(names))}  # the model has no names of its own: ids as they are
        unknown = [n for n in names if n not in self.label2id]
        raise ValueError(
            f"the dataset's ClassLabel names {names} do not match the model's id2label {self.id2label} "
            f"(unknown: {unknown}); rename the dataset's classes (ClassLabel names) or the model's id2label so "
            "that they agree, so that each entry is stored under its own class"
        )

    def add_source(self, features: Any, labels: Iterable[Any]) -> int:
        """Add labelled source (training-domain) features to the memory."""
        feats = np.asarray(features, dtype=np.float32)
        added = self._memory_for(feats).add(feats, self.label_ids(labels), origin=SOURCE)
        self.guard.recalibrate()  # the source changed: calibrate again
        return added

    def build_memory(
        self,
        dataset: Any,
        input_column: str | None = None,
        label_column: str = "label",
        batch_size: int = 32,
        show_progress: bool | None = None,
        encode: Callable[[list[Any]], dict[str, Any]] | None = None,
    ) -> AdaNPCPredictor:
        """Featurize a labelled :class:`datasets.Dataset` in batches and add it to the memory as source.

        ``encode`` turns a list of raw inputs into model inputs (default: :meth:`encode`; the pipelines pass
        their own preprocessing, so the memory sees exactly what predictions see). ``show_progress``:
        ``None`` shows a bar unless ``TQDM_DISABLE`` is set.
        """
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
        check_batch_size(batch_size)
        names = getattr(getattr(dataset, "features", {}).get(label_column), "names", None)  # a ClassLabel
        labels = self.label_ids(dataset[label_column], class_names=names)  # checked before any model work
        encode = encode or self.encode
        chunk = batch_size * SORT_CHUNK_BATCHES
        with tqdm(total=len(dataset), desc="AdaNPC memory", unit="ex",
                  disable=not progress_enabled(show_progress)) as bar:
            for start in range(0, len(dataset), chunk):
                rows = dataset[start : start + chunk][input_column]
                features = self.featurize(rows, encode, batch_size, on_batch=bar.update)
                self._memory_for(features).add(features, labels[start : start + len(rows)], origin=SOURCE)
        self.guard.recalibrate()
        info = getattr(dataset, "info", None)
        name = getattr(info, "dataset_name", None) or getattr(info, "builder_name", None)
        self.memory.add_source_info(
            {
                "dataset": name or "datasets.Dataset (in memory)",
                "fingerprint": getattr(dataset, "_fingerprint", None),
                "num_rows": len(dataset),
                "input_column": input_column,
                "label_column": label_column,
            }
        )
        return self

    def featurize(self, rows: Sequence[Any], encode: Callable[[list[Any]], dict[str, Any]] | None = None,
                  batch_size: int = 32, on_batch: Callable[[int], Any] | None = None) -> np.ndarray:
        """Features ``(len(rows), dim)`` of raw inputs, in the order of ``rows``.

        Texts are run longest first, so that texts of similar length share a batch and padding stays small
        (as :func:`hf_ada.adanns.embed.embed` does); the features are returned in the input order. ``encode``
        turns a list of raw inputs into model inputs (default :meth:`encode`); ``on_batch(n)`` is called after
        each batch of ``n`` inputs (a progress bar's ``update``).
        """
        check_batch_size(batch_size)
        rows = list(rows)
        encode = encode or self.encode
        if rows and all(isinstance(r, str) for r in rows):
            order = np.argsort([-len(r) for r in rows], kind="stable")
        else:
            order = np.arange(len(rows))
        parts = []
        for start in range(0, len(rows), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            features, _ = self.hook.run(encode(batch))
            parts.append(features)
            if on_batch is not None:
                on_batch(len(batch))
        if not parts:
            return np.zeros((0, self.hook.static_dim or (self.memory.dim if self.memory else 0)), dtype=np.float32)
        stacked = np.concatenate(parts)
        out = np.empty_like(stacked)
        out[order] = stacked
        return out

    def reset(self) -> None:
        """Forget every inserted test entry (the source memory stays) and the guard's window; T3A goes back
        to its warm-up supports. The calibrated threshold and the counters stay."""
        if self.memory is not None:
            self.memory.reset()
        if self.t3a is not None:
            self.t3a.reset()
        self.guard.reset()

    # ------------------------------------------------------------------ inputs
    def encode(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Turn raw inputs (texts, PIL images, audio arrays) into model inputs with the processor."""
        proc = self.processor
        inputs = list(inputs)
        kind = processor_kind(proc)
        if kind is None:
            raise ValueError("this predictor has no processor: pass processor= or use predict_model_inputs()")
        if kind == "tokenizer":
            encoded = proc(inputs, padding=True, truncation=True, return_tensors="pt")
        elif kind == "image_processor":
            encoded = proc(images=inputs, return_tensors="pt")
        elif kind == "feature_extractor":
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

    def head_logits(self, features: Any) -> np.ndarray | None:
        """The model head's logits for ``features`` when the feature is the head's input (default
        ``feature_layer``), else ``None``."""
        module = self.hook.module
        if self.hook.use_output or not isinstance(module, torch.nn.Linear):
            return None
        with torch.no_grad():  # in torch, not numpy: numpy's BLAS threads would then spin against torch's
            weight = module.weight.detach().float().cpu()
            bias = None if module.bias is None else module.bias.detach().float().cpu()
            logits = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)) @ weight.T
            return (logits if bias is None else logits + bias).numpy()

    def confidence_threshold(self) -> float | None:
        """The threshold ``insert="confident"`` uses: the configured one, or the one calibrated on the source
        memory (computed on first use and saved with the predictor); ``None`` for other policies."""
        if self.config.insert != "confident":
            return None
        if self.config.confidence_threshold is not None:
            return float(self.config.confidence_threshold)
        if self.guard.threshold is None and self.memory is not None and self.memory.num_source:
            self.guard.set_threshold(calibrate_threshold(
                self.memory, self.config.k, self.config.temperature, self.num_labels, self.config.confidence_quantile
            ))
            logger.info("AdaNPC: confidence threshold calibrated on %d source entries: %.4f",
                        self.memory.num_source, self.guard.threshold)
        return self.guard.threshold if self.guard.threshold is not None else 0.0

    def insert(self, features: Any, probs: np.ndarray, head_predicted: np.ndarray | None = None) -> int:
        """Insert test features with their predicted labels, as ``config.insert`` and the guard allow."""
        if self.config.insert == "none":
            return 0
        feats = np.asarray(features, dtype=np.float32)
        keep = insertion_mask(probs, head_predicted, self.confidence_threshold(), self.config.agreement)
        memory = self._memory_for(feats)
        quota = memory.source_counts() if self.config.class_balance else None
        added = memory.add(feats[keep], probs.argmax(axis=1)[keep], origin=TEST, class_quota=quota)
        self.guard.count(added, int(len(keep) - added))
        return added

    def predict_features(self, features: Any, adapt: bool = True, logits: Any | None = None) -> np.ndarray:
        """Vote for a batch of features, then (if ``adapt``) let the guard insert them; see the module doc.

        ``logits``: the model's own logits for the batch (default: computed from the head when the feature
        is the head's input); the guard's agreement test and collapse monitor use them.
        """
        feats = np.asarray(features, dtype=np.float32)
        if adapt and self.config.reset_every is not None and self.guard.seen >= self.config.reset_every:
            self.reset()
        if self.config.method == "t3a":
            return softmax(self.t3a(feats, adapt=adapt)).astype(np.float32)
        if logits is None:
            logits = self.head_logits(feats)
        elif hasattr(logits, "detach"):
            logits = logits.detach().float().cpu().numpy()
        t3a = None if self.t3a is None else softmax(self.t3a(feats, adapt=adapt))
        if self.guard.stepped_in and logits is not None:  # the collapse monitor handed over to the head
            probs = softmax(np.asarray(logits, dtype=np.float64)).astype(np.float32)
        else:
            similarities, labels, _ = self._memory_for(feats).search(feats, self.config.k)
            head = None if logits is None else softmax(np.asarray(logits, dtype=np.float64))
            if not within_reach(similarities[:, 0], self.reach()) and (t3a is not None or head is not None):
                # out of the memory's reach: T3A (or the head) answers and nothing is inserted
                if adapt:
                    self.guard.route(len(feats), by_vote=False)
                    self.guard.count(0, 0, seen=len(feats))
                return (t3a if t3a is not None else head).astype(np.float32)
            probs = knn_vote(similarities, labels, self.num_labels, self.config.temperature)
            if adapt:
                self.guard.route(len(feats), by_vote=True)
                self._adapt(feats, probs, logits)
        if t3a is None:
            return probs
        return ((probs + t3a) / 2).astype(np.float32)

    def reach(self) -> float | None:
        """The reach gate's similarity (configured quantile, calibrated on the source memory at first use and
        saved with the predictor); ``None`` when the gate is off or the memory has under two source entries."""
        if self.config.reach_quantile is None:
            return None
        if self.guard.reach is None and self.memory is not None and self.memory.num_source >= 2:
            self.guard.set_reach(calibrate_reach(self.memory, self.config.reach_quantile))
            logger.info("AdaNPC: reach calibrated on %d source entries: similarity %.4f",
                        self.memory.num_source, self.guard.reach)
        return self.guard.reach

    def _adapt(self, feats: np.ndarray, probs: np.ndarray, logits: np.ndarray | None) -> None:
        """Let the guard insert a voted batch and watch for collapse."""
        head_predicted = None if logits is None else np.asarray(logits).argmax(axis=1)
        self.insert(feats, probs, head_predicted)
        self.guard.count(0, 0, seen=len(feats))
        self.guard.observe(probs.argmax(axis=1), head_predicted)
        if self.guard.collapsed(self.num_labels, self.config.collapse_ratio):
            logger.warning("AdaNPC: the vote collapsed onto few classes (entropy below %.2f x the head's over the "
                           "last %d inputs): test entries forgotten, the model's head answers until reset()",
                           self.config.collapse_ratio, self.config.collapse_window)
            self.memory.reset()
            self.guard.step_in()

    def predict_model_inputs(self, model_inputs: dict[str, Any], adapt: bool = True) -> tuple[np.ndarray, torch.Tensor]:
        """Run the model on prepared inputs; return ``(AdaNPC probabilities, the model's own logits)``."""
        features, logits = self.hook.run(model_inputs)
        return self.predict_features(features, adapt=adapt, logits=logits.float().cpu().numpy()), logits

    def predict(self, inputs: Sequence[Any], adapt: bool = True, batch_size: int = 32) -> np.ndarray:
        """Probabilities for raw inputs, processed (and inserted) in batches of ``batch_size``, in order."""
        check_batch_size(batch_size)
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
            "guard": self.guard.to_dict(),
        }

    def protected_inputs(self) -> tuple[Path, ...]:
        """Folders a save must not write into: the local model folder being adapted (unless it is itself a
        saved predictor, which a save may replace)."""
        name = getattr(self.model, "name_or_path", "") or getattr(self.model.config, "_name_or_path", "") or ""
        folder = Path(str(name)) if name else None
        if folder is not None and folder.is_dir() and not (folder / CONFIG_NAME).is_file():
            return (folder,)
        return ()

    def save_pretrained(self, save_directory: str | os.PathLike, *, protected: tuple[str | os.PathLike, ...] = (),
                        **kwargs: Any) -> Path:
        """Write model, processor, ``adanpc_config.json`` (config + guard state), ``memory.safetensors`` and
        ``README.md`` with the artifact protocol: only the predictor's own files are written or replaced."""
        if self.memory is None or len(self.memory) == 0:
            logger.warning("saving an AdaNPC predictor with an empty memory")
        return super().save_pretrained(save_directory, protected=(*protected, *self.protected_inputs()), **kwargs)

    def _write_files(self, folder: Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        self.model.save_pretrained(folder)
        if self.processor is not None:
            self.processor.save_pretrained(folder)
        memory = self.memory if self.memory is not None else self._new_memory(self.hook.static_dim or 1)
        memory.save(folder / MEMORY_NAME, extra_metadata={"id2label": self.id2label, "num_labels": self.num_labels})
        if self.t3a is not None:
            save_file(self.t3a.state(), str(folder / T3A_NAME))
        return {**self.config.to_dict(), "guard_state": self.guard.to_dict()}

    def _card_values(self, repo_id: str | None = None) -> tuple[Any, dict[str, Any]]:
        values = self.card_values(repo_id)
        return _card_data(values), values

    @classmethod
    def _from_files(cls, folder: Path, payload: dict[str, Any], *, model: torch.nn.Module | None = None,
                    processor: Any | None = None) -> AdaNPCPredictor:
        """Build from a verified folder; ``model`` / ``processor``: already loaded from this same folder (the
        pipeline passes its own), otherwise loaded here."""
        state = payload.pop("guard_state", {})
        try:
            config = AdaNPCConfig.from_dict(payload)
        except (TypeError, ValueError) as err:
            raise ArtifactError(f"{folder / CONFIG_NAME}: {err}") from err
        memory, metadata = AdaNPCMemory.load(folder / MEMORY_NAME, config.capacity, config.evict_source,
                                             config.memory_index, config.nprobe)
        if model is None:
            model = _load_model(folder)
            processor = _load_processor(folder)
        try:
            saved_labels = {int(k): v for k, v in loads_json(metadata.get("id2label", "{}")).items()}
        except (ValueError, TypeError, AttributeError) as err:
            raise ArtifactError(f"{folder / MEMORY_NAME}: unreadable id2label metadata ({err})") from err
        if saved_labels != _id2label(model):
            raise ArtifactError(
                f"the label map of {folder / MEMORY_NAME} {saved_labels} differs from the model's id2label "
                f"{_id2label(model)} (config.json): memory and model do not belong together"
            )
        try:
            predictor = cls(model, processor, config, memory)
            predictor.guard = GuardState.from_dict(state, config.collapse_window, predictor.num_labels)
        except ValueError as err:
            raise ArtifactError(f"{folder}: {err}") from err
        if predictor.t3a is not None and (folder / T3A_NAME).is_file():
            predictor.t3a = _load_t3a(folder / T3A_NAME, predictor.t3a)
        return predictor

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, **kwargs: Any) -> AdaNPCPredictor:
        """Restore a predictor from a folder or a Hub model repo. Every file is verified against the sizes
        and SHA-256 recorded at save, then the memory's structure and label map against the model; anything
        that does not match raises :class:`~hf_ada.common.artifact.ArtifactError` naming the file."""
        return super().from_pretrained(path_or_repo_id, **kwargs)


def _load_t3a(path: Path, t3a: T3AClassifier) -> T3AClassifier:
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
        supports, labels, entropy = tensors["supports"], tensors["labels"], tensors["entropy"]
    except Exception as err:  # noqa: BLE001  (safetensors raises several types for corrupt files)
        raise ArtifactError(f"{path} is not a readable T3A state ({err})") from err
    try:
        t3a.load_state(supports, labels, entropy)
    except ValueError as err:
        raise ArtifactError(f"{path}: {err}") from err
    return t3a


def _card_data(values: dict[str, Any]):
    from huggingface_hub import ModelCardData

    base = values["base_model"]
    return ModelCardData(
        library_name="hf-ada",
        tags=["hf-ada", "adanpc", "test-time-adaptation", "knn"],
        base_model=base if base and not os.path.isabs(str(base)) and "/" in str(base) else None,
    )


def _load_model(folder: Path) -> torch.nn.Module:
    import transformers

    architectures = read_json(folder / "config.json").get("architectures") or []
    model_cls = getattr(transformers, architectures[0], None) if architectures else None
    if model_cls is None:
        raise ValueError(f"config.json in {folder} names no known transformers architecture ({architectures})")
    return model_cls.from_pretrained(folder)


def _load_processor(folder: Path) -> Any | None:
    """The processor saved in ``folder`` (tokenizer, image processor or feature extractor), or ``None``."""
    import transformers

    kind = None
    if (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file():
        kind = "tokenizer"
    elif (folder / "preprocessor_config.json").is_file():
        payload = read_json(folder / "preprocessor_config.json")
        kind = "image_processor" if "image_processor_type" in payload else "feature_extractor"
    return None if kind is None else getattr(transformers, PROCESSOR_KINDS[kind]).from_pretrained(folder)


#: processor kind -> the transformers Auto class that loads it (the kind is also the pipeline's keyword)
PROCESSOR_KINDS = {"tokenizer": "AutoTokenizer", "image_processor": "AutoImageProcessor",
                   "feature_extractor": "AutoFeatureExtractor"}


def processor_kind(processor: Any) -> str | None:
    """``"tokenizer"``, ``"image_processor"``, ``"feature_extractor"`` (a key of :data:`PROCESSOR_KINDS`, named
    like the pipeline argument that takes it), ``"processor"`` for anything else, ``None`` for no processor.
    The one place hf-ada's AdaNPC tells processor types apart."""
    from transformers import PreTrainedTokenizerBase
    from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
    from transformers.image_processing_utils import BaseImageProcessor

    if processor is None:
        return None
    if isinstance(processor, PreTrainedTokenizerBase):
        return "tokenizer"
    if isinstance(processor, BaseImageProcessor) or hasattr(processor, "image_mean"):
        return "image_processor"
    if isinstance(processor, SequenceFeatureExtractor):
        return "feature_extractor"
    return "processor"
