"""``datasets.Dataset`` methods for AdANNS indexes (attached by :mod:`hf_ada.adanns.integration` on ``import hf_ada``).

* ``add_adanns_index(column, index_name=None, config=None, **config_kwargs)`` /
  ``add_adanns_index_from_external_arrays(arrays, index_name, ...)``: build and attach;
* ``save_adanns_index(index_name, path)`` / ``load_adanns_index(index_name, repo_id_or_path, ...)``;
* ``push_adanns_index_to_hub(index_name, repo_id, ...)``.

Saving, loading and pushing go through the index's artifact protocol (``save_pretrained`` /
``from_pretrained`` / ``push_to_hub``). The index is a :class:`~hf_ada.adanns.AdANNSIndex`, a
:class:`datasets.search.BaseIndex`, stored in the dataset's index registry like a faiss index: ``search``,
``search_batch``, ``get_nearest_examples``, ``get_nearest_examples_batch``, ``list_indexes``, ``get_index``
and ``drop_index`` work on it unchanged.

A load checks that the dataset holds exactly the indexed vectors: row count, dim, and a SHA-256 over every
row of the column (its Arrow value buffers, see :func:`column_content_hash`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc

from ..common.artifact import check_name
from .config import SEARCH_KEYS, AdANNSConfig
from .hub import default_path_in_repo, index_subfolder
from . import index as _index  # a module reference: this file may load while index.py is importing datasets
from .vectors import ArrayVectorSource, VectorSource

logger = logging.getLogger(__name__)

__all__ = ["DatasetColumnSource", "embedding_provenance", "record_embedding_provenance",
           "column_content_hash", "text_content_hash"]

_FLOAT_DTYPES = ("float16", "float32", "float64", "bfloat16")
#: keyword settings that fix the search plan (``d_cluster`` only picks the quantizer that is built): given any,
#: ``add_adanns_index`` keeps them instead of auto-tuning
_SEARCH_SETTINGS = set(SEARCH_KEYS) - {"d_cluster"}
_PROVENANCE_TAG = "hf-ada embedding provenance: "


def _provenance_entry(line: str) -> dict[str, Any] | None:
    if not line.startswith(_PROVENANCE_TAG):
        return None
    try:
        entry = json.loads(line[len(_PROVENANCE_TAG):])
    except json.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) else None


def record_embedding_provenance(dataset: datasets.Dataset, column: str, model: str | None, revision: str | None) -> None:
    """Record in ``dataset.info.description`` (which travels with ``save_to_disk`` / ``push_to_hub`` and
    through ``map``) which model produced ``column``."""
    lines = [line for line in (dataset.info.description or "").splitlines()
             if (_provenance_entry(line) or {}).get("column") != column]
    lines.append(_PROVENANCE_TAG + json.dumps({"column": column, "model": model, "revision": revision}))
    dataset.info.description = "\n".join(lines)


def embedding_provenance(dataset: datasets.Dataset, column: str) -> tuple[str | None, str | None]:
    """(model name, revision) recorded by :func:`hf_ada.adanns.embed` for ``column`` of ``dataset``, if any."""
    for line in (dataset.info.description or "").splitlines():
        entry = _provenance_entry(line)
        if entry is not None and entry.get("column") == column:
            return entry.get("model"), entry.get("revision")
    return None, None


def column_dim(dataset: datasets.Dataset, column: str) -> int:
    """Dimension of a fixed-size float vector column; a clear :class:`ValueError` for anything else."""
    if column not in dataset.column_names:
        raise ValueError(f"column {column!r} is not in the dataset; available columns: {dataset.column_names}")
    feature = dataset.features[column]
    inner = getattr(feature, "feature", None)
    dtype = getattr(inner, "dtype", None)
    if not isinstance(feature, datasets.List) or dtype not in _FLOAT_DTYPES:
        raise ValueError(
            f"column {column!r} must be a fixed-size vector of floats (List(Value('float32'), length=D)), "
            f"got {feature}"
        )
    if feature.length not in (None, -1):
        return int(feature.length)
    chunked = dataset.data.column(column)
    if chunked.null_count:
        raise ValueError(f"column {column!r} has {chunked.null_count} missing (null) embeddings")
    lengths = pc.list_value_length(chunked)
    low, high = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if low is None or low != high or low == 0:
        raise ValueError(
            f"column {column!r} must hold vectors of one fixed size, got lengths from {low} to {high}"
        )
    return int(low)


def column_content_hash(dataset: datasets.Dataset, column: str) -> str:
    """SHA-256 over every row of a vector column: its Arrow value buffers, chunk by chunk (zero-copy), in
    row order, plus the shape and dtype. A changed, swapped or reordered row anywhere changes it."""
    dim = column_dim(dataset, column)
    if dataset._indices is not None:  # a select/shuffle view: hash the rows in the order the dataset shows
        return DatasetColumnSource(dataset, column).content_hash()
    chunked = dataset.data.column(column)
    digest = hashlib.sha256(f"{len(dataset)}x{dim}:{chunked.type}".encode())
    for chunk in chunked.chunks:
        values = chunk.flatten()  # the value slice of exactly these rows (offsets applied)
        digest.update(memoryview(values.to_numpy(zero_copy_only=True)).cast("B"))
    return digest.hexdigest()


def text_content_hash(dataset: datasets.Dataset, column: str) -> str:
    """SHA-256 over every value of a text column (lengths + UTF-8 bytes from the Arrow buffers, zero-copy):
    lets ``hf-ada index search`` check that a dataset holds the texts an index was embedded from."""
    import pyarrow as pa

    if column not in dataset.column_names:
        raise ValueError(f"column {column!r} is not in the dataset; available columns: {dataset.column_names}")
    table = dataset.flatten_indices() if dataset._indices is not None else dataset
    digest = hashlib.sha256(f"{len(dataset)}:text".encode())
    chunks = [chunk.cast(pa.large_string()) if not pa.types.is_large_string(chunk.type) else chunk
              for chunk in table.data.column(column).chunks]
    # every length, then every byte, then (if any) every null flag: the same digest however the rows are
    # cut into Arrow chunks (one parquet file or several shards of the same rows)
    for chunk in chunks:
        digest.update(np.diff(_large_offsets(chunk)).tobytes())
    for chunk in chunks:
        offsets = _large_offsets(chunk)
        digest.update(memoryview(chunk.buffers()[2])[offsets[0] : offsets[-1]] if len(chunk) else b"")
    if any(chunk.null_count for chunk in chunks):
        for chunk in chunks:
            digest.update(np.asarray(chunk.is_null()).tobytes())
    return digest.hexdigest()


def _large_offsets(chunk: Any) -> np.ndarray:
    """The ``len(chunk) + 1`` value offsets of a ``large_string`` Arrow array (its slice offset applied)."""
    return np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]


class DatasetColumnSource(VectorSource):
    """Streams a dataset's vector column in batches from its memory-mapped Arrow data."""

    def __init__(self, dataset: datasets.Dataset, column: str):
        self.dim = column_dim(dataset, column)
        self.num_rows = len(dataset)
        self.column = column
        self._formatted = dataset.with_format("numpy", columns=[column])

    def _as_matrix(self, values: Any) -> np.ndarray:
        values = np.asarray(values) if not isinstance(values, np.ndarray) or values.dtype != object else np.stack(values)
        return np.asarray(values, dtype=np.float32).reshape(-1, self.dim)

    def read(self, start: int, end: int) -> np.ndarray:
        return self._as_matrix(self._formatted[start:end][self.column])

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self._as_matrix(self._formatted[rows.tolist()][self.column])

    def content_hash(self) -> str:
        digest = hashlib.sha256(f"{self.num_rows}x{self.dim}:rows".encode())
        for start in range(0, self.num_rows, 16384):
            digest.update(self.read(start, min(self.num_rows, start + 16384)).tobytes())
        return digest.hexdigest()


