"""``datasets.Dataset`` methods for AdANNS indexes (attached by :mod:`hf_ada.adanns.integration` on ``import hf_ada``).

* ``add_adanns_index(column, ...)`` / ``add_adanns_index_from_external_arrays(arrays, index_name, ...)``
* ``save_adanns_index(index_name, path)`` / ``load_adanns_index(index_name, repo_id_or_path, ...)``
* ``push_adanns_index_to_hub(index_name, repo_id, ...)``

The index is a :class:`~hf_ada.adanns.AdANNSIndex`, a :class:`datasets.search.BaseIndex`, stored in the
dataset's index registry like a faiss index: ``search``, ``search_batch``, ``get_nearest_examples``,
``get_nearest_examples_batch``, ``list_indexes``, ``get_index`` and ``drop_index`` work on it unchanged.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc

from .config import AdANNSConfig
from ..common.hub import push_folder
from .hub import default_path_in_repo, resolve_index_folder
from .index import AdANNSIndex, ArrayVectorSource, VectorSource

logger = logging.getLogger(__name__)

__all__ = ["DatasetColumnSource", "DATASET_METHODS", "embedding_provenance", "record_embedding_provenance"]

_FLOAT_DTYPES = ("float16", "float32", "float64", "bfloat16")
_PROVENANCE: dict[tuple[str, str], tuple[str | None, str | None]] = {}


def record_embedding_provenance(fingerprint: str, column: str, model: str | None, revision: str | None) -> None:
    """Remember which model produced ``column`` of the dataset with ``fingerprint`` (used by :func:`embed`)."""
    _PROVENANCE[(fingerprint, column)] = (model, revision)


def embedding_provenance(dataset: datasets.Dataset, column: str) -> tuple[str | None, str | None]:
    """(model name, revision) that :func:`hf_ada.adanns.embed` recorded for this column, if any."""
    return _PROVENANCE.get((dataset._fingerprint, column), (None, None))


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


def content_hash(source: VectorSource, sample: int = 1024) -> str:
    """SHA-256 over the float32 bytes of up to ``sample`` evenly spaced rows and the row count."""
    import hashlib

    rows = np.unique(np.linspace(0, source.num_rows - 1, num=min(sample, source.num_rows)).astype(np.int64))
    digest = hashlib.sha256(f"{source.num_rows}x{source.dim}".encode())
    digest.update(np.ascontiguousarray(source.take(rows), dtype=np.float32).tobytes())
    return digest.hexdigest()


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


def _attach(
    dataset: datasets.Dataset,
    source: VectorSource,
    index_name: str,
    *,
    column: str | None,
    batch_size: int,
    device: int | str | None,
    show_progress: bool,
    **config_kwargs: Any,
) -> AdANNSIndex:
    """Build an index over ``source`` (rows aligned with ``dataset``) and register it as ``index_name``."""
    if source.num_rows != len(dataset):
        raise ValueError(f"external_arrays has {source.num_rows} rows, the dataset has {len(dataset)}")
    d_cluster, nlist = config_kwargs.get("d_cluster"), config_kwargs.get("nlist")
    if isinstance(d_cluster, int) and d_cluster > source.dim:
        raise ValueError(f"d_cluster must be <= the embedding dim ({source.dim}), got {d_cluster}")
    if isinstance(nlist, int) and nlist > source.num_rows:
        raise ValueError(f"nlist must be <= the number of rows ({source.num_rows}), got {nlist}")
    config = AdANNSConfig(
        dim=source.dim,
        num_rows=source.num_rows,
        column=column,
        dataset_fingerprint=dataset._fingerprint,
        content_hash=content_hash(source),
        extra={"index_name": index_name},
        **config_kwargs,
    )
    index = AdANNSIndex.build(source, config, batch_size=batch_size, show_progress=show_progress, device=device)
    dataset._indexes[index_name] = index
    logger.info("Added AdANNS index %r (%d rows, dim %d)", index_name, source.num_rows, source.dim)
    return index


def add_adanns_index(
    self: datasets.Dataset,
    column: str,
    index_name: str | None = None,
    *,
    d_cluster: int,
    d_search: int,
    nlist: int,
    nprobe: int = 1,
    pq_bytes: int | None = None,
    d_pq: int | None = None,
    d_rerank: int | None = None,
    rerank_k: int = 100,
    metric: str = "ip",
    train_size: int | None = None,
    batch_size: int = 10_000,
    device: int | str | None = None,
    seed: int = 0,
    embedding_model: str | None = None,
    embedding_model_revision: str | None = None,
    show_progress: bool = True,
) -> datasets.Dataset:
    """Build an AdANNS index over the Matryoshka embeddings in ``column`` and attach it as ``index_name``
    (default: ``column``).

    ``d_cluster``/``nlist``: prefix and count of the k-means lists; ``d_search``/``nprobe``: default scan
    prefix and probed lists; ``pq_bytes``/``d_pq``: OPQ+PQ codes; ``d_rerank``/``rerank_k``: exact
    re-ranking; ``metric``: ``"ip"`` (cosine on re-normalised prefixes) or ``"l2"`` (see
    :class:`~hf_ada.adanns.AdANNSConfig`). Streams the memory-mapped column in batches of ``batch_size``
    with a progress bar. ``embedding_model``/``_revision`` default to what :func:`hf_ada.adanns.embed`
    recorded for the column. Returns the dataset, like ``add_faiss_index``.
    """
    source = DatasetColumnSource(self, column)
    known_model, known_revision = embedding_provenance(self, column)
    _attach(
        self, source, index_name or column, column=column, batch_size=batch_size, device=device,
        show_progress=show_progress, d_cluster=d_cluster, d_search=d_search, nlist=nlist, nprobe=nprobe,
        pq_bytes=pq_bytes, d_pq=d_pq, d_rerank=d_rerank, rerank_k=rerank_k, metric=metric, train_size=train_size,
        seed=seed, embedding_model=embedding_model or known_model,
        embedding_model_revision=embedding_model_revision or known_revision,
    )
    return self


def add_adanns_index_from_external_arrays(
    self: datasets.Dataset,
    external_arrays: np.ndarray,
    index_name: str,
    *,
    batch_size: int = 10_000,
    device: int | str | None = None,
    show_progress: bool = True,
    **config_kwargs: Any,
) -> datasets.Dataset:
    """Like :func:`add_adanns_index` (same keyword arguments: ``d_cluster``, ``d_search``, ``nlist``,
    ``nprobe``, ``pq_bytes``, ...), over an array whose rows are aligned with the dataset's rows."""
    source = ArrayVectorSource(external_arrays, name="external_arrays")
    _attach(
        self, source, index_name, column=None, batch_size=batch_size, device=device, show_progress=show_progress,
        **config_kwargs,
    )
    return self


