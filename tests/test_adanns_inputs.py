"""Every AdANNS setting checked where it enters, with an error naming the argument, before any work."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from datasets import Dataset

import hf_ada  # noqa: F401  (attaches the Dataset methods)
from hf_ada.adanns import AdANNSConfig, AdANNSIndex
from hf_ada.adanns import dataset as adanns_dataset

D = 16


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((300, D)).astype(np.float32)


@pytest.fixture(scope="module")
def index(vectors) -> AdANNSIndex:
    return AdANNSIndex.build(vectors, AdANNSConfig(dim=D, d_cluster=4, d_search=8, nlist=4, nprobe=2),
                             show_progress=False)


@pytest.mark.parametrize("field", ["d_cluster", "d_search"])
def test_zero_prefix_is_refused_even_with_other_fields_unset(vectors, field):
    with pytest.raises(ValueError, match=f"{field} must be an int in \\[1, {D}\\]"):
        AdANNSConfig(dim=D, num_rows=300, **{field: 0})
    ds = Dataset.from_dict({"emb": vectors.tolist()})
    with pytest.raises(ValueError, match=f"{field} must be an int in \\[1, {D}\\]"):
        ds.add_adanns_index("emb", show_progress=False, **{field: 0})
    assert ds.list_indexes() == []


def test_huge_k_is_clamped_to_the_rows(index, vectors):
    scores, rows = index.search_batch(vectors[:3], k=10**9, scan="exact", d_search=D, d_rerank=None)
    assert rows.shape == (3, 300) and sorted(rows[0].tolist()) == list(range(300))
    _, rows = index.search_batch(vectors[:3], k=10**9, d_rerank=D, rerank_k=10**9)  # re-rank width too
    assert rows.shape == (3, 300)
    assert index.search(vectors[0], k=10**9).indices.shape == (300,)


def test_zero_queries_are_refused(index):
    with pytest.raises(ValueError, match="queries must hold at least one query"):
        index.search_batch(np.zeros((0, D), dtype=np.float32), k=5)
    with pytest.raises(ValueError, match="queries must hold at least one query"):
        index.tune(np.zeros((0, D), dtype=np.float32), [], show_progress=False)


def test_empty_dataset_and_vectors_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="no rows"):
        AdANNSIndex.build(np.zeros((0, D), dtype=np.float32), AdANNSConfig(dim=D), show_progress=False)
    empty = Dataset.from_dict({"emb": []}, features=datasets.Features(
        {"emb": datasets.List(datasets.Value("float32"), length=D)}))
    with pytest.raises(ValueError, match="the dataset has no rows"):
        empty.add_adanns_index("emb", show_progress=False)


@pytest.mark.parametrize("auto_tune", [-5, 2.5, True])
def test_bad_auto_tune_is_refused_before_any_work(vectors, monkeypatch, auto_tune):
    def no_work(*args, **kwargs):
        raise AssertionError("no vector may be read before the arguments are checked")

    monkeypatch.setattr(adanns_dataset, "column_content_hash", no_work)
    monkeypatch.setattr(AdANNSIndex, "build", no_work)
    ds = Dataset.from_dict({"emb": vectors.tolist()})
    with pytest.raises(ValueError, match="auto_tune must be an int >= 0"):
        ds.add_adanns_index("emb", auto_tune=auto_tune, show_progress=False)
    with pytest.raises(ValueError, match="auto_tune must be an int >= 0"):
        ds.add_adanns_index_from_external_arrays(vectors, "ext", auto_tune=auto_tune, show_progress=False)


def test_tune_refuses_empty_or_foreign_truth_sets(index, vectors):
    q = vectors[:3]
    with pytest.raises(ValueError, match="relevant_ids\\[1\\] is empty"):
        index.tune(q, [{0}, set(), {2}], show_progress=False)
    with pytest.raises(ValueError, match="relevant_ids\\[2\\] holds a row outside \\[0, 300\\)"):
        index.tune(q, [{0}, {1}, {300}], show_progress=False)
    with pytest.raises(ValueError, match="relevant_ids must have one entry per query \\(3\\), got 2"):
        index.tune(q, [{0}, {1}], show_progress=False)
    assert index.plan is None  # nothing was chosen


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"k": 0}, "k must be a positive int"), ({"k": True}, "k must be a positive int"),
    ({"nprobe": 0}, "nprobe must be an int in \\[1, nlist=4\\]"), ({"nprobe": 5}, "nprobe must be an int in"),
    ({"d_search": 17}, "d_search must be an int in \\[1, 16\\]"), ({"scan": "ivf"}, "scan must be one of"),
    ({"d_cluster": 8}, "d_cluster must be one of the trained prefixes \\[4\\]"),
    ({"rerank_k": 0, "d_rerank": D}, "rerank_k must be a positive int"),
    ({"scan": "hnsw", "d_search": D}, "scan='hnsw' walks the graph of the d_search prefix"),
    ({"ef_search": -1}, "ef_search must be a positive int"), ({"nprobe_x": 1}, "unknown search arguments"),
])
def test_bad_search_settings_name_the_argument(index, vectors, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        index.search_batch(vectors[:2], **kwargs)


def test_prefix_keeps_unit_rows_bit_for_bit_and_normalises_the_rest():
    import faiss

    from hf_ada.adanns.vectors import prefix

    rng = np.random.default_rng(0)
    raw = (rng.standard_normal((50, 96)) / np.sqrt(np.arange(1, 97))).astype(np.float32)
    unit = raw.copy()
    faiss.normalize_L2(unit)
    again = unit.copy()
    faiss.normalize_L2(again)
    assert not np.array_equal(again, unit)  # normalising twice changes last bits: what prefix must not do
    kept = prefix(unit, 96, "ip")
    np.testing.assert_array_equal(kept, unit)
    assert kept is not unit and not np.shares_memory(kept, unit)  # still a new array
    np.testing.assert_array_equal(prefix(raw, 96, "ip"), unit)  # raw rows: faiss's normalisation
    short = prefix(unit, 32, "ip")  # a prefix of unit rows is shorter than 1: normalised
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, rtol=1e-6)
    mixed = np.vstack([unit[:3], 2 * unit[3:4], np.zeros((1, 96), np.float32)])
    out = prefix(mixed, 96, "ip")
    np.testing.assert_allclose(np.linalg.norm(out[:4], axis=1), 1.0, rtol=1e-6)
    assert not out[4].any()  # a zero row stays zero
    np.testing.assert_array_equal(prefix(2 * unit, 96, "l2"), 2 * unit)  # l2: the values as given
    # a search's query rows (read only): unit rows are handed back as they are, anything else as a new array
    # equal to prefix(..., 96) and the caller's array is left alone
    from hf_ada.adanns.vectors import search_queries

    assert search_queries(unit, "ip") is unit
    raw_before = raw.copy()
    for given in (raw, np.asfortranarray(unit), np.asfortranarray(raw)):
        got = search_queries(given, "ip")
        np.testing.assert_array_equal(got, prefix(given, 96, "ip"))
        assert not np.shares_memory(got, given)
    np.testing.assert_array_equal(raw, raw_before)
    np.testing.assert_array_equal(search_queries(2 * unit, "l2"), 2 * unit)  # l2: the values as given
    for bad in (np.nan, np.inf):
        y = unit.copy()
        y[4, 7] = bad
        for metric in ("ip", "l2"):
            with pytest.raises(ValueError, match=r"queries contains NaN or infinite values \(first at row 4\)"):
                search_queries(y, metric)
    huge = unit.copy()
    huge[:, 0] = 3e38  # finite, but their squared lengths overflow: accepted
    assert np.isfinite(search_queries(huge, "ip")).all()


def test_a_search_of_unit_queries_reads_the_callers_array_in_place(index, vectors):
    """search_batch does not copy unit-length float32 queries (it only reads them) and returns what the same
    queries give as a copy; raw queries give the results of their normalised rows."""
    import faiss

    unit = np.ascontiguousarray(vectors[:20], dtype=np.float32).copy()
    faiss.normalize_L2(unit)
    before = unit.copy()
    for settings in ({}, {"scan": "exact", "d_rerank": None}, {"d_rerank": None}):
        got = index.search_batch(unit, 5, **settings)
        want = index.search_batch(unit.copy(), 5, **settings)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(index.search_batch(3 * unit, 5, **settings)[1], want[1])
    np.testing.assert_array_equal(unit, before)


def test_queries_with_nan_or_inf_are_refused_and_huge_finite_values_are_not():
    from hf_ada.adanns.vectors import check_finite

    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 8)).astype(np.float32)
    check_finite(x, "queries")
    huge = x.copy()
    huge[:, 0] = 3e38  # finite, but their sum overflows
    check_finite(huge, "queries")
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[7, 3] = bad
        with pytest.raises(ValueError, match=r"queries contains NaN or infinite values \(first at row 12\)"):
            check_finite(y, "queries", start=5)
    y = x.copy()
    y[2, 0], y[2, 1] = np.inf, -np.inf  # their sum is NaN: refused too
    with pytest.raises(ValueError, match="first at row 2"):
        check_finite(y, "queries")