def _check_before_work(dataset: datasets.Dataset, auto_tune: Any) -> None:
    """The checks that need no vectors read, run first."""
    if not isinstance(auto_tune, (int, np.integer)) or isinstance(auto_tune, bool) or auto_tune < 0:
        raise ValueError(f"auto_tune must be an int >= 0 (rows sampled as tuning queries; 0: no tuning), got {auto_tune!r}")
    if len(dataset) == 0:
        raise ValueError("the dataset has no rows: there is nothing to index")


def _attach(
    dataset: datasets.Dataset,
    source: VectorSource,
    index_name: str,
    config: AdANNSConfig | None,
    config_kwargs: dict[str, Any],
    *,
    column: str | None,
    content_hash: str,
    batch_size: int,
    device: int | str | None,
    show_progress: bool,
    auto_tune: int,
) -> _index.AdANNSIndex:
    """Build an index over ``source`` (rows aligned with ``dataset``) and register it as ``index_name``."""
    check_name(index_name, "index_name")
    _check_before_work(dataset, auto_tune)
    if source.num_rows != len(dataset):
        raise ValueError(f"external_arrays has {source.num_rows} rows, the dataset has {len(dataset)}")
    if config is not None and config_kwargs:
        raise ValueError(f"pass either config or keyword settings {sorted(config_kwargs)}, not both")
    d_cluster, nlist = config_kwargs.get("d_cluster"), config_kwargs.get("nlist")
    if isinstance(d_cluster, int) and d_cluster > source.dim:
        raise ValueError(f"d_cluster must be <= the embedding dim ({source.dim}), got {d_cluster}")
    if isinstance(nlist, int) and nlist > source.num_rows:
        raise ValueError(f"nlist must be <= the number of rows ({source.num_rows}), got {nlist}")
    if config is None:
        config = AdANNSConfig(dim=source.dim, num_rows=source.num_rows, **config_kwargs)
    config.column, config.dataset_fingerprint, config.content_hash = column, dataset._fingerprint, content_hash
    config.extra = {**config.extra, "index_name": index_name}
    index = _index.AdANNSIndex.build(source, config, batch_size=batch_size, show_progress=show_progress, device=device)
    if auto_tune and not _SEARCH_SETTINGS & set(config_kwargs):
        index.tune_on_rows(source, auto_tune, seed=config.seed)  # never slower than exact flat search
    dataset._indexes[index_name] = index
    logger.info("Added AdANNS index %r (%d rows, dim %d)", index_name, source.num_rows, source.dim)
    return index


