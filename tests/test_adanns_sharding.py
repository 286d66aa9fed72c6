"""Sharded embedding and index builds (hf_ada.adanns.sharding) under a real launcher: two "machines" (two
accelerate launchers on 127.0.0.1, an initialised gloo group) give the vectors of one process and the index of
one array; a rerun embeds only the shards not finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from datasets.distributed import split_dataset_by_node

import hf_ada  # noqa: F401
from hf_ada.adanns import AdANNSConfig, AdANNSIndex, embed
from hf_ada.adanns.sharding import ShardError, load_shards, map_shards, shard_bounds

from launchers import launch_two_machines, launcher_env

ASSETS = Path(__file__).parent / "assets"
SCRIPT = ASSETS / "sharded_embed_build.py"
sys.path.insert(0, str(ASSETS))
from sharded_embed_build import SETTINGS, TEXTS  # noqa: E402

torch.set_num_threads(1)


def _one_process_vectors(model_dir: Path) -> np.ndarray:
    ds = embed(Dataset.from_dict({"text": TEXTS}), str(model_dir), "text", batch_size=8, show_progress=False,
               distributed=False)
    return np.asarray(ds.with_format("numpy")["embeddings"])


def _index_from_array(vectors: np.ndarray) -> AdANNSIndex:
    settings = {k: v for k, v in SETTINGS.items() if k != "auto_tune"}
    return AdANNSIndex.build(vectors, AdANNSConfig(dim=vectors.shape[1], num_rows=len(vectors), **settings),
                             show_progress=False)


def _assert_same_index(saved: Path, vectors: np.ndarray) -> None:
    """The index built from the shards equals the index built in memory from one array of the same vectors."""
    got, want = AdANNSIndex.from_pretrained(saved), _index_from_array(vectors)
    assert got.num_rows == len(TEXTS)
    for dc in want.storage.centroids:
        np.testing.assert_array_equal(got.storage.centroids[dc], want.storage.centroids[dc])
        np.testing.assert_array_equal(got.storage.ids[dc], want.storage.ids[dc])
        np.testing.assert_array_equal(got.storage.offsets[dc], want.storage.offsets[dc])
    np.testing.assert_array_equal(got.storage.codes, want.storage.codes)
    np.testing.assert_array_equal(got.storage.vector_view(), want.storage.vector_view())
    queries = vectors[:10] + 0.01
    for a, b in zip(got.search_batch(queries, 5), want.search_batch(queries, 5)):
        np.testing.assert_array_equal(a, b)


def test_shard_bounds_are_split_dataset_by_node():
    ds = Dataset.from_dict({"x": list(range(23))})
    for num_shards in (1, 2, 3, 5, 23):
        bounds = shard_bounds(len(ds), num_shards)
        for i, (start, end) in enumerate(bounds):
            assert split_dataset_by_node(ds, rank=i, world_size=num_shards)["x"] == list(range(start, end))
        assert bounds[0][0] == 0 and bounds[-1][1] == 23


@pytest.mark.multiprocess
def test_two_machines_give_the_one_process_vectors_and_index(tiny_model_dir, tmp_path):
    """Two accelerate launchers (machine rank 0 and 1) on 127.0.0.1, each rank in an initialised gloo group (the
    ``torch.distributed`` path; the launcher's environment alone: test_a_rerun_embeds_only_the_shards_not_finished);
    three shards over the two ranks."""
    launch_two_machines(str(tiny_model_dir), str(tmp_path / "out"), str(tmp_path / "shards"), "--num-shards", "3",
                        "--init-group", script=SCRIPT, via_hf_ada_run=False)
    ranks = [json.loads((tmp_path / "out" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"], r["rows"]) for r in ranks] == [(0, 2, 288), (1, 2, 288)]
    assert ranks[1]["columns"] == ["text", "embeddings"]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "shard-00000", "shard-00000.done.json", "shard-00001", "shard-00001.done.json", "shard-00002",
        "shard-00002.done.json"]
    vectors = np.load(tmp_path / "out" / "vectors.npy")
    np.testing.assert_allclose(vectors, _one_process_vectors(tiny_model_dir), atol=1e-5)
    _assert_same_index(tmp_path / "out" / "index", vectors)


def test_a_rerun_embeds_only_the_shards_not_finished(tiny_model_dir, tmp_path, monkeypatch):
    """Rank 1 of 2 finishes its shard while rank 0 dies; the relaunch embeds shard 0 only. A shard whose
    file no longer matches its marker's checksum is embedded again, the valid ones are kept."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    ds, shards = Dataset.from_dict({"text": TEXTS}), tmp_path / "shards"
    n, calls = len(TEXTS), []
    encode = SentenceTransformer.encode
    monkeypatch.setattr(SentenceTransformer, "encode", lambda self, texts, **kw: calls.append(len(texts)) or
                        encode(self, texts, **kw))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    key = {"model": "tiny"}

    def encode_shard(shard):
        return embed(shard, model, "text", batch_size=8, show_progress=False, distributed=False
                     ).select_columns(["embeddings"])  # fmt: skip

    with pytest.raises(TimeoutError, match=r"shards \[0\]"):  # rank 0 never comes
        map_shards(ds, encode_shard, shards, key=key, timeout=0.2)
    assert sum(calls) == n // 2 and (shards / "shard-00001.done.json").is_file()
    marker_1 = (shards / "shard-00001.done.json").stat().st_mtime_ns
    # the relaunch: rank 1 finds its shard done and waits; rank 0 (here) embeds its own
    monkeypatch.setenv("RANK", "0")
    calls.clear()
    out = map_shards(ds, encode_shard, shards, key=key)
    assert sum(calls) == n // 2 and (shards / "shard-00001.done.json").stat().st_mtime_ns == marker_1
    one = _one_process_vectors(tiny_model_dir)
    np.testing.assert_allclose(np.asarray(out.with_format("numpy")["embeddings"]), one, atol=1e-5)
    assert out.column_names == ["embeddings"]
    # a corrupt shard file: refused on load, embedded again on a rerun; the intact shard is not touched
    arrow = next((shards / "shard-00000").glob("*.arrow"))
    data = bytearray(arrow.read_bytes())
    data[-100] ^= 0xFF
    arrow.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="checksums"):
        load_shards(shards)
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process now, still the two shards of the first launch
    calls.clear()
    out = map_shards(ds, encode_shard, shards, key=key, num_shards=2)
    assert sum(calls) == n // 2 and (shards / "shard-00001.done.json").stat().st_mtime_ns == marker_1
    np.testing.assert_allclose(np.asarray(out.with_format("numpy")["embeddings"]), one, atol=1e-5)
    assert len(load_shards(shards)) == n
    # other texts or another key: no marker matches, everything is done again
    calls.clear()
    map_shards(ds.map(lambda r: {"text": r["text"] + "!"}), encode_shard, shards, key=key, num_shards=2,
               content_hash=lambda shard: str(shard["text"]))
    assert sum(calls) == n
    calls.clear()
    map_shards(ds, encode_shard, shards, key={"model": "other"}, num_shards=2)
    assert sum(calls) == n


