"""The files of a saved AdANNS index, and the structural checks a load runs before anything is used.

Files (every one bound by size + SHA-256 in ``config.json`` by :mod:`hf_ada.common.artifact`):

* ``vectors.faiss``: a faiss ``IndexFlat`` with the float32 vectors (absent for a PQ-only index);
* ``lists.safetensors``: per coarse quantizer ``centroids_<d>``, ``ids_<d>``, ``offsets_<d>``; per HNSW
  graph ``graph_<d>_<array>`` (faiss's graph arrays, checked for consistency and bounds before faiss
  sees them); with PQ, ``opq_rotation``, ``pq_codebooks`` and ``codes``;
* ``tuning.json``: the measured recall/compute fronts and the chosen plan (every plan is validated against
  this index's structure at load).

The only faiss-format file is a flat index, whose header is parsed and checked against the config and the
file size before ``faiss.read_index`` runs (faiss would otherwise allocate whatever a hostile header
declares). Everything else is safetensors (bounds-checked by its own reader) or JSON. No pickle.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..common.artifact import ArtifactError
from ..common.files import read_json, write_json
from .config import SEARCH_KEYS, AdANNSConfig
from .storage import GRAPH_ARRAYS, IndexStorage

__all__ = ["VECTORS_NAME", "ARRAYS_NAME", "TUNING_NAME", "write_storage", "read_storage", "check_flat_header"]

VECTORS_NAME = "vectors.faiss"
ARRAYS_NAME = "lists.safetensors"
TUNING_NAME = "tuning.json"

_FLAT_HEADER = struct.Struct("<4siqqq?i")  # fourcc, d, ntotal, dummy, dummy, is_trained, metric_type
_FOURCC = {b"IxFI": faiss.METRIC_INNER_PRODUCT, b"IxF2": faiss.METRIC_L2}


def write_storage(storage: IndexStorage, tuning: dict[str, Any], folder: Path) -> None:
    """Write the index's files (not the config) into ``folder``."""
    if storage.vectors is not None:
        faiss.write_index(storage.vectors, str(folder / VECTORS_NAME))
    arrays: dict[str, np.ndarray] = {}
    for dc in storage.centroids:
        arrays[f"centroids_{dc}"] = storage.centroids[dc]
        arrays[f"ids_{dc}"] = storage.ids[dc]
        arrays[f"offsets_{dc}"] = storage.offsets[dc]
    for d, graph in storage.graphs.items():
        arrays.update({f"graph_{d}_{name}": value for name, value in graph.items()})
    if storage.codes is not None:
        arrays.update(opq_rotation=storage.opq_rotation, pq_codebooks=storage.pq_codebooks, codes=storage.codes)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / ARRAYS_NAME))
    write_json(folder / TUNING_NAME, tuning)