def add_adanns_index(
    self: datasets.Dataset,
    column: str,
    index_name: str | None = None,
    config: AdANNSConfig | None = None,
    *,
    batch_size: int = 10_000,
    device: int | str | None = None,
    show_progress: bool = True,
    auto_tune: int = 256,
    **config_kwargs: Any,
) -> datasets.Dataset:
    """Build an AdANNS index over the Matryoshka embeddings in ``column`` and attach it as ``index_name``
    (default: ``column``).

    Settings come from ``config`` (an :class:`~hf_ada.adanns.AdANNSConfig`) or from keyword arguments
    forwarded to it: ``d_cluster``, ``d_search``, ``nlist``, ``nprobe``, ``pq_bytes``, ``d_pq``,
    ``d_rerank``, ``rerank_k``, ``metric``, ``extra_d_clusters``, ``train_size``, ``seed``,
    ``embedding_model``, ... -- any left out are chosen from the data size and the embedding dim
    (:func:`~hf_ada.adanns.config.default_structure`). ``index.tune(...)`` then picks the fastest plan.
    When no search setting is given (neither ``config`` nor ``d_search`` / ``nprobe`` / ``d_rerank`` /
    ``rerank_k`` / ``scan``), ``auto_tune`` rows of the column are used as queries against exact search and
    the fastest plan within 1% of exact recall is kept (exact flat search is a candidate, so the result is
    never slower than ``add_faiss_index``'s flat index); ``auto_tune=0`` skips this.
    Streams the memory-mapped column in batches of ``batch_size`` with a progress bar.
    ``embedding_model``/``_revision`` default to what :func:`hf_ada.adanns.embed` recorded for the column
    in the dataset's info. Returns the dataset, like ``add_faiss_index``.
    """
    _check_before_work(self, auto_tune)
    source = DatasetColumnSource(self, column)
    known_model, known_revision = embedding_provenance(self, column)
    if config is None:
        config_kwargs.setdefault("embedding_model", known_model)
        config_kwargs.setdefault("embedding_model_revision", known_revision)
    _attach(self, source, index_name or column, config, config_kwargs, column=column,
            content_hash=column_content_hash(self, column), batch_size=batch_size, device=device,
            show_progress=show_progress, auto_tune=0 if config is not None else auto_tune)
    return self


