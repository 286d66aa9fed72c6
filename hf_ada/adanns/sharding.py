"""Sharded embedding and index builds across processes and machines (``accelerate launch`` / ``torchrun``).

Every rank embeds its contiguous shards of the rows (``datasets.distributed.split_dataset_by_node``) and
writes each shard's vectors as an Arrow dataset (``save_to_disk``) under ``shards_dir``, with a marker
(``shard-00001.done.json``: the rows, what produced them, and the SHA-256 of every file written); one rank
(rank 0) then builds the index from the memory-mapped shards while the others exit. ``shards_dir`` must be a
folder every rank sees (one machine, or a shared filesystem across machines).

Resumable: rerun the same launch after a rank died and only the shards without a valid marker are
embedded again (a marker counts only if its rows, texts, model and dtype match this run and every file's
checksum matches). Ranks come from an initialised ``torch.distributed`` process group, else from the
launchers' ``RANK`` / ``WORLD_SIZE`` variables; shards are handed out as ``shard % world_size == rank``,
so a rerun may use a different number of processes.

Use::

    # accelerate launch --num_processes 2 [--num_machines N --machine_rank R ...] my_build.py
    ds = embed(ds, model, "text")             # under a launcher: sharded, every rank gets all rows back
    if is_main_process():
        build_index(ds, "embeddings", "out/my-index")

:func:`map_shards` is the generic step (any per-row function, e.g. the encoder in
:func:`hf_ada.adanns.embed`); :func:`build_index` the rank-0 build.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
from datasets.distributed import split_dataset_by_node
import numpy as np

from ..common.files import atomic_file, default_mode, read_json, write_json

logger = logging.getLogger(__name__)

__all__ = ["world", "is_main_process", "shard_bounds", "map_shards", "load_shards", "build_index", "ShardError",
           "write_flat_vectors", "build_index_on_disk", "add_index_on_disk", "open_rows"]

SHARD_FORMAT = "shard-{:05d}"
MARKER_SUFFIX = ".done.json"
_MARKER_VERSION = 1


#: The files of a ``datasets`` ``save_to_disk`` folder: what a stale shard may hold to be replaced.
_SAVED_DATASET_FILE = re.compile(r"data-\d{5}-of-\d{5}\.arrow|dataset_info\.json|state\.json")


class ShardError(RuntimeError):
    """A shard folder that cannot be used (missing, foreign or corrupt) where it is required."""


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: the initialised ``torch.distributed`` group's, else the
    launcher's ``RANK`` / ``WORLD_SIZE`` environment variables, else ``(0, 1)``."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    rank, size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < size:
        raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={size})")
    return rank, size


def is_main_process() -> bool:
    """Rank 0 (the one that builds and saves the index)."""
    return world()[0] == 0


def shard_bounds(num_rows: int, num_shards: int) -> list[tuple[int, int]]:
    """Row ranges of the ``num_shards`` contiguous shards, as ``split_dataset_by_node`` cuts a map-style
    dataset (the first ``num_rows % num_shards`` shards hold one row more)."""
    div, mod = divmod(num_rows, num_shards)
    return [(div * i + min(i, mod), div * (i + 1) + min(i + 1, mod)) for i in range(num_shards)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> dict[str, str]:
    """SHA-256 of every regular file of a shard folder (links refused)."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.is_symlink() or not path.is_file():
            raise ShardError(f"{path} is not a regular file")
        out[path.name] = _sha256(path)
    return out