def check_flat_header(path: Path, *, dim: int, num_rows: int, metric: str) -> None:
    """Refuse ``path`` unless it is a faiss flat index of exactly ``num_rows`` x ``dim`` float32 vectors with
    ``metric`` whose declared sizes match the file size -- checked before faiss reads (or allocates) anything."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(_FLAT_HEADER.size + 8)
    if len(head) < _FLAT_HEADER.size + 8:
        raise ArtifactError(f"{path.name}: truncated faiss file ({size} bytes)")
    fourcc, d, ntotal, _, _, _, metric_type = _FLAT_HEADER.unpack_from(head)
    (count,) = struct.unpack_from("<Q", head, _FLAT_HEADER.size)
    wanted = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    problems = []
    if fourcc not in _FOURCC or _FOURCC[fourcc] != wanted or metric_type != wanted:
        problems.append(f"not a flat {metric} index (header {fourcc!r}, metric {metric_type})")
    elif d != dim or ntotal != num_rows:
        problems.append(f"declares {ntotal} x {d} vectors, the config says {num_rows} x {dim}")
    elif count != d * ntotal or size != _FLAT_HEADER.size + 8 + 4 * count:
        problems.append(f"declares {count} floats but the file has {size} bytes")
    if problems:
        raise ArtifactError(f"{path.name} is corrupt or does not belong to this index: {problems[0]}")


def _array(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    if name not in arrays:
        raise ArtifactError(f"{ARRAYS_NAME}: array {name!r} is missing")
    value = arrays[name]
    if value.dtype != np.dtype(dtype) or value.shape != shape:
        raise ArtifactError(f"{ARRAYS_NAME}: {name!r} is {value.dtype}{list(value.shape)}, expected {np.dtype(dtype)}{list(shape)}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ArtifactError(f"{ARRAYS_NAME}: {name!r} holds NaN or infinite values")
    return value


def _check_lists(ids: np.ndarray, offsets: np.ndarray, n: int, name: str) -> None:
    if offsets[0] != 0 or offsets[-1] != n or (np.diff(offsets) < 0).any():
        raise ArtifactError(f"{ARRAYS_NAME}: offsets_{name} are not monotone from 0 to the row count {n}")
    if n and (ids.min() < 0 or ids.max() >= n or (np.bincount(ids, minlength=n) != 1).any()):
        raise ArtifactError(f"{ARRAYS_NAME}: ids_{name} are not a permutation of the {n} rows")


def _graph(arrays: dict[str, np.ndarray], d: int, n: int, m: int) -> dict[str, np.ndarray]:
    """The arrays of the HNSW graph on the ``d``-prefix, checked so that no walk can leave them: one level per
    row, neighbour slots per level as faiss lays them out for ``M = m``, every neighbour a row or -1."""
    name = f"graph_{d}"
    out = {}
    for key, dtype in GRAPH_ARRAYS.items():
        full = f"{name}_{key}"
        if full not in arrays:
            raise ArtifactError(f"{ARRAYS_NAME}: array {full!r} is missing")
        if arrays[full].dtype != np.dtype(dtype) or arrays[full].ndim != 1:
            raise ArtifactError(f"{ARRAYS_NAME}: {full!r} must be a 1-D {np.dtype(dtype)} array")
        out[key] = arrays[full]
    header, levels, offsets, cum = out["header"], out["levels"], out["offsets"], out["cum_nneighbor_per_level"]
    problem = None
    if len(header) != 4 or header[2] != m or header[3] < 1:
        problem = f"header must be [entry_point, max_level, M={m}, efConstruction], got {header.tolist()}"
    elif len(levels) != n or len(offsets) != n + 1 or n and (levels.min() < 1 or levels.max() > len(cum) - 1):
        problem = "levels / offsets do not hold one entry per row"
    elif len(cum) < 2 or cum[0] != 0 or (np.diff(cum.astype(np.int64)) <= 0).any() or cum[1] != 2 * m:
        problem = "cum_nneighbor_per_level is not faiss's layout for this M"
    elif n and (offsets[0] != 0 or (np.diff(offsets.astype(np.int64)) != cum[levels]).any()
                or int(offsets[-1]) != len(out["neighbors"])):
        problem = "offsets do not match the levels"
    elif len(out["neighbors"]) and (out["neighbors"].min() < -1 or out["neighbors"].max() >= n):
        problem = "a neighbour is not a row of this index"
    elif n and not (0 <= header[0] < n and header[1] == levels.max() - 1 and levels[header[0]] - 1 == header[1]):
        problem = "the entry point is not a row on the top level"
    elif not np.isfinite(out["assign_probas"]).all() or len(out["assign_probas"]) != len(cum) - 1:
        problem = "assign_probas do not match the level layout"
    if problem:
        raise ArtifactError(f"{ARRAYS_NAME}: the HNSW graph on {d} dims is corrupt: {problem}")
    return out


def read_storage(folder: Path, config: AdANNSConfig, *, mmap: bool = False) -> tuple[IndexStorage, dict[str, Any]]:
    """The storage and tuning record of a verified folder, after the structural checks. ``mmap=True`` maps
    the vectors from ``vectors.faiss`` instead of reading them into memory (faiss ``IO_FLAG_MMAP_IFC``):
    indexes larger than RAM load, and the page cache holds what searches touch."""
    n, cfg = int(config.num_rows), config
    storage = IndexStorage(config)
    try:
        arrays = load_file(str(folder / ARRAYS_NAME))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{ARRAYS_NAME} is not a readable safetensors file ({err})") from err
    for dc in cfg.d_clusters:
        storage.centroids[dc] = _array(arrays, f"centroids_{dc}", (cfg.nlist, dc), np.float32)
        storage.ids[dc] = _array(arrays, f"ids_{dc}", (n,), np.int64)
        storage.offsets[dc] = _array(arrays, f"offsets_{dc}", (cfg.nlist + 1,), np.int64)
        _check_lists(storage.ids[dc], storage.offsets[dc], n, str(dc))
    for d in cfg.graph_dims:
        storage.graphs[d] = _graph(arrays, d, n, cfg.graph_m(d))
    # the widths the graphs were built with, as the config reports them (an index saved before they were settings)
    built_with = {int(storage.graphs[d]["header"][3]) for d in cfg.graph_dims if d != cfg.dim}
    if cfg.dim in cfg.graph_dims:
        cfg.full_graph_ef_construction = int(storage.graphs[cfg.dim]["header"][3])
        built_with = built_with or {cfg.full_graph_ef_construction}
    if len(built_with) == 1:
        cfg.hnsw_ef_construction = built_with.pop()
    if cfg.pq_bytes is not None:
        storage.opq_rotation = _array(arrays, "opq_rotation", (cfg.d_pq, cfg.d_pq), np.float32)
        storage.pq_codebooks = _array(arrays, "pq_codebooks", (cfg.pq_bytes, 256, cfg.d_pq // cfg.pq_bytes), np.float32)
        storage.codes = _array(arrays, "codes", (n, cfg.pq_bytes), np.uint8)
    if cfg.store_vectors:
        path = folder / VECTORS_NAME
        if not path.is_file():
            raise ArtifactError(f"{VECTORS_NAME} is missing (the config says the vectors are stored)")
        check_flat_header(path, dim=cfg.dim, num_rows=n, metric=cfg.metric)
        try:
            storage.vectors = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
        except RuntimeError as err:
            raise ArtifactError(f"{VECTORS_NAME} is not a readable faiss index ({str(err).splitlines()[0]})") from err
        view = storage.vector_view()
        for start in range(0, n, 1 << 16):
            chunk = view[start : start + (1 << 16)]
            if not np.isfinite(chunk).all():
                raise ArtifactError(f"{VECTORS_NAME} holds NaN or infinite values")
            if mmap:
                _release_pages(chunk)
    try:
        tuning = read_json(folder / TUNING_NAME)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{TUNING_NAME} is not valid JSON ({err})") from err
    _check_tuning(tuning, config)
    return storage, tuning


def _release_pages(chunk: np.ndarray) -> None:
    """Drop the checked pages of a memory-mapped, read-only array from this process's resident set
    (``madvise(MADV_DONTNEED)``; they stay in the page cache and are read back if a search needs them), so
    that loading with ``mmap=True`` does not leave the whole vector file mapped in."""
    import ctypes
    import mmap as _mmap

    if not hasattr(_mmap, "MADV_DONTNEED") or chunk.nbytes == 0:
        return
    page = _mmap.PAGESIZE
    first = -(-chunk.ctypes.data // page) * page  # whole pages inside the chunk only
    last = (chunk.ctypes.data + chunk.nbytes) // page * page
    if last > first:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), ctypes.c_int(_mmap.MADV_DONTNEED))


def _check_tuning(tuning: Any, config: AdANNSConfig) -> None:
    """Every plan in the tuning record must be a valid plan of this index (a hand-edited or re-signed file
    with e.g. ``nprobe`` beyond ``nlist`` is refused here, not at the first search)."""
    if not isinstance(tuning, dict) or not isinstance(tuning.get("pareto_front", []), list) \
            or not isinstance(tuning.get("time_front", []), list):
        raise ArtifactError(f"{TUNING_NAME} must be an object with 'pareto_front' and 'time_front' lists")
    plans = list(tuning.get("pareto_front", [])) + list(tuning.get("time_front", []))
    if tuning.get("plan") is not None:
        plans.append(tuning["plan"])
    by_threads = tuning.get("plans_at", {})
    if not isinstance(by_threads, dict) or not by_threads and "plans_at" in tuning \
            or not all(_is_thread_count(t) for t in by_threads):
        raise ArtifactError(f"{TUNING_NAME}: 'plans_at' must map faiss thread counts to plans, got {by_threads!r}")
    plans += list(by_threads.values())
    for plan in plans:
        if not isinstance(plan, dict):
            raise ArtifactError(f"{TUNING_NAME}: a plan is not an object: {plan!r}")
        plan.setdefault("ef_search", config.ef_search)  # written before graph plans existed
        if any(key not in plan for key in SEARCH_KEYS):
            raise ArtifactError(f"{TUNING_NAME}: a plan lacks the search keys {SEARCH_KEYS}: {plan!r}")
        try:
            config.check_settings({key: plan[key] for key in SEARCH_KEYS})
        except (TypeError, ValueError) as err:
            raise ArtifactError(f"{TUNING_NAME}: a plan is not valid for this index ({err})") from err
        for key in ("recall", "qps"):
            if key in plan and not (isinstance(plan[key], (int, float)) and math.isfinite(plan[key])):
                raise ArtifactError(f"{TUNING_NAME}: a plan's {key} is not a finite number: {plan[key]!r}")
        times = plan.get("ms_at", {})
        if not isinstance(times, dict) or not all(
                _is_thread_count(t) and isinstance(ms, (int, float)) and not isinstance(ms, bool)
                and math.isfinite(ms) and ms > 0 for t, ms in times.items()):
            raise ArtifactError(f"{TUNING_NAME}: a plan's 'ms_at' must map faiss thread counts to positive "
                                f"milliseconds: {times!r}")


def _is_thread_count(key: Any) -> bool:
    """A faiss thread count as a JSON object key: a positive int written in decimal ("1", "2", ...)."""
    return isinstance(key, str) and key.isdecimal() and key.isascii() and int(key) >= 1 and key == str(int(key))
