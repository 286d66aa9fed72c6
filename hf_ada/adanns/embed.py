"""Encode a text column once, at full dimension, with any ``SentenceTransformer``."""

from __future__ import annotations

import logging
from typing import Any

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from .dataset import record_embedding_provenance

logger = logging.getLogger(__name__)

__all__ = ["embed", "model_provenance"]

_DTYPES = ("float32", "float16")


def model_provenance(model: Any) -> tuple[str | None, str | None]:
    """Best-effort (name, revision) of a SentenceTransformer, for the index's metadata."""
    card = getattr(model, "model_card_data", None)
    name = getattr(card, "base_model", None) or getattr(card, "model_id", None)
    revision = getattr(card, "base_model_revision", None)
    if not name:
        try:
            name = model[0].auto_model.config._name_or_path or None
        except (AttributeError, IndexError, TypeError, KeyError):
            name = None
    return name, revision


def _full_dim(model: Any) -> int:
    """The model's untruncated output dim (``truncate_dim`` set on the model is ignored)."""
    truncate_dim = getattr(model, "truncate_dim", None)
    try:
        model.truncate_dim = None
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
    finally:
        model.truncate_dim = truncate_dim
    if not dim:
        raise ValueError("the model does not report its embedding dimension")
    return int(dim)


def embed(
    dataset: datasets.Dataset,
    model: Any,
    text_column: str,
    output_column: str = "embeddings",
    batch_size: int = 64,
    dtype: str = "float32",
    *,
    model_name: str | None = None,
    model_revision: str | None = None,
    show_progress: bool = True,
) -> datasets.Dataset:
    """Return ``dataset`` with ``output_column`` = ``model.encode(text_column)`` at the model's full dim.

    The embeddings are stored as ``List(Value(dtype), length=D)`` in the dataset's Arrow cache (memory
    mapped), not L2-normalised beyond what the model itself does: AdANNS re-normalises each prefix it
    uses. A ``truncate_dim`` set on the model is ignored so that every Matryoshka prefix stays available.
    The model's name/revision are remembered for ``add_adanns_index`` on the returned dataset.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    if text_column not in dataset.column_names:
        raise ValueError(f"text_column {text_column!r} is not in the dataset; available: {dataset.column_names}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if output_column in dataset.column_names:
        raise ValueError(f"output_column {output_column!r} already exists; choose another name or remove it")
    dim = _full_dim(model)
    name, revision = model_provenance(model)
    name, revision = model_name or name, model_revision or revision

    def encode(batch: dict[str, list]) -> dict[str, np.ndarray]:
        vectors = model.encode(
            batch[text_column], batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False, truncate_dim=dim
        )
        return {output_column: vectors.astype(dtype)}

    features = dataset.features.copy()
    features[output_column] = datasets.List(datasets.Value(dtype), length=dim)
    fingerprint = Hasher.hash([dataset._fingerprint, name, revision, text_column, output_column, dtype, dim])
    out = dataset.map(
        encode,
        batched=True,
        batch_size=batch_size * 16,
        features=features,
        new_fingerprint=fingerprint,
        desc=f"Embedding {text_column!r}",
        disable_nullable=False,
        **({} if show_progress else {}),
    )
    record_embedding_provenance(out._fingerprint, output_column, name, revision)
    logger.info("Embedded %d rows of %r with %s (dim %d)", len(out), text_column, name, dim)
    return out
