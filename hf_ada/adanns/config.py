"""Configuration of an AdANNS index: which Matryoshka prefix each stage of the search uses.

An :class:`AdANNSConfig` round-trips through JSON (``config.json`` inside a saved index folder). It holds
the build-time structure (``d_cluster``, ``nlist``, the OPQ/PQ code shape), the default search settings
(``d_search``, ``nprobe``, re-ranking), and the provenance that a load is checked against (embedding dim,
number of rows, dataset fingerprint, embedding model name and revision).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..common.config import JsonConfigMixin

__all__ = ["AdANNSConfig", "SCHEMA_VERSION", "METRICS", "SCANS"]

SCHEMA_VERSION = 1
METRICS = ("ip", "l2")
SCANS = ("flat", "pq")


@dataclass
class AdANNSConfig(JsonConfigMixin):
    """Settings and provenance of an :class:`~hf_ada.adanns.AdANNSIndex`.

    Args:
        dim: full embedding dimension ``D`` of the indexed vectors.
        d_cluster: prefix length used to learn the k-means centroids and to pick the lists a query probes.
        d_search: prefix length used to score the candidates of the probed lists (flat scan).
        nlist: number of inverted lists (k-means centroids). ``nlist=1`` means exhaustive search.
        nprobe: number of lists a query probes by default.
        pq_bytes: bytes per vector of the OPQ+PQ codes (``None``: no compressed codes).
        d_pq: prefix length the OPQ rotation and the PQ codebooks are trained on (defaults to ``dim``).
        d_rerank: prefix length of the exact re-ranking of the best scanned candidates (``None``: none).
        rerank_k: how many scanned candidates are re-ranked exactly.
        metric: ``"ip"`` (inner product on L2-normalised prefixes: cosine) or ``"l2"`` (squared L2).
        scan: ``"flat"`` (exact scores on ``d_search`` dims) or ``"pq"`` (asymmetric PQ distances);
            defaults to ``"pq"`` when ``pq_bytes`` is set.
        train_size: number of vectors the k-means / OPQ / PQ training uses (``None``: all, capped at
            ``256 * nlist`` for k-means as faiss recommends).
        seed: random seed of the training sample and of k-means.
        num_rows: number of indexed vectors (set at build time).
        column: dataset column the index was built from (``None`` for external arrays).
        dataset_fingerprint: fingerprint of the dataset at build time (``None`` for external arrays).
        content_hash: SHA-256 of up to 1024 evenly spaced rows of the indexed column (float32 bytes) and the
            row count: a machine-independent check that a dataset loaded elsewhere holds the same vectors
            (``datasets`` fingerprints depend on local cache paths).
        embedding_model: name or path of the model that produced the embeddings, when known.
        embedding_model_revision: its revision (commit hash), when known.
        schema_version: version of this file's layout; loads refuse other versions.
    """

    SCHEMA_VERSION = SCHEMA_VERSION  # the version this hf-ada writes and reads (not a field)
    CONFIG_KIND = "AdANNS index"


    dim: int
    d_cluster: int
    d_search: int
    nlist: int
    nprobe: int = 1
    pq_bytes: int | None = None
    d_pq: int | None = None
    d_rerank: int | None = None
    rerank_k: int = 100
    metric: str = "ip"
    scan: str | None = None
    train_size: int | None = None
    seed: int = 0
    num_rows: int | None = None
    column: str | None = None
    dataset_fingerprint: str | None = None
    content_hash: str | None = None
    embedding_model: str | None = None
    embedding_model_revision: str | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pq_bytes is not None and self.d_pq is None:
            self.d_pq = self.dim
        if self.scan is None:
            self.scan = "pq" if self.pq_bytes is not None else "flat"
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the first invalid argument."""
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim must be a positive int, got {self.dim!r}")
        for name in ("d_cluster", "d_search", "d_pq", "d_rerank"):
            value = getattr(self, name)
            if value is None and name in ("d_pq", "d_rerank"):
                continue
            if not isinstance(value, int) or not 1 <= value <= self.dim:
                raise ValueError(
                    f"{name} must be an int in [1, {self.dim}] (the embedding dim), got {value!r}"
                )
        if not isinstance(self.nlist, int) or self.nlist < 1:
            raise ValueError(f"nlist must be a positive int, got {self.nlist!r}")
        if self.num_rows is not None and self.nlist > self.num_rows:
            raise ValueError(f"nlist must be <= the number of rows ({self.num_rows}), got {self.nlist}")
        if not isinstance(self.nprobe, int) or not 1 <= self.nprobe <= self.nlist:
            raise ValueError(f"nprobe must be an int in [1, nlist={self.nlist}], got {self.nprobe!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {self.scan!r}")
        if self.scan == "pq" and self.pq_bytes is None:
            raise ValueError("scan='pq' needs pq_bytes (the index has no PQ codes)")
        if self.pq_bytes is not None:
            if not isinstance(self.pq_bytes, int) or self.pq_bytes < 1:
                raise ValueError(f"pq_bytes must be a positive int, got {self.pq_bytes!r}")
            if self.d_pq % self.pq_bytes != 0:
                raise ValueError(
                    f"d_pq ({self.d_pq}) must be a multiple of pq_bytes ({self.pq_bytes}): each byte codes "
                    "one sub-vector of d_pq / pq_bytes dims"
                )
        if not isinstance(self.rerank_k, int) or self.rerank_k < 1:
            raise ValueError(f"rerank_k must be a positive int, got {self.rerank_k!r}")
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size < 1):
            raise ValueError(f"train_size must be a positive int or None, got {self.train_size!r}")
        self.check_schema_version(self.schema_version)

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON (atomically)."""
        self.save_json(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> AdANNSConfig:
        """Read a config written by :meth:`save`."""
        return cls.load_json(path)
