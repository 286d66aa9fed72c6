"""The faiss-backed (IVF-Flat) AdaNPC memory against the exact one: search, vote, eviction, save/load, choice."""

from __future__ import annotations

import numpy as np
import pytest

from hf_ada.adanpc import AdaNPCMemory, knn_vote
from hf_ada.adanpc.memory import SOURCE, TEST
from hf_ada.adanpc.memory_index import AUTO_IVF_MIN_ENTRIES, choose_index, default_nlist


@pytest.fixture(scope="module")
def digit_features():
    """sklearn's digits (64 pixels) repeated with noise: 4,000 entries, 10 labels, and 200 held-out queries."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images.reshape(len(data.target), -1) / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 1500, 4000)
    entries = x[rows] + rng.normal(scale=0.05, size=(4000, 64)).astype(np.float32)
    return entries, data.target[rows], x[1500:1700], data.target[1500:1700]


def exact_search(memory, queries, k):
    """Transcription: cosine similarities against every stored entry, top k."""
    z = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = z @ memory.features.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, top, axis=1), top


def test_ivf_scanning_every_list_is_the_exact_search_and_weights_are_exact(digit_features):
    entries, labels, queries, _ = digit_features
    ivf = AdaNPCMemory(64, index="ivf")
    ivf.add(entries, labels, origin=SOURCE)
    assert ivf.search_kind == "ivf"
    nlist = default_nlist(len(entries))
    ivf.set_search("ivf", nprobe=nlist)  # every list: the same neighbours as an exact scan
    sims, found_labels, slots = ivf.search(queries, 10)
    want_sims, want_slots = exact_search(ivf, queries, 10)
    np.testing.assert_allclose(sims, want_sims, atol=1e-5)
    np.testing.assert_array_equal(np.sort(slots, axis=1), np.sort(want_slots, axis=1))
    ivf.set_search("ivf", nprobe=4)  # a few lists: approximate neighbours, but each weight is exact
    sims, found_labels, slots = ivf.search(queries, 10)
    z = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", z, ivf.features[slots]), atol=1e-5)
    np.testing.assert_array_equal(found_labels, labels[slots])
    exact = AdaNPCMemory(64, index="flat")
    exact.add(entries, labels, origin=SOURCE)
    ivf.set_search("ivf")  # the default nprobe: the vote's labels agree with the exact memory's
    votes = [knn_vote(*m.search(queries, 10)[:2], 10, 0.1).argmax(1) for m in (exact, ivf)]
    assert (votes[0] == votes[1]).mean() >= 0.99


def test_ivf_memory_follows_insertion_and_eviction_like_the_exact_one(digit_features):
    entries, labels, queries, qlabels = digit_features
    memories = [AdaNPCMemory(64, capacity=3000, index=kind) for kind in ("flat", "ivf")]
    for memory in memories:
        memory.add(entries[:2000], labels[:2000], origin=SOURCE)
    for step in range(40):  # 1,600 test insertions: 600 fill the capacity, 1,000 evict the oldest
        rows = slice(2000 + 40 * step, 2040 + 40 * step)
        quota = {c: 60 for c in range(10)} if step % 2 else None  # every other batch under the class quota
        for memory in memories:
            memory.add(entries[rows], labels[rows], class_quota=quota)
    flat, ivf = memories
    assert len(ivf) == len(flat) <= 3000 and ivf.num_test == flat.num_test > 0
    np.testing.assert_array_equal(ivf.order, flat.order)
    np.testing.assert_array_equal(ivf.features, flat.features)
    ivf.set_search("ivf", nprobe=default_nlist(2000))  # exhaustive: the index must hold exactly the arrays
    np.testing.assert_allclose(ivf.search(queries, 5)[0], flat.search(queries, 5)[0], atol=1e-5)
    np.testing.assert_array_equal(np.sort(ivf.search(queries, 5)[2], 1), np.sort(flat.search(queries, 5)[2], 1))
    assert ivf._index.ntotal == len(ivf)  # no stale vectors left behind by the evictions


def test_ivf_memory_save_load_and_copy_keep_the_lists(tmp_path, digit_features):
    entries, labels, queries, _ = digit_features
    memory = AdaNPCMemory(64, index="ivf", nprobe=3)
    memory.add(entries, labels, origin=SOURCE)
    memory.add(queries[:50], np.zeros(50, dtype=int), origin=TEST)
    memory.save(tmp_path / "m.safetensors")
    loaded, _ = AdaNPCMemory.load(tmp_path / "m.safetensors", index="ivf", nprobe=3)
    for other in (loaded, memory.copy()):
        assert other.search_kind == "ivf"
        np.testing.assert_array_equal(other._index.centroids, memory._index.centroids)
        for got, want in zip(other.search(queries, 7), memory.search(queries, 7)):
            np.testing.assert_allclose(np.sort(got, 1), np.sort(want, 1), atol=1e-6)
    flat, _ = AdaNPCMemory.load(tmp_path / "m.safetensors", index="flat")  # overridable at load
    assert flat.search_kind == "flat"


def test_auto_choice_by_size_and_refit_after_growth():
    assert choose_index("auto", AUTO_IVF_MIN_ENTRIES - 1) == "flat"
    assert choose_index("auto", AUTO_IVF_MIN_ENTRIES) == "ivf"
    assert choose_index("flat", 10**7) == "flat" and choose_index("ivf", 1000) == "ivf"
    assert choose_index("ivf", 4000, growth_from=1000) == "refit" and choose_index("ivf", 3999, 1000) == "ivf"
    with pytest.raises(ValueError, match="index"):
        AdaNPCMemory(8, index="hnsw")
    rng = np.random.default_rng(2)
    memory = AdaNPCMemory(8, index="ivf")
    memory.add(rng.normal(size=(300, 8)), rng.integers(0, 3, 300), origin=SOURCE)
    fitted = memory._index.fitted_on
    memory.add(rng.normal(size=(3 * fitted, 8)), rng.integers(0, 3, 3 * fitted), origin=SOURCE)
    assert memory._index.fitted_on == 4 * fitted  # grown 4x: fitted again on every entry