def _marker_valid(shards_dir: Path, i: int, key: dict[str, Any], verify: bool) -> bool:
    """Shard ``i`` is complete for ``key`` (and, with ``verify``, its files match their checksums)."""
    folder, marker = shards_dir / SHARD_FORMAT.format(i), shards_dir / (SHARD_FORMAT.format(i) + MARKER_SUFFIX)
    if not marker.is_file() or marker.is_symlink() or not folder.is_dir() or folder.is_symlink():
        return False
    try:
        record = read_json(marker)
    except (OSError, ValueError) as err:
        logger.warning("ignoring unreadable shard marker %s (%s)", marker, err)
        return False
    if not isinstance(record, dict) or record.get("key") != key:
        return False
    if verify:
        try:
            files = _files(folder)
        except (OSError, ShardError):
            return False
        if files != record.get("files"):
            logger.warning("shard %d under %s does not match its marker's checksums: it is embedded again", i, shards_dir)
            return False
    return True


def map_shards(
    dataset: datasets.Dataset,
    function: Callable[[datasets.Dataset], datasets.Dataset],
    shards_dir: str | os.PathLike,
    *,
    key: dict[str, Any],
    num_shards: int | None = None,
    content_hash: Callable[[datasets.Dataset], str] | None = None,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
) -> datasets.Dataset:
    """Run ``function`` on this rank's shards of ``dataset`` (``shard % world_size == rank``), save each
    result as an Arrow shard under ``shards_dir``, wait for every other rank's shards, and return all the
    results concatenated in row order (memory-mapped).

    ``function(shard)`` returns a dataset of new columns with one row per row of ``shard``. ``key`` (JSON)
    says what produces them (model, dtype, ...): a shard is reused only if its marker holds the same key,
    rows and ``content_hash(shard)`` (e.g. a hash of the texts) and its files match their checksums.
    ``num_shards`` (default: the world size) fixes the shard boundaries, so a rerun with another process
    count reuses the finished shards. ``timeout`` (seconds, default none) bounds the wait for other ranks'
    shards; a launcher stops the waiting ranks when one fails anyway.
    """
    rank, size = world()
    num_shards = size if num_shards is None else num_shards
    if not isinstance(num_shards, int) or isinstance(num_shards, bool) or not 1 <= num_shards <= max(len(dataset), 1):
        raise ValueError(f"num_shards must be an int in [1, {max(len(dataset), 1)}] (rows), got {num_shards!r}")
    shards_dir = Path(shards_dir)
    shards_dir.mkdir(parents=True, exist_ok=True)
    bounds = shard_bounds(len(dataset), num_shards)
    keys = [{"version": _MARKER_VERSION, "shard": i, "num_shards": num_shards, "rows": [start, end],
             "num_rows": len(dataset), **key} for i, (start, end) in enumerate(bounds)]
    mine = [i for i in range(num_shards) if i % size == rank]
    for i in mine:
        shard = split_dataset_by_node(dataset, rank=i, world_size=num_shards)
        if len(shard) != bounds[i][1] - bounds[i][0]:  # pragma: no cover - guards a change in datasets' cut
            raise ShardError(f"split_dataset_by_node gave {len(shard)} rows for shard {i}, expected {bounds[i]}")
        owned = dict(keys[i], content=content_hash(shard) if content_hash else None)
        if _marker_valid(shards_dir, i, owned, verify=True):
            logger.info("rank %d: shard %d/%d is already done (%s): skipped", rank, i, num_shards, shards_dir)
            continue
        result = function(shard)
        if len(result) != len(shard):
            raise ShardError(f"function returned {len(result)} rows for shard {i} of {len(shard)} rows")
        _write_shard(shards_dir, i, owned, result)
        logger.info("rank %d: shard %d/%d done (rows %d-%d)", rank, i, num_shards, *bounds[i])
    _wait_for(shards_dir, keys, mine, poll_seconds, timeout)
    out = load_shards(shards_dir, num_shards, verify=False)
    if len(out) != len(dataset):
        raise ShardError(f"the shards under {shards_dir} hold {len(out)} rows, the dataset {len(dataset)}")
    return out


