"""The on-disk AdANNS build's memory (``hf_ada.adanns.sharding.build_index_on_disk``): full rows are read in one
pass and written in small re-normalised slices; the quantizers and the PQ codes then read only the leading
columns they use; the index equals the in-memory build. And the OPQ rotation's training iterations
(``opq_iterations`` / ``--opq-iterations``): default 50 as faiss, passed to faiss, checked before any work."""

from __future__ import annotations

import json
import os
import tracemalloc

import faiss
import numpy as np
import pytest
from datasets import Dataset

import hf_ada  # noqa: F401
from hf_ada.adanns import AdANNSConfig, AdANNSIndex, sharding, storage
from hf_ada.adanns.vectors import ArrayVectorSource, prefix

from adanns_reference import assert_same_index

N, DIM = 3000, 48
SETTINGS = dict(dim=DIM, d_cluster=16, nlist=16, nprobe=4, pq_bytes=8, d_pq=24, scan="pq", d_rerank=DIM,
                rerank_k=50, train_size=2000, opq_iterations=5)  # 5 OPQ iterations: faster, the same check


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """One faiss thread: OpenMP threads spinning on a shared 2-core machine cost more than they give here
    (conftest restores the count after each test)."""
    faiss.omp_set_num_threads(1)


def _vectors(n: int = N, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, dim)) / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)


def test_on_disk_build_reads_full_rows_once_then_only_the_prefixes_it_uses(tmp_path, monkeypatch):
    """Prefixes shorter than the vectors (d_cluster 16, d_pq 24 of 48; a second quantizer on 20): one pass
    over the full rows to the flat file, 300 at a time (the write slice), then a training sample and batches
    of 24 columns (full rows gathered 300 at a time); the index equals the one built in memory."""
    vectors = _vectors()
    np.save(tmp_path / "v.npy", vectors)
    settings = dict(SETTINGS, extra_d_clusters=[20])
    in_memory = AdANNSIndex.build(vectors, AdANNSConfig(**settings), show_progress=False)

    reads: list[tuple[str, int, int]] = []
    read, take = ArrayVectorSource.read, ArrayVectorSource.take
    monkeypatch.setattr(ArrayVectorSource, "read", lambda self, s, e: reads.append(("read", s, e - s)) or read(self, s, e))
    monkeypatch.setattr(ArrayVectorSource, "take", lambda self, r: reads.append(("take", int(r[0]), len(r))) or take(self, r))
    shapes: list[tuple[str, tuple[int, ...]]] = []
    train, add_all = storage.IndexStorage.train, storage.IndexStorage.add_all

    def logged_train(self, sample):
        shapes.append(("sample", sample.shape))
        return train(self, sample)

    def logged_add_all(self, source, **kwargs):
        shapes.append(("batch", source.read(0, 5).shape))
        return add_all(self, source, **kwargs)

    monkeypatch.setattr(storage.IndexStorage, "train", logged_train)
    monkeypatch.setattr(storage.IndexStorage, "add_all", logged_add_all)
    monkeypatch.setattr(sharding, "_WRITE_ROWS", 300)  # batches of 700 gathered from 300 + 300 + 100 rows
    on_disk = sharding.build_index_on_disk(np.load(tmp_path / "v.npy", mmap_mode="r"), AdANNSConfig(**settings),
                                           tmp_path / "vectors.faiss", batch_size=700, show_progress=False)
    assert shapes == [("sample", (2000, 24)), ("batch", (5, 24))]
    # the write pass: every row once, in order, 300 at a time; then too never more than 300 full rows at once
    first_pass = reads[: len(range(0, N, 300))]
    assert first_pass == [("read", s, min(300, N - s)) for s in range(0, N, 300)]
    assert max(r[2] for r in reads) == 300
    assert_same_index(on_disk, in_memory, np.random.default_rng(1).standard_normal((15, DIM)).astype(np.float32))


def test_the_flat_file_holds_the_renormalised_rows_written_in_slices(tmp_path, monkeypatch):
    """write_flat_vectors' slices change nothing: the file is faiss's own IndexFlat of the re-normalised rows."""
    vectors = _vectors(1000, 40)
    monkeypatch.setattr(sharding, "_WRITE_ROWS", 64)
    for metric, fourcc in (("ip", faiss.IndexFlatIP), ("l2", faiss.IndexFlatL2)):
        path = sharding.write_flat_vectors(ArrayVectorSource(vectors), tmp_path / f"{metric}.faiss", metric,
                                           batch_size=333)
        flat = faiss.read_index(str(path))
        assert isinstance(flat, fourcc) and flat.ntotal == 1000
        want = prefix(vectors, 40, metric)  # the whole array at once
        np.testing.assert_array_equal(faiss.rev_swig_ptr(flat.get_xb(), 1000 * 40).reshape(1000, 40), want)
        reference = faiss.IndexFlatIP(40) if metric == "ip" else faiss.IndexFlatL2(40)
        reference.add(want)
        faiss.write_index(reference, str(tmp_path / "reference.faiss"))
        assert path.read_bytes() == (tmp_path / "reference.faiss").read_bytes()
    bad = vectors.copy()
    bad[777, 3] = np.nan
    with pytest.raises(ValueError, match="first at row 777"):
        sharding.write_flat_vectors(ArrayVectorSource(bad), tmp_path / "bad.faiss", batch_size=333)
    assert not list(tmp_path.glob("*bad.faiss*"))  # the partial file is removed
    # a link where a staging file of this process used to be named, and a link at the destination: neither is
    # written through; the destination link is replaced by the file, its target untouched
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"keep")
    (tmp_path / f".linked.faiss.tmp-{os.getpid()}").symlink_to(outside)
    (tmp_path / "linked.faiss").symlink_to(outside)
    path = sharding.write_flat_vectors(ArrayVectorSource(vectors), tmp_path / "linked.faiss", batch_size=333)
    assert not path.is_symlink() and faiss.read_index(str(path)).ntotal == 1000
    assert outside.read_bytes() == b"keep" and (tmp_path / f".linked.faiss.tmp-{os.getpid()}").is_symlink()


