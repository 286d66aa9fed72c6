"""The AdANNS methods on a real ``datasets.Dataset``: the stock search API works unchanged on the index,
saved indexes are checked against the dataset they are loaded into, and bad columns are refused."""

from __future__ import annotations

import datasets
import faiss
import numpy as np
import pytest
from datasets import Dataset

import hf_ada  # noqa: F401  (attaches the methods)
from hf_ada.adanns import AdANNSIndex

from adanns_reference import unit

faiss.omp_set_num_threads(1)

D = 16


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((400, D)).astype(np.float32)


@pytest.fixture
def dataset(vectors) -> Dataset:
    ds = Dataset.from_dict({"emb": vectors.tolist(), "name": [f"row-{i}" for i in range(len(vectors))]})
    return ds.cast_column("emb", datasets.List(datasets.Value("float32"), length=D))


def test_methods_are_attached_on_import():
    for name in ("add_adanns_index", "add_adanns_index_from_external_arrays", "save_adanns_index",
                 "load_adanns_index", "push_adanns_index_to_hub"):
        assert callable(getattr(Dataset, name))


def test_get_nearest_examples_after_add_adanns_index(dataset, vectors):
    dataset.add_adanns_index("emb", d_cluster=4, d_search=D, nlist=8, nprobe=8, show_progress=False)
    assert dataset.list_indexes() == ["emb"]
    assert isinstance(dataset.get_index("emb"), AdANNSIndex)
    query = vectors[17] + 0.01
    scores, examples = dataset.get_nearest_examples("emb", query, k=4)
    ref = np.argsort(-(unit(vectors) @ (query / np.linalg.norm(query))))[:4]
    assert examples["name"] == [f"row-{i}" for i in ref]
    assert examples["name"][0] == "row-17"
    batch_scores, batch_examples = dataset.get_nearest_examples_batch("emb", vectors[[3, 9]], k=2)
    assert [e["name"][0] for e in batch_examples] == ["row-3", "row-9"]
    assert len(batch_scores) == 2 and len(batch_scores[0]) == 2
    # per-call overrides pass through Dataset.search unchanged
    cheap = dataset.search("emb", query, k=4, d_search=4, nprobe=1)
    assert len(cheap.indices) == 4
    dataset.drop_index("emb")
    assert dataset.list_indexes() == []


def test_external_arrays_and_variable_length_column(vectors):
    ds = Dataset.from_dict({"emb": vectors.tolist()})  # List(Value('float64')) without a fixed length
    ds.add_adanns_index("emb", "by_column", d_cluster=4, d_search=8, nlist=4, nprobe=2, show_progress=False)
    ds.add_adanns_index_from_external_arrays(vectors, "by_array", d_cluster=4, d_search=8, nlist=4, nprobe=2,
                                             show_progress=False)
    a = ds.search_batch("by_column", vectors[:5], k=5)
    b = ds.search_batch("by_array", vectors[:5], k=5)
    np.testing.assert_array_equal(a.total_indices, b.total_indices)