def test_embed_under_a_launcher_refuses_bad_combinations(tiny_model_dir, monkeypatch):
    ds = Dataset.from_dict({"text": TEXTS[:4]})
    with pytest.raises(ValueError, match="distributed=True needs a launcher"):
        embed(ds, str(tiny_model_dir), "text", distributed=True)
    with pytest.raises(ValueError, match="distributed must be None"):
        embed(ds, str(tiny_model_dir), "text", distributed="yes")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="devices and a multi-process launch"):
        embed(ds, str(tiny_model_dir), "text", devices=["cpu", "cpu"])
    with pytest.raises(ValueError, match="num_shards must be an int"):
        embed(ds, str(tiny_model_dir), "text", num_shards=5)
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="RANK=3"):
        embed(ds, str(tiny_model_dir), "text")
    assert os.environ["WORLD_SIZE"] == "2"


def test_index_built_on_disk_equals_the_in_memory_index_and_serves_mapped(tmp_path):
    """build_index_on_disk (vectors streamed to a file and memory-mapped) == AdANNSIndex.build in memory;
    saved and loaded with mmap=True it returns the in-memory results."""
    import faiss

    from hf_ada.adanns.sharding import build_index_on_disk

    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((2000, 48)) * (1.0 / np.sqrt(np.arange(1, 49)))).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    settings = dict(dim=48, d_cluster=16, nlist=16, nprobe=4, pq_bytes=8, d_pq=48, scan="pq", d_rerank=48,
                    rerank_k=50, train_size=1000)
    in_memory = AdANNSIndex.build(vectors, AdANNSConfig(**settings), show_progress=False)
    on_disk = build_index_on_disk(mapped, AdANNSConfig(**settings), tmp_path / "vectors.faiss", batch_size=700,
                                  show_progress=False)
    assert on_disk.config.store_vectors and on_disk.config.d_rerank == 48
    np.testing.assert_array_equal(on_disk.storage.codes, in_memory.storage.codes)
    np.testing.assert_array_equal(on_disk.storage.ids[16], in_memory.storage.ids[16])
    np.testing.assert_array_equal(on_disk.storage.vector_view(), in_memory.storage.vector_view())
    queries = rng.standard_normal((20, 48)).astype(np.float32)
    want = in_memory.search_batch(queries, 10)
    for got in (on_disk.search_batch(queries, 10),
                AdANNSIndex.from_pretrained(on_disk.save_pretrained(tmp_path / "saved"), mmap=True).search_batch(queries, 10)):
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    assert faiss.read_index(str(tmp_path / "vectors.faiss")).ntotal == 2000
    with pytest.raises(ValueError, match="needs pq_bytes"):
        build_index_on_disk(mapped, AdANNSConfig(dim=48), tmp_path / "x.faiss")


