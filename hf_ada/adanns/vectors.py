"""Reading the vectors being indexed: Matryoshka prefixes, row-batched sources, finiteness checks."""

from __future__ import annotations

import numpy as np

__all__ = ["prefix", "search_queries", "VectorSource", "ArrayVectorSource", "check_finite"]


#: a row whose squared length is within this of 1 is taken as unit length already (faiss's normalisation leaves
#: float32 rows within about 1e-6 of it)
UNIT_TOLERANCE = 1e-5


def prefix(vectors: np.ndarray, dim: int, metric: str) -> np.ndarray:
    """First ``dim`` dims of ``vectors`` as C-contiguous float32, re-normalised to unit length for ``ip`` (a
    zero row stays zero). ``ip`` always returns a new array (normalised in place by faiss, in one pass).

    Rows that are unit length already (every row within :data:`UNIT_TOLERANCE`: normalised embeddings, the
    stored vectors, a full-dim prefix of them) are returned bit for bit: normalising them again changes their
    last bits, and with them the near ties that a faiss index built on the same vectors resolves (its graph,
    its lists, its order of equal scores)."""
    if metric != "ip":
        return np.ascontiguousarray(vectors[:, :dim], dtype=np.float32)
    out = np.array(vectors[:, :dim], dtype=np.float32, order="C")
    return _unit(out, np.einsum("ij,ij->i", out, out))


def _unit(out: np.ndarray, squared: np.ndarray) -> np.ndarray:
    """``out`` (its rows' squared lengths ``squared``) normalised in place by faiss, unless every row is unit
    length already."""
    if not (np.abs(squared - 1.0) <= UNIT_TOLERANCE).all():
        import faiss

        faiss.normalize_L2(out)
    return out


def search_queries(queries: np.ndarray, metric: str, name: str = "queries") -> np.ndarray:
    """The full-dim query rows every stage of a search takes its prefixes from: ``queries`` (float32, all the
    index's dims) checked finite (:class:`ValueError` naming the first bad row) and, for ``ip``, unit length
    -- ``prefix(queries, dim, metric)`` -- in one pass over them. The caller's array itself when it is already
    that (C-contiguous unit rows: a normalising encoder's output); a search only reads it, and a copy costs a
    fast IVF batch a few percent."""
    out = np.ascontiguousarray(queries, dtype=np.float32)
    if metric != "ip":
        check_finite(out, name)
        return out
    squared = np.einsum("ij,ij->i", out, out)
    if not np.isfinite(squared).all():  # a NaN or an inf in the row, or a finite row whose square overflows
        check_finite(out, name)
    if (np.abs(squared - 1.0) <= UNIT_TOLERANCE).all():
        return out
    return _unit(out.copy() if out is queries else out, squared)


def check_finite(batch: np.ndarray, name: str, start: int = 0) -> None:
    """Raise ``ValueError`` naming the first row of ``batch`` (offset by ``start``) holding NaN or inf."""
    if not np.isfinite(batch).all():
        bad = start + int(np.argwhere(~np.isfinite(batch).all(axis=1))[0, 0])
        raise ValueError(f"{name} contains NaN or infinite values (first at row {bad}); clean them before indexing")


class VectorSource:
    """Row-batched read access to the vectors being indexed (streaming, no full copy)."""

    num_rows: int
    dim: int

    def read(self, start: int, end: int) -> np.ndarray:
        """Rows ``start:end`` as a float32 array of shape ``(end - start, dim)``."""
        raise NotImplementedError

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given (sorted) rows as a float32 array."""
        raise NotImplementedError

    def content_hash(self) -> str:
        """SHA-256 over every row's bytes (see :mod:`hf_ada.adanns.dataset` for dataset columns)."""
        raise NotImplementedError


class ArrayVectorSource(VectorSource):
    """A :class:`VectorSource` over an in-memory or memory-mapped 2-D array."""

    def __init__(self, array: np.ndarray, name: str = "vectors"):
        array = np.asarray(array) if not isinstance(array, np.memmap) else array
        if array.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array (rows, dim), got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{name} must hold floats, got dtype {array.dtype}")
        self.array, self.name = array, name
        self.num_rows, self.dim = array.shape

    def read(self, start: int, end: int) -> np.ndarray:
        out = np.array(self.array[start:end], dtype=np.float32)
        self._release(start, end)
        return out

    def _release(self, start: int, end: int) -> None:
        """Drop the pages of rows ``start:end`` of a read-only memory-mapped source from this process's
        resident set once copied (clean file pages: the OS re-reads them if needed), so a streamed build
        over a memory-mapped file holds the vectors once, not twice."""
        mm = getattr(self.array, "_mmap", None)
        if mm is None or getattr(self.array, "mode", None) != "r" or not hasattr(mm, "madvise"):
            return
        import mmap

        row = self.dim * self.array.dtype.itemsize
        base = self.array.offset % mmap.ALLOCATIONGRANULARITY
        first = (base + start * row) // mmap.PAGESIZE * mmap.PAGESIZE
        last = (base + end * row) // mmap.PAGESIZE * mmap.PAGESIZE
        if last > first:
            try:
                mm.madvise(mmap.MADV_DONTNEED, first, last - first)
            except (OSError, ValueError):
                pass

    def take(self, rows: np.ndarray) -> np.ndarray:
        out = np.array(self.array[rows], dtype=np.float32)
        self._release(0, self.num_rows)  # a scattered sample touches pages all over the file
        return out

    def content_hash(self) -> str:
        import hashlib

        digest = hashlib.sha256(f"{self.num_rows}x{self.dim}:{self.array.dtype.str}".encode())
        step = max(1, (1 << 24) // max(self.dim * self.array.dtype.itemsize, 1))
        for start in range(0, self.num_rows, step):
            digest.update(memoryview(np.ascontiguousarray(self.array[start : start + step])).cast("B"))
        return digest.hexdigest()