def _write_shard(shards_dir: Path, i: int, key: dict[str, Any], vectors: datasets.Dataset) -> None:
    """Save shard ``i`` into a staging folder of its own (a fresh name: another process's staging, on this machine
    or another sharing ``shards_dir``, is never touched), move it into place, then write its marker (last).

    What stands in the way is removed only if this code wrote it: the old marker if it is a regular file, the
    old shard if it is a ``datasets`` ``save_to_disk`` folder of regular files (a stale shard of an earlier run);
    a link, a file or any other folder there is refused and left in place."""
    final = shards_dir / SHARD_FORMAT.format(i)
    marker = shards_dir / (SHARD_FORMAT.format(i) + MARKER_SUFFIX)
    if not _ours_to_replace(final, marker):
        raise ShardError(f"{final} (or its marker) is in the way of shard {i} and is not a shard this code wrote; "
                         "move it away or choose another shards_dir")
    marker.unlink(missing_ok=True)  # the shard is being rewritten: nobody may trust the old one meanwhile
    tmp = Path(tempfile.mkdtemp(prefix=f".{SHARD_FORMAT.format(i)}.tmp-", dir=shards_dir))
    try:
        os.chmod(tmp, default_mode(folder=True))  # mkdtemp makes it 0700; a shard gets a plain mkdir's mode
        vectors.save_to_disk(str(tmp))
        if not _ours_to_replace(final, marker):  # re-checked: something may have appeared meanwhile
            raise ShardError(f"{final} appeared while shard {i} was written and is not a shard this code wrote")
        if os.path.lexists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own staging folder, made above
        raise
    write_json(marker, {"key": key, "files": _files(final)})


def _ours_to_replace(final: Path, marker: Path) -> bool:
    """Whether ``final`` and ``marker`` are absent or what :func:`_write_shard` writes (checked with ``lstat``:
    no link is followed): a regular marker file, a folder of regular ``save_to_disk`` files."""
    try:
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            return False
    except FileNotFoundError:
        pass
    try:
        if not stat.S_ISDIR(os.lstat(final).st_mode):
            return False
    except FileNotFoundError:
        return True
    entries = list(os.scandir(final))
    return any(e.name == "state.json" for e in entries) and all(
        e.is_file(follow_symlinks=False) and _SAVED_DATASET_FILE.fullmatch(e.name) for e in entries
    )


def _wait_for(shards_dir: Path, keys: list[dict[str, Any]], mine: list[int], poll: float, timeout: float | None) -> None:
    """Wait until every shard has a marker for this run (its owner wrote and checked it)."""
    pending = [i for i in range(len(keys)) if i not in mine]
    started, logged = time.monotonic(), 0.0
    while pending:
        pending = [i for i in pending if not _marker_matches(shards_dir, i, keys[i])]
        if not pending:
            break
        waited = time.monotonic() - started
        if timeout is not None and waited > timeout:
            raise TimeoutError(f"shards {pending} under {shards_dir} were not written within {timeout} s")
        if waited - logged > 60:
            logger.info("waiting for shards %s under %s (%.0f s)", pending, shards_dir, waited)
            logged = waited
        time.sleep(poll)


def _marker_matches(shards_dir: Path, i: int, key: dict[str, Any]) -> bool:
    """Shard ``i`` has a marker of this run (everything but the content hash, which only its owner computes)."""
    marker = shards_dir / (SHARD_FORMAT.format(i) + MARKER_SUFFIX)
    if not marker.is_file():
        return False
    try:
        record = read_json(marker)
    except (OSError, ValueError):
        return False
    found = dict(record.get("key") or {}) if isinstance(record, dict) else {}
    found.pop("content", None)
    return found == key


