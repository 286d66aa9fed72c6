"""Small helpers the AdANNS test files share (not a test file itself): :func:`unit`, the row normalisation the
tests' brute-force references use for cosine similarity; :func:`assert_same_index`, two builds compared array by
array and by their search results."""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Each row of ``x`` divided by its L2 norm."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def assert_same_index(got, want, queries: np.ndarray, k: int = 10) -> None:
    """Two :class:`~hf_ada.adanns.AdANNSIndex` objects hold the same structure (centroids, lists, OPQ rotation,
    PQ codebooks and codes, vectors; bit for bit) and return the same results for ``queries``."""
    assert got.num_rows == want.num_rows
    for dc in want.storage.centroids:
        np.testing.assert_array_equal(got.storage.centroids[dc], want.storage.centroids[dc])
        np.testing.assert_array_equal(got.storage.ids[dc], want.storage.ids[dc])
        np.testing.assert_array_equal(got.storage.offsets[dc], want.storage.offsets[dc])
    for name in ("opq_rotation", "pq_codebooks", "codes"):
        a, b = getattr(got.storage, name), getattr(want.storage, name)
        assert (a is None) == (b is None), name
        if b is not None:
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.storage.vector_view(), want.storage.vector_view())
    for x, y in zip(got.search_batch(queries, k), want.search_batch(queries, k)):
        np.testing.assert_array_equal(x, y)


def chosen_qps(points: list[dict], target: float, dim: int) -> float:
    """The queries/s of the plan ``choose_plan`` must pick for ``target``, transcribed from its rule: the plans
    reaching it (measured recall at most a tenth of its standard error short), the fastest of them, unless a
    full-dim faiss structure in one pass (exact flat, the IVF quantizing and scanning all ``dim`` dims, the
    ``dim``-dim graph) is within 1.05x of it -- then the fastest such -- or else a plan without a re-rank stage
    is -- then the fastest such. ``dim``: the index's dim."""
    meets = [p for p in points if p["recall"] >= target - 0.1 * (p.get("recall_se") or 0.0) - 1e-12]
    fastest = max(p["qps"] for p in meets)
    full_dim = [p["qps"] for p in meets if not p["d_rerank"] and p["d_search"] == dim and
                (p["scan"] in ("exact", "hnsw") or (p["scan"] == "flat" and p["d_cluster"] == dim))]
    one_pass = [p["qps"] for p in meets if not p["d_rerank"]]
    for simpler in (full_dim, one_pass):
        if simpler and max(simpler) * 1.05 >= fastest:
            return max(simpler)
    return fastest