def test_open_rows_reads_save_to_disk_folders_and_parquet_shards(tmp_path):
    from hf_ada.adanns.sharding import open_rows

    rng = np.random.default_rng(0)
    ds = Dataset.from_dict({"id": list(range(90)), "embeddings": rng.standard_normal((90, 8)).astype(np.float32).tolist()})
    ds.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "parquet").mkdir()
    for i in range(3):
        ds.select(range(30 * i, 30 * i + 30)).to_parquet(str(tmp_path / "parquet" / f"part-{i:03d}.parquet"))
    for folder in ("saved", "parquet"):
        got = open_rows(tmp_path / folder)
        assert got["id"] == list(range(90)) and got.cache_files  # memory-mapped Arrow, in shard order
        np.testing.assert_allclose(np.asarray(got.with_format("numpy")["embeddings"]), np.asarray(ds["embeddings"]))
    with pytest.raises(ValueError, match="neither a save_to_disk dataset nor"):
        open_rows(tmp_path)
    with pytest.raises(ValueError, match="must be a folder"):
        open_rows(tmp_path / "parquet" / "part-000.parquet")


def test_a_folder_in_a_shards_way_that_this_code_did_not_write_is_refused_and_kept(tmp_path):
    from hf_ada.adanns.sharding import MARKER_SUFFIX, SHARD_FORMAT, _write_shard

    vectors = Dataset.from_dict({"v": [[1.0, 2.0]] * 3})
    foreign = tmp_path / SHARD_FORMAT.format(0)
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ShardError, match="not a shard this code wrote"):
        _write_shard(tmp_path, 0, {"rows": 3}, vectors)
    assert (foreign / "notes.txt").read_text() == "mine"
    # a file, a link or a link as the marker in a shard's way: refused and left, a link's target untouched
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    (tmp_path / SHARD_FORMAT.format(2)).write_text("mine")
    (tmp_path / SHARD_FORMAT.format(3)).symlink_to(outside)
    (tmp_path / (SHARD_FORMAT.format(4) + MARKER_SUFFIX)).symlink_to(outside)
    for i in (2, 3, 4):
        with pytest.raises(ShardError, match="not a shard this code wrote"):
            _write_shard(tmp_path, i, {"rows": 3}, vectors)
    assert (tmp_path / SHARD_FORMAT.format(2)).read_text() == "mine" and outside.read_text() == "keep"
    assert (tmp_path / SHARD_FORMAT.format(3)).is_symlink()
    assert (tmp_path / (SHARD_FORMAT.format(4) + MARKER_SUFFIX)).is_symlink()
    # another process's staging of the same shard (even one named with this process's id) is never touched
    staging = tmp_path / f".{SHARD_FORMAT.format(1)}.tmp-{os.getpid()}"
    staging.mkdir()
    (staging / "state.json").write_text("{}")
    # a stale shard of an earlier run (a save_to_disk folder without a marker) is replaced
    stale = tmp_path / SHARD_FORMAT.format(1)
    Dataset.from_dict({"v": [[0.0, 0.0]]}).save_to_disk(str(stale))
    _write_shard(tmp_path, 1, {"rows": 3}, vectors)
    assert Dataset.load_from_disk(str(stale))["v"] == vectors["v"]
    assert (staging / "state.json").read_text() == "{}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p != staging]  # ours moved, none left