def load_shards(shards_dir: str | os.PathLike, num_shards: int | None = None, *, verify: bool = True) -> datasets.Dataset:
    """The shards under ``shards_dir`` concatenated in order (memory-mapped Arrow). ``verify`` checks every
    file against its marker's SHA-256 first; a missing, unmarked or corrupt shard raises :class:`ShardError`."""
    shards_dir = Path(shards_dir)
    if num_shards is None:
        num_shards = len(list(shards_dir.glob("shard-*" + MARKER_SUFFIX)))
        if not num_shards:
            raise ShardError(f"no finished shards under {shards_dir}")
    parts = []
    for i in range(num_shards):
        folder = shards_dir / SHARD_FORMAT.format(i)
        marker = shards_dir / (SHARD_FORMAT.format(i) + MARKER_SUFFIX)
        if not marker.is_file() or not folder.is_dir() or folder.is_symlink():
            raise ShardError(f"shard {i} under {shards_dir} is missing or unfinished (no {marker.name})")
        if verify:
            record = read_json(marker)
            if not isinstance(record, dict) or record.get("files") != _files(folder):
                raise ShardError(f"shard {i} under {shards_dir} does not match its marker's checksums")
        parts.append(datasets.load_from_disk(str(folder)))
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def build_index(
    dataset: datasets.Dataset,
    column: str,
    output_dir: str | os.PathLike,
    index_name: str | None = None,
    *,
    auto_tune: int = 256,
    **settings: Any,
) -> Path | None:
    """On rank 0: build an AdANNS index over ``column`` (streamed from the memory-mapped Arrow data, e.g. the
    result of :func:`embed_shards`) and save it to ``output_dir``; returns the folder. On other ranks: nothing
    to do, returns ``None`` (they may exit). ``settings`` / ``auto_tune`` as ``Dataset.add_adanns_index``."""
    if not is_main_process():
        return None
    from .dataset import add_adanns_index, save_adanns_index

    name = index_name or column
    add_adanns_index(dataset, column, name, auto_tune=auto_tune, **settings)
    return Path(save_adanns_index(dataset, name, str(output_dir)))


#: Rows re-normalised and written (or gathered as leading columns) at a time by the streamed on-disk build:
#: its transient buffers stay this small whatever the batch size.
_WRITE_ROWS = 4096


class _LeadingColumns:
    """A :class:`~hf_ada.adanns.vectors.VectorSource` view of ``source`` that reads only the first ``width``
    columns of each row (``dim`` stays the source's): what the PQ-only build needs once the full vectors are
    on disk (the coarse quantizers and the OPQ+PQ codes use prefixes of at most ``width`` dims, and every
    prefix is cut and re-normalised from the same float32 values, so the index is the same). Full rows are
    read :data:`_WRITE_ROWS` at a time and cut at once, so the batch and the training sample hold ``width``
    columns, not ``dim``."""

    def __init__(self, source: Any, width: int):
        self.source, self.width = source, width
        self.num_rows, self.dim = source.num_rows, source.dim

    def _gather(self, count: int, read: Callable[[int, int], np.ndarray]) -> np.ndarray:
        out = np.empty((count, self.width), dtype=np.float32)
        for first in range(0, count, _WRITE_ROWS):
            last = min(count, first + _WRITE_ROWS)
            out[first:last] = read(first, last)[:, : self.width]
        return out

    def read(self, start: int, end: int) -> np.ndarray:
        return self._gather(end - start, lambda a, b: self.source.read(start + a, start + b))

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self._gather(len(rows), lambda a, b: self.source.take(rows[a:b]))

    def content_hash(self) -> str:
        return self.source.content_hash()


def write_flat_vectors(source: Any, path: str | os.PathLike, metric: str = "ip", *, batch_size: int = 65_536,
                       bar: Any = None) -> Path:
    """Stream ``source`` (a :class:`~hf_ada.adanns.vectors.VectorSource`) into a faiss flat-index file at
    ``path`` (what ``vectors.faiss`` of a saved index holds: the vectors in row order, re-normalised for
    ``ip``) with plain writes, ``min(batch_size, _WRITE_ROWS)`` rows at a time: the process holds that many
    rows as the source returns them and their re-normalised copy (written from its own buffer, no further
    copy). ``faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC)`` maps it."""
    import faiss

    n, dim = source.num_rows, source.dim
    fourcc, metric_type = (b"IxFI", faiss.METRIC_INNER_PRODUCT) if metric == "ip" else (b"IxF2", faiss.METRIC_L2)
    path = Path(path)
    # a fresh temporary file of our own (never an existing file, a link or another process's staging), moved
    # into place when complete, removed if the write fails
    with atomic_file(path, "wb") as handle:
        _write_flat(source, handle, n, dim, fourcc, metric_type, metric, batch_size, bar)
    return path