def add_adanns_index_from_external_arrays(
    self: datasets.Dataset,
    external_arrays: np.ndarray,
    index_name: str,
    config: AdANNSConfig | None = None,
    *,
    batch_size: int = 10_000,
    device: int | str | None = None,
    show_progress: bool = True,
    auto_tune: int = 256,
    **config_kwargs: Any,
) -> datasets.Dataset:
    """Like :func:`add_adanns_index` (same ``config`` / keyword settings / ``auto_tune``), over an array
    whose rows are aligned with the dataset's rows."""
    _check_before_work(self, auto_tune)
    source = ArrayVectorSource(external_arrays, name="external_arrays")
    _attach(self, source, index_name, config, config_kwargs, column=None, content_hash=source.content_hash(),
            batch_size=batch_size, device=device, show_progress=show_progress,
            auto_tune=0 if config is not None else auto_tune)
    return self


def _adanns_index(dataset: datasets.Dataset, index_name: str) -> _index.AdANNSIndex:
    check_name(index_name, "index_name")
    index = dataset.get_index(index_name)
    if not isinstance(index, _index.AdANNSIndex):
        raise ValueError(f"index {index_name!r} is not an AdANNS index but a {type(index).__name__}")
    return index


def save_adanns_index(self: datasets.Dataset, index_name: str, path: str | os.PathLike, *,
                      overwrite: bool = True) -> Path:
    """Save the AdANNS index ``index_name`` into the folder ``path`` (``save_pretrained``: only the index's
    own files are written or replaced, crash-safely); return the path. The dataset's own cache files are
    protected: saving into them is refused."""
    protected = tuple(Path(f["filename"]).parent for f in self.cache_files)
    return _adanns_index(self, index_name).save_pretrained(path, overwrite=overwrite, protected=protected)


def load_adanns_index(
    self: datasets.Dataset,
    index_name: str,
    repo_id_or_path: str | os.PathLike,
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    check_fingerprint: bool = True,
    mmap: bool = False,
) -> datasets.Dataset:
    """Attach a saved AdANNS index from a local folder or a Hub dataset repo (its ``subfolder``, default
    ``adanns/<index_name>``); ``mmap=True`` memory-maps the stored vectors (indexes larger than RAM). Every file is verified (size + SHA-256, structure) before use, then the index
    is checked against this dataset: row count, embedding dim, and (unless ``check_fingerprint=False``) that
    the data is the same -- a hash of every row of the indexed column when the column is present
    (machine-independent), else the dataset fingerprint."""
    check_name(index_name, "index_name")
    index = _index.AdANNSIndex.from_pretrained(
        repo_id_or_path, subfolder=index_subfolder(index_name, repo_id_or_path, subfolder), revision=revision,
        token=token, cache_dir=cache_dir, local_files_only=local_files_only, expected_num_rows=len(self), mmap=mmap,
    )
    config, where = index.config, repo_id_or_path
    column = config.column
    if column and column in self.column_names:
        dim = column_dim(self, column)
        if dim != config.dim:
            raise ValueError(f"index at {where} was built on {config.dim}-dim embeddings, the column has {dim}")
        if check_fingerprint and config.content_hash and column_content_hash(self, column) != config.content_hash:
            raise ValueError(
                f"index at {where} was built on other vectors: the content hash of column {column!r} differs "
                "(same row count and dim, different values or order); rebuild the index, or pass "
                "check_fingerprint=False if you know the rows match"
            )
    elif check_fingerprint and config.dataset_fingerprint not in (None, self._fingerprint):
        raise ValueError(
            f"index at {where} was built on dataset fingerprint {config.dataset_fingerprint!r}, this dataset "
            f"has {self._fingerprint!r}; pass check_fingerprint=False if the rows are known to be the same"
        )
    self._indexes[index_name] = index
    logger.info("Loaded AdANNS index %r from %s", index_name, where)
    return self


def push_adanns_index_to_hub(
    self: datasets.Dataset,
    index_name: str,
    repo_id: str,
    *,
    path_in_repo: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> str:
    """Upload the AdANNS index ``index_name`` into ``path_in_repo`` (default ``adanns/<index_name>``) of
    the dataset repo ``repo_id`` (``push_to_hub``); return the commit URL. Honours ``HF_ENDPOINT`` and
    tokens. On failure raises :class:`hf_ada.common.hub.HubError`; the attached index is untouched."""
    index = _adanns_index(self, index_name)
    path_in_repo = path_in_repo or default_path_in_repo(index_name)
    index.config.extra.update({"index_name": index_name, "path_in_repo": path_in_repo})
    return index.push_to_hub(
        repo_id, path_in_repo=path_in_repo, token=token, revision=revision, private=private,
        commit_message=commit_message or f"Upload AdANNS index {index_name} with hf-ada", create_pr=create_pr,
    )


