"""The Adapt tab's back end: a saved AdaNPC predictor run along a stream, batch by batch. No Gradio here.

Every run starts from the saved predictor (loaded afresh, adapted in memory only): the folder it came from
is never written, and two runs of the same stream give the same numbers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .sources import UIError, describe_error, is_local, load_rows

logger = logging.getLogger(__name__)

__all__ = ["AdaptSession", "Stream", "StreamUpdate", "DEMO_STREAM"]

#: Stream name of the demo's shifted test stream (rotated digits, 30 -> 75 degrees), built in memory.
DEMO_STREAM = "demo:rotated-digits"
_INPUT_GUESSES = ("text", "sentence", "image", "img", "audio")
_LATEST = 12


@dataclass
class Stream:
    """Inputs predicted in order, their labels (``None``: unlabelled) and where they came from."""

    inputs: Sequence[Any]
    labels: Sequence[Any] | None
    name: str
    input_column: str


@dataclass
class StreamUpdate:
    """The state after each batch: running accuracies (empty without labels), the guard's counts in this run
    and the latest predictions (newest first)."""

    seen: int
    total: int
    steps: list[int] = field(default_factory=list)
    plain_accuracy: list[float] = field(default_factory=list)
    adanpc_accuracy: list[float] = field(default_factory=list)
    inserted: int = 0
    rejected: int = 0
    collapses: int = 0
    stepped_in: bool = False
    latest: list[dict[str, Any]] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return bool(self.steps)


class AdaptSession:
    """A saved predictor (folder or Hub model repo) and, optionally, a default stream.

    Args:
        predictor: saved AdaNPC predictor folder or Hub repo id.
        stream: data file / ``save_to_disk`` folder / Hub dataset id, or :data:`DEMO_STREAM`.
        input_column / label_column: stream columns (default: text/sentence/image/audio, and ``label``
            when present).
    """

    def __init__(self, predictor: str, stream: str | None = None, *, input_column: str | None = None,
                 label_column: str | None = None, revision: str | None = None) -> None:
        from ..common.hub import resolve_folder

        self.predictor_spec = str(predictor)
        try:
            self.folder = resolve_folder(predictor, repo_type="model", revision=revision)
        except Exception as err:  # noqa: BLE001 - shown in the page
            raise UIError(f"--predictor {predictor}: {describe_error(err)}") from err
        self.id2label, self.kind = self._check()
        self._spare: Any = None  # a loaded, unused predictor (warm_up), taken by the next run
        self._lock = threading.Lock()
        self.input_column, self.label_column = input_column, label_column
        self.stream = self.open_stream(stream) if stream else None

    def _check(self) -> tuple[dict[int, str], str]:
        """Every file checked against its recorded SHA-256 and the label map read, without loading the model
        (that happens in :meth:`warm_up` or at the first run, so the page is served sooner)."""
        from ..adanpc import AdaNPCPredictor
        from ..common.artifact import read_artifact

        try:
            read_artifact(self.folder, kind=AdaNPCPredictor.artifact_kind, config_name=AdaNPCPredictor.config_name)
            model_config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
            id2label = {int(k): str(v) for k, v in model_config["id2label"].items()}
        except Exception as err:  # noqa: BLE001 - shown in the page
            raise UIError(f"--predictor {self.predictor_spec} is not a loadable AdaNPC predictor: "
                          f"{describe_error(err)}") from err
        return id2label, str(model_config.get("model_type") or "model")

    def warm_up(self) -> None:
        """Load one predictor ahead of the first run (call from a background thread)."""
        predictor = self._load()
        with self._lock:
            if self._spare is None:
                self._spare, predictor = predictor, None
        if predictor is not None:
            predictor.close()

    def load_predictor(self) -> Any:
        """A fresh copy of the saved predictor (every run adapts its own)."""
        with self._lock:
            spare, self._spare = self._spare, None
        return spare if spare is not None else self._load()

    def _load(self) -> Any:
        from ..adanpc import AdaNPCPredictor

        try:
            return AdaNPCPredictor.from_pretrained(self.folder)
        except Exception as err:  # noqa: BLE001
            raise UIError(f"--predictor {self.predictor_spec} is not a loadable AdaNPC predictor: "
                          f"{describe_error(err)}") from err

    # ------------------------------------------------------------------ streams
    def open_stream(self, spec: str | Path, input_column: str | None = None,
                    label_column: str | None = None) -> Stream:
        """Read a stream and pick its columns; :class:`UIError` naming what is wrong."""
        if str(spec) == DEMO_STREAM:
            return _demo_stream()
        input_column = input_column or self.input_column
        label_column = label_column or self.label_column
        ds = load_rows(str(spec), what="the stream")
        columns = ds.column_names
        if input_column is None:
            input_column = next((c for c in _INPUT_GUESSES if c in columns), None)
            if input_column is None:
                raise UIError(f"the stream has no input column named {'/'.join(_INPUT_GUESSES)} (its columns are "
                              f"{columns}); name it with --stream-input-column")
        elif input_column not in columns:
            raise UIError(f"input column {input_column!r} is not in the stream; its columns are {columns}")
        if label_column is not None and label_column not in columns:
            raise UIError(f"label column {label_column!r} is not in the stream; its columns are {columns}")
        if label_column is None and "label" in columns:
            label_column = "label"
        if len(ds) == 0:
            raise UIError("the stream is empty")
        labels = ds[label_column] if label_column else None
        name = Path(str(spec)).name if is_local(spec) else str(spec)
        return Stream(ds[input_column], labels, name, input_column)

    # ------------------------------------------------------------------ running
    def run(self, stream: Stream, batch_size: int = 32, limit: int | None = None) -> Iterator[StreamUpdate]:
        """Predict ``stream`` in order with a fresh predictor, adapting as it goes; yield the state after
        every batch. Accuracies are running (cumulative) accuracies over the rows seen so far."""
        if not isinstance(batch_size, (int, np.integer)) or not 1 <= int(batch_size) <= 4096:
            raise UIError(f"batch size must be a whole number in 1..4096, got {batch_size!r}")
        predictor = self.load_predictor()
        try:
            truth = None
            if stream.labels is not None:
                try:
                    truth = predictor.label_ids(stream.labels)
                except ValueError as err:
                    raise UIError(f"the stream's labels do not fit the predictor: {err}") from err
            total = len(stream.inputs) if limit is None else min(limit, len(stream.inputs))
            update = StreamUpdate(seen=0, total=total)
            hits_plain = hits_adanpc = 0
            guard = predictor.guard
            before = (guard.inserted, guard.rejected, guard.collapses)  # a saved guard keeps its counts
            for start in range(0, total, int(batch_size)):
                stop = min(total, start + int(batch_size))
                batch = list(stream.inputs[start:stop])
                try:
                    probs, logits = predictor.predict_model_inputs(predictor.encode(batch))
                except Exception as err:  # noqa: BLE001 - a row the model cannot take
                    raise UIError(f"rows {start}..{stop - 1} of the stream could not be predicted "
                                  f"({describe_error(err)}): is {stream.input_column!r} the model's kind of input?") from err
                adanpc = probs.argmax(1)
                plain = logits.float().argmax(-1).cpu().numpy()
                update.seen = stop
                if truth is not None:
                    hits_plain += int((plain == truth[start:stop]).sum())
                    hits_adanpc += int((adanpc == truth[start:stop]).sum())
                    update.steps.append(stop)
                    update.plain_accuracy.append(hits_plain / stop)
                    update.adanpc_accuracy.append(hits_adanpc / stop)
                guard = predictor.guard
                update.inserted, update.rejected = guard.inserted - before[0], guard.rejected - before[1]
                update.collapses, update.stepped_in = guard.collapses - before[2], guard.stepped_in
                rows = [{"row": start + i, "input": _shown(batch[i]),
                         **({"label": predictor.id2label[int(truth[start + i])]} if truth is not None else {}),
                         "plain model": predictor.id2label[int(plain[i])],
                         "AdaNPC": predictor.id2label[int(adanpc[i])],
                         "AdaNPC score": round(float(probs[i, adanpc[i]]), 3)} for i in range(len(batch))]
                update.latest = (rows[::-1] + update.latest)[:_LATEST]
                yield update
        finally:
            predictor.close()


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = " ".join(value.split())
        return text if len(text) <= 120 else text[:119] + "…"
    size = getattr(value, "size", None)
    return f"[image {size[0]}x{size[1]}]" if isinstance(size, tuple) and len(size) == 2 else f"[{type(value).__name__}]"


def _demo_stream() -> Stream:
    """The demo's shifted stream: sklearn digits rotated 30, 45, 60 and 75 degrees, in series."""
    try:
        from ..demo.digits import SOURCE_ANGLES, digit_images, rotated_digits
    except ImportError as err:
        raise UIError(f"the demo stream needs the demo extra ({err}): pip install 'hf-ada[demo]'") from err
    domains = rotated_digits()[len(SOURCE_ANGLES):]
    images = digit_images(np.concatenate([d.images for d in domains]))
    labels = np.concatenate([d.labels for d in domains]).tolist()
    return Stream(images, labels, "rotated digits, 30 -> 75 degrees (the demo's stream)", "image")