def _write_flat(source: Any, handle: Any, n: int, dim: int, fourcc: bytes, metric_type: int, metric: str,
                batch_size: int, bar: Any) -> None:
    import struct

    from .vectors import check_finite, prefix

    # faiss's IndexFlat layout: header (fourcc, d, ntotal, two dummies, is_trained, metric), then the
    # float vector as its element count (uint64) and the floats
    handle.write(struct.pack("<4siqqq?i", fourcc, dim, n, 1 << 20, 1 << 20, True, metric_type))
    handle.write(struct.pack("<Q", n * dim))
    step = min(batch_size, _WRITE_ROWS)  # row-wise work: slices give the values of one whole batch
    for start in range(0, n, step):
        rows = source.read(start, min(n, start + step))
        check_finite(rows, "the embeddings", start)
        handle.write(memoryview(prefix(rows, dim, metric)))  # its own buffer: written without a copy
        if bar is not None:
            bar.update(len(rows))
        rows = None  # freed before the next read
    handle.flush()
    os.fsync(handle.fileno())
    if hasattr(os, "posix_fadvise"):  # written pages need not stay cached on our account
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def build_index_on_disk(
    source: Any,
    config: Any,
    vectors_path: str | os.PathLike,
    *,
    batch_size: int = 65_536,
    show_progress: bool = True,
) -> Any:
    """Build an :class:`~hf_ada.adanns.AdANNSIndex` larger than RAM from a memory-mapped source (a
    :class:`~hf_ada.adanns.vectors.VectorSource`, e.g. ``ArrayVectorSource(np.load(path, mmap_mode="r"))`` or
    a dataset column of memory-mapped Arrow shards): the float32 vectors go to ``vectors_path`` (streamed,
    :func:`write_flat_vectors`) and are memory-mapped from there, never held in memory.

    ``config`` must have ``pq_bytes`` (the in-memory store is the PQ codes; ``scan="pq"``); its ``d_rerank``
    / ``rerank_k`` apply to the mapped vectors. Memory: :data:`_WRITE_ROWS` full rows at a time while the
    vectors are written; then the codes, the lists (8 bytes per row, plus the row-to-list assignment while they are
    sorted), and the training sample and one batch cut to the longest prefix the quantizers and the codes
    use (the full rows are already on disk). ``save_pretrained`` then writes the vectors from the mapping, and
    ``AdANNSIndex.from_pretrained(folder, mmap=True)`` serves them from disk.
    """
    import faiss

    from .index import AdANNSIndex
    from .vectors import ArrayVectorSource

    if isinstance(source, np.ndarray):
        source = ArrayVectorSource(source)
    if config.pq_bytes is None:
        raise ValueError("build_index_on_disk needs pq_bytes: the PQ codes are what stays in memory")
    if config.scan not in (None, "pq"):
        raise ValueError(f"build_index_on_disk builds scan='pq' indexes (lists + codes in memory), got {config.scan!r}")
    if config.graph_dims:
        raise ValueError("build_index_on_disk does not build HNSW graphs (they need the vectors in memory)")
    from tqdm.auto import tqdm

    config.num_rows = source.num_rows
    if not config.is_complete:
        config.fill_defaults(source.num_rows)
    d_rerank, rerank_k = config.d_rerank, config.rerank_k

    with tqdm(total=source.num_rows, desc="vectors to disk", unit="vec", disable=not show_progress) as bar:
        path = write_flat_vectors(source, vectors_path, config.metric, batch_size=batch_size, bar=bar)
    # lists and codes only (no float32 copy), then the mapped vectors attached for the re-rank
    config.scan, config.store_vectors, config.d_rerank = "pq", False, None
    width = max(*config.d_clusters, config.d_pq)
    narrow = _LeadingColumns(source, width) if width < source.dim else source
    index = AdANNSIndex.build(narrow, config, batch_size=batch_size, show_progress=show_progress)
    index.storage.vectors = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    config.store_vectors, config.d_rerank = True, d_rerank
    if rerank_k is not None:
        config.rerank_k = rerank_k
    config.validate()
    return index