def test_save_load_on_dataset_and_mismatches(dataset, vectors, tmp_path):
    dataset.add_adanns_index("emb", "idx", d_cluster=4, d_search=8, nlist=8, nprobe=3, d_rerank=D, rerank_k=20,
                             show_progress=False, embedding_model="unit-test-model")
    before = dataset.search_batch("idx", vectors[:10], k=5)
    dataset.save_adanns_index("idx", tmp_path / "idx")
    assert "unit-test-model" in (tmp_path / "idx" / "README.md").read_text()
    dataset.drop_index("idx")
    dataset.load_adanns_index("idx", tmp_path / "idx")
    after = dataset.search_batch("idx", vectors[:10], k=5)
    np.testing.assert_array_equal(before.total_indices, after.total_indices)
    np.testing.assert_array_equal(before.total_scores, after.total_scores)

    dataset.drop_index("idx")  # datasets refuses transforms while indexes are attached
    smaller = dataset.select(range(300))
    with pytest.raises(ValueError, match="holds 400 rows but the dataset has 300"):
        smaller.load_adanns_index("idx", tmp_path / "idx")
    renamed = dataset.map(lambda row: {"name": row["name"] + "!"})  # new fingerprint, same vectors: accepted
    assert renamed._fingerprint != dataset._fingerprint
    renamed.load_adanns_index("idx", tmp_path / "idx")
    other_vectors = dataset.map(lambda row: {"emb": [v + 1.0 for v in row["emb"]]})
    with pytest.raises(ValueError, match="content hash of column 'emb' differs"):
        other_vectors.load_adanns_index("idx", tmp_path / "idx")
    other_vectors.load_adanns_index("idx", tmp_path / "idx", check_fingerprint=False)
    assert other_vectors.list_indexes() == ["idx"]
    no_column = dataset.remove_columns("emb")  # no column to hash: the dataset fingerprint decides
    with pytest.raises(ValueError, match="fingerprint"):
        no_column.load_adanns_index("idx", tmp_path / "idx")
    wider = Dataset.from_dict({"emb": np.zeros((400, D + 4), np.float32).tolist()})
    with pytest.raises(ValueError, match="16-dim embeddings, the column has 20"):
        wider.load_adanns_index("idx", tmp_path / "idx", check_fingerprint=False)
    with pytest.raises(ValueError, match="not an AdANNS index"):
        dataset.add_faiss_index("emb", "flat")
        dataset.save_adanns_index("flat", tmp_path / "flat")


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda v: {"emb": v.tolist()}, {"d_cluster": 17}, "d_cluster must be <= the embedding dim \\(16\\)"),
        (lambda v: {"emb": v.tolist()}, {"nlist": 401}, "nlist must be <= the number of rows \\(400\\)"),
        (lambda v: {"emb": [str(r) for r in v]}, {}, "column 'emb' must be a fixed-size vector of floats"),
        (lambda v: {"emb": (v * 10).astype(int).tolist()}, {}, "must be a fixed-size vector of floats"),
        (lambda v: {"emb": [r[: 8 + i % 2].tolist() for i, r in enumerate(v)]}, {}, "one fixed size"),
        (lambda v: {"emb": np.where(np.arange(len(v))[:, None] == 250, np.nan, v).tolist()}, {},
         "NaN or infinite values \\(first at row 250\\)"),
        (lambda v: {"other": v.tolist()}, {}, "column 'emb' is not in the dataset"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(vectors, make, kwargs, message):
    ds = Dataset.from_dict(make(vectors))
    params = {"d_cluster": 4, "d_search": 8, "nlist": 4, "nprobe": 2, "show_progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        ds.add_adanns_index("emb", **params)
    assert ds.list_indexes() == []


def test_wrong_query_dim_on_dataset(dataset, vectors):
    dataset.add_adanns_index("emb", d_cluster=4, d_search=8, nlist=4, nprobe=2, show_progress=False)
    with pytest.raises(ValueError, match="dim 12 but the index was built on 16"):
        dataset.get_nearest_examples("emb", vectors[0, :12])


def test_content_check_covers_every_row(tmp_path):
    """A row the old 1,024-row sample never looked at (2,000 rows: the sample skipped every other one)."""
    vectors = np.random.default_rng(5).standard_normal((2000, 8)).astype(np.float32)
    ds = Dataset.from_dict({"emb": vectors.tolist()}).cast_column("emb", datasets.List(datasets.Value("float32"), length=8))
    ds.add_adanns_index("emb", d_cluster=4, d_search=8, nlist=8, nprobe=2, show_progress=False)
    ds.save_adanns_index("emb", tmp_path / "idx")
    old_sample = set(np.unique(np.linspace(0, 1999, num=1024).astype(np.int64)).tolist())
    row = next(r for r in range(1000, 2000) if r not in old_sample)
    changed = vectors.copy()
    changed[row, 5] += 1e-3
    other = Dataset.from_dict({"emb": changed.tolist()}).cast_column("emb", datasets.List(datasets.Value("float32"), length=8))
    with pytest.raises(ValueError, match="content hash of column 'emb' differs"):
        other.load_adanns_index("emb", tmp_path / "idx")
    swapped = vectors[np.r_[0:row, row + 1, row, row + 2:2000]]  # two rows exchanged
    other = Dataset.from_dict({"emb": swapped.tolist()}).cast_column("emb", datasets.List(datasets.Value("float32"), length=8))
    with pytest.raises(ValueError, match="content hash of column 'emb' differs"):
        other.load_adanns_index("emb", tmp_path / "idx")
    same = Dataset.from_dict({"emb": vectors.tolist(), "x": [0] * 2000})
    same = same.cast_column("emb", datasets.List(datasets.Value("float32"), length=8))
    same.load_adanns_index("emb", tmp_path / "idx")  # same vectors, other dataset: accepted
    assert same.search("emb", vectors[row], k=1).indices[0] == row


def test_save_keeps_other_files_and_refuses_bad_names(dataset, tmp_path):
    dataset.add_adanns_index("emb", "idx", d_cluster=4, d_search=8, nlist=4, nprobe=2, show_progress=False)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    dataset.save_adanns_index("idx", folder)
    assert (folder / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="index_name '../x' is not allowed"):
        dataset.add_adanns_index("emb", "../x", d_cluster=4, d_search=8, nlist=4, show_progress=False)
    with pytest.raises(ValueError, match="is not allowed"):
        dataset.save_adanns_index("../x", tmp_path / "y")


def test_default_structure_from_data_size(dataset):
    dataset.add_adanns_index("emb", "auto", show_progress=False)  # no settings: chosen from n and dim
    config = dataset.get_index("auto").config
    assert (config.nlist, config.d_cluster, config.d_search, config.nprobe) == (10, 16, 16, 1)  # 400 rows // 39
    assert config.d_rerank is None  # d_search is already the full dim
    index = dataset.get_index("auto")  # no search settings given: a plan was chosen on 256 sampled rows
    flat = [p for p in index.tuning["points"] if p["scan"] == "exact" and p["d_search"] == D]
    assert len(flat) == 1 and index.plan is not None and index.plan["qps"] >= flat[0]["qps"]
    assert index.plan["recall"] >= 0.99 * flat[0]["recall"] - 0.1 * index.plan["recall_se"]
    assert "exact flat search" in index.plan["reason"]


def test_attached_methods_are_the_functions_after_first_use():
    from hf_ada.adanns import dataset
    from hf_ada.adanns.integration import METHOD_NAMES

    for name, function in ((name, getattr(dataset, name)) for name in METHOD_NAMES):
        assert getattr(Dataset, name) is function  # the first lookup swaps the placeholder for the function


@pytest.mark.parametrize("first_import", ["from hf_ada.adanns.dataset import add_adanns_index",
                                          "import hf_ada.adanns.index", "import hf_ada; import datasets"])
def test_methods_attach_whatever_imports_datasets_first(first_import):
    """The registration hook can fire while hf_ada.adanns.dataset is itself importing datasets (README's
    'without patches' snippet); it must neither crash nor leave the methods missing."""
    import subprocess
    import sys

    code = (f"{first_import}\nimport datasets, numpy as np\n"
            "ds = datasets.Dataset.from_dict({'e': np.eye(40, 8, dtype='float32').tolist()})\n"
            "ds.add_adanns_index('e', nlist=2, auto_tune=0)\n"
            "print(ds.search('e', np.eye(8, dtype='float32')[3], k=1).indices[0])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "3"