def _adanns_index(dataset: datasets.Dataset, index_name: str) -> AdANNSIndex:
    index = dataset.get_index(index_name)
    if not isinstance(index, AdANNSIndex):
        raise ValueError(f"index {index_name!r} is not an AdANNS index but a {type(index).__name__}")
    return index


def save_adanns_index(self: datasets.Dataset, index_name: str, path: str | os.PathLike) -> Path:
    """Save the AdANNS index ``index_name`` as a folder at ``path`` (atomically); return the path."""
    return _adanns_index(self, index_name).save(path)


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
) -> datasets.Dataset:
    """Attach a saved AdANNS index from a local folder or a Hub dataset repo (its ``subfolder``, default
    ``adanns/<index_name>``). The index is checked before use: schema version, embedding dim of the
    column, row count and (unless ``check_fingerprint=False``) that the data is the same: a content hash of
    the indexed column when the column is present (machine-independent), else the dataset fingerprint."""
    folder = resolve_index_folder(
        index_name, repo_id_or_path, subfolder=subfolder, revision=revision, token=token,
        cache_dir=cache_dir, local_files_only=local_files_only,
    )
    config = AdANNSConfig.load(folder / "config.json") if (folder / "config.json").is_file() else None
    column = config.column if config else None
    expected_dim, same_content = None, False
    if column and column in self.column_names:
        source = DatasetColumnSource(self, column)
        expected_dim = source.dim
        if check_fingerprint and config.content_hash and config.dim == source.dim and config.num_rows == len(self):
            if content_hash(source) != config.content_hash:
                raise ValueError(
                    f"index at {folder} was built on other vectors: the content hash of column {column!r} differs "
                    "(same row count and dim, different values); rebuild the index, or pass check_fingerprint=False "
                    "if you know the rows match"
                )
            same_content = True  # the vectors match: a different local fingerprint does not matter
    index = AdANNSIndex.load(
        folder,
        expected_num_rows=len(self),
        expected_dim=expected_dim,
        expected_fingerprint=self._fingerprint if check_fingerprint and not same_content else None,
    )
    self._indexes[index_name] = index
    logger.info("Loaded AdANNS index %r from %s", index_name, folder)
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
    """Upload the AdANNS index ``index_name`` (config, faiss files, lists, Pareto front, card) into
    ``path_in_repo`` (default ``adanns/<index_name>``) of the dataset repo ``repo_id``; return the commit
    URL. Honours ``HF_ENDPOINT`` and tokens. On failure raises :class:`hf_ada.common.hub.HubError`; the index
    attached to the dataset is untouched and can be pushed again."""
    index = _adanns_index(self, index_name)
    path_in_repo = path_in_repo or default_path_in_repo(index_name)
    index.config.extra.update({"index_name": index_name, "repo_id": repo_id, "path_in_repo": path_in_repo})
    with tempfile.TemporaryDirectory(prefix="hf-ada-adanns-") as tmp:
        folder = index.save(Path(tmp) / index_name)
        return push_folder(
            folder, repo_id, repo_type="dataset", path_in_repo=path_in_repo, token=token, revision=revision,
            private=private, commit_message=commit_message or f"Upload AdANNS index {index_name} with hf-ada",
            create_pr=create_pr,
        )


#: The methods :func:`hf_ada.adanns.integration.register` attaches to :class:`datasets.Dataset`.
DATASET_METHODS = {
    "add_adanns_index": add_adanns_index,
    "add_adanns_index_from_external_arrays": add_adanns_index_from_external_arrays,
    "save_adanns_index": save_adanns_index,
    "load_adanns_index": load_adanns_index,
    "push_adanns_index_to_hub": push_adanns_index_to_hub,
}