def add_index_on_disk(
    dataset: datasets.Dataset,
    column: str,
    index_name: str,
    vectors_path: str | os.PathLike,
    *,
    batch_size: int = 65_536,
    show_progress: bool = True,
    **config_kwargs: Any,
) -> Any:
    """:func:`build_index_on_disk` over a dataset's vector column (streamed from its memory-mapped Arrow
    data), attached to ``dataset`` as ``index_name`` with the provenance ``Dataset.add_adanns_index`` records
    (column, fingerprint, content hash, embedding model), so ``save_adanns_index`` / ``load_adanns_index``
    work as for an in-memory index. ``config_kwargs``: :class:`~hf_ada.adanns.AdANNSConfig` settings;
    ``pq_bytes`` is required, ``d_rerank`` defaults to the full dim (the re-rank reads the mapped vectors).
    ``vectors_path``: where the float32 vectors are streamed to (the index maps them from there; a save
    copies them into its folder). Returns the index."""
    from .config import AdANNSConfig
    from .dataset import DatasetColumnSource, column_content_hash, column_dim, embedding_provenance

    if len(dataset) == 0:
        raise ValueError("the dataset has no rows: there is nothing to index")
    dim = column_dim(dataset, column)
    known_model, known_revision = embedding_provenance(dataset, column)
    config_kwargs.setdefault("embedding_model", known_model)
    config_kwargs.setdefault("embedding_model_revision", known_revision)
    if config_kwargs.get("d_rerank") is None:
        config_kwargs["d_rerank"] = dim
    config = AdANNSConfig(dim=dim, **config_kwargs)
    config.column, config.dataset_fingerprint = column, dataset._fingerprint
    config.content_hash = column_content_hash(dataset, column)
    config.extra = {**config.extra, "index_name": index_name}
    index = build_index_on_disk(DatasetColumnSource(dataset, column), config, vectors_path, batch_size=batch_size,
                                show_progress=show_progress)
    dataset._indexes[index_name] = index
    return index


def open_rows(path: str | os.PathLike, *, split: str = "train") -> datasets.Dataset:
    """A dataset saved with ``save_to_disk`` or a folder of parquet shards (``*.parquet``, in name order),
    as a memory-mapped Arrow dataset: rows are streamed from disk by whatever reads them (the index build
    reads its column batch by batch with a rows/s + ETA progress bar), never loaded whole; parquet shards
    are converted once into the ``datasets`` cache (on disk). ``hf-ada index build --dataset FOLDER`` reads
    the same rows through ``datasets.load_dataset(FOLDER)``, which also splits files named by split
    (``train-*.parquet``, ``test-*.parquet``); here every ``*.parquet`` is one split."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"path must be a folder (a save_to_disk dataset or parquet shards), got {str(path)!r}")
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"split {split!r} is not in {str(path)!r}; available: {list(loaded)}")
            loaded = loaded[split]
        return loaded
    shards = sorted(p for p in path.glob("*.parquet") if p.is_file() and not p.is_symlink())
    if not shards:
        raise ValueError(f"{str(path)!r} holds neither a save_to_disk dataset nor *.parquet shards")
    return datasets.load_dataset("parquet", data_files=[str(p) for p in shards], split="train")