def test_on_disk_build_holds_write_slices_of_full_rows_not_batches(tmp_path):
    """Traced (numpy) memory of the build: the stores (codes, lists, the list assignment), one batch of the
    leading columns and one write slice of full rows -- the writer used to hold the batch of full rows, its
    re-normalised copy and that copy's bytes at once."""
    n, dim, batch = 20_000, 96, 10_000
    vectors = _vectors(n, dim)
    np.save(tmp_path / "v.npy", vectors)
    config = AdANNSConfig(dim=dim, d_cluster=16, nlist=32, nprobe=4, pq_bytes=8, d_pq=16, scan="pq", d_rerank=dim,
                          rerank_k=50, train_size=2000, opq_iterations=5)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    tracemalloc.start()
    try:
        index = sharding.build_index_on_disk(mapped, config, tmp_path / "vectors.faiss", batch_size=batch,
                                             show_progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_batch = batch * dim * 4
    narrow_batch = batch * 16 * 4
    slice_bytes = sharding._WRITE_ROWS * dim * 9  # a slice as read, its re-normalised copy, its finiteness mask
    stores = index.storage.codes.nbytes + sum(a.nbytes for a in index.storage.ids.values()) + 4 * n
    assert peak < narrow_batch + slice_bytes + stores + (1 << 20), (peak, narrow_batch, slice_bytes, stores)
    assert peak < full_batch  # not even one batch of full rows at once


# ------------------------------------------------------------------------------------------- OPQ iterations
def test_opq_iterations_default_round_trip_and_checks():
    assert AdANNSConfig(dim=8).opq_iterations == 50 == faiss.OPQMatrix(8, 2).niter
    config = AdANNSConfig(dim=8, pq_bytes=2, opq_iterations=7)
    assert AdANNSConfig.from_dict(json.loads(json.dumps(config.to_dict()))).opq_iterations == 7
    older = config.to_dict()
    del older["opq_iterations"]  # a config saved before the setting existed
    assert AdANNSConfig.from_dict(older).opq_iterations == 50
    assert AdANNSConfig(dim=8, opq_iterations=np.int64(3)).opq_iterations == 3
    for bad in (0, -1, 2.5, "10", True, None):
        with pytest.raises(ValueError, match=r"opq_iterations must be an int >= 1 .*default 50\), got"):
            AdANNSConfig(dim=8, pq_bytes=2, opq_iterations=bad)


def test_opq_iterations_reach_faiss_and_change_the_rotation():
    """The stored rotation is faiss's OPQMatrix trained with niter = opq_iterations on the same sample
    (the index's training, repeated here step by step); 1 iteration gives another rotation than 8."""
    vectors = _vectors(1500, 32)
    cfg = dict(dim=32, d_cluster=8, nlist=8, nprobe=2, pq_bytes=4, d_pq=16, scan="pq", train_size=1500)
    rotations = {}
    for iterations in (1, 8):
        index = AdANNSIndex.build(vectors, AdANNSConfig(**cfg, opq_iterations=iterations), show_progress=False)
        opq = faiss.OPQMatrix(16, 4)
        opq.niter = iterations
        trainer = faiss.ProductQuantizer(16, 4, 8)
        trainer.cp.min_points_per_centroid = 1
        opq.pq = trainer
        opq.train(prefix(vectors, 16, "ip"))
        opq.pq = None
        want = faiss.vector_to_array(opq.A).reshape(16, 16)
        np.testing.assert_array_equal(index.storage.opq_rotation, want)
        rotations[iterations] = index.storage.opq_rotation
    assert not np.array_equal(rotations[1], rotations[8])


def test_cli_opq_iterations(tmp_path, capsys):
    from hf_ada.commands.index import build_index_cli

    data = tmp_path / "vectors.parquet"
    Dataset.from_dict({"embeddings": _vectors(400, 32).tolist()}).to_parquet(str(data))
    common = ["--dataset", str(data), "--nlist", "4", "--tune", "0"]
    with pytest.raises(SystemExit):
        build_index_cli([*common, "--pq-bytes", "4", "--opq-iterations", "0", "--output", str(tmp_path / "a")])
    assert "argument --opq-iterations: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--opq-iterations .* needs --pq-bytes"):
        build_index_cli([*common, "--opq-iterations", "5", "--output", str(tmp_path / "b")])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    out = build_index_cli([*common, "--pq-bytes", "4", "--opq-iterations", "3", "--output", str(tmp_path / "c")])
    assert AdANNSIndex.from_pretrained(out).config.opq_iterations == 3
