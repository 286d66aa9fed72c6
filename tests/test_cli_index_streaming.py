"""``hf-ada index build`` on a dataset saved with ``save_to_disk`` and on a folder of parquet shards: the rows
are streamed from the memory-mapped Arrow data in ``--batch-size`` batches (one pass, never the whole column
at once), a progress bar shows the rate and the ETA, and the saved index equals the index built from the
same rows given as one file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from datasets import Dataset

import hf_ada  # noqa: F401
from hf_ada.adanns import AdANNSIndex
from hf_ada.adanns.dataset import DatasetColumnSource

from adanns_reference import assert_same_index

torch.set_num_threads(1)

ROWS, DIM, BATCH = 420, 32, 64
#: fixed structure and plan (--tune 0): the build is deterministic, so the indexes can be compared exactly
SETTINGS = ["--d-cluster", "8", "--d-search", "16", "--nlist", "8", "--nprobe", "3", "--pq-bytes", "8",
            "--d-rerank", "32", "--rerank-k", "20", "--tune", "0", "--batch-size", str(BATCH)]
#: a tqdm bar at its end: ``AdANNS index: 100%|...| 420/420 [00:00<00:00, 1234.5vec/s]`` (elapsed<ETA, rate)
BAR = r"{desc}: 100%\|[^\n\r]*\| {n}/{n} \[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kM]?{unit}/s\]"


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """One faiss thread: OpenMP threads spinning on a shared 2-core machine cost more than they give here
    (conftest restores the count after each test)."""
    faiss.omp_set_num_threads(1)


def _rows() -> Dataset:
    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((ROWS, DIM)) * (1.0 + np.arange(DIM)) ** -0.5).astype(np.float32)
    texts = [f"package {i} provides {['network', 'audio', 'image', 'text'][i % 4]} tools, release {i * 7 % 13}"
             for i in range(ROWS)]
    return Dataset.from_dict({"id": list(range(ROWS)), "text": texts, "embeddings": vectors.tolist()})


def _inputs(tmp_path: Path, ds: Dataset) -> dict[str, Path]:
    """The same rows as one parquet file, as a save_to_disk folder and as a folder of three parquet shards."""
    ds.to_parquet(str(tmp_path / "one.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "shards").mkdir()
    cuts = [0, 100, 250, ROWS]
    for i in range(3):
        ds.select(range(cuts[i], cuts[i + 1])).to_parquet(str(tmp_path / "shards" / f"part-{i:05d}.parquet"))
    return {"file": tmp_path / "one.parquet", "save_to_disk": tmp_path / "saved", "parquet shards": tmp_path / "shards"}


def _record_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Wrap the dataset column reader to log every read: (kind, first row, rows)."""
    reads: list[tuple[str, int, int]] = []
    read, take = DatasetColumnSource.read, DatasetColumnSource.take

    def logged_read(self, start, end):
        reads.append(("read", start, end - start))
        return read(self, start, end)

    def logged_take(self, rows):
        reads.append(("take", int(rows[0]) if len(rows) else -1, len(rows)))
        return take(self, rows)

    monkeypatch.setattr(DatasetColumnSource, "read", logged_read)
    monkeypatch.setattr(DatasetColumnSource, "take", logged_take)
    return reads


def _assert_same_index(got: Path, want: Path) -> None:
    a, b = AdANNSIndex.from_pretrained(got), AdANNSIndex.from_pretrained(want)
    assert a.num_rows == ROWS and a.config.content_hash == b.config.content_hash
    assert_same_index(a, b, np.random.default_rng(1).standard_normal((12, DIM)).astype(np.float32), k=5)


def _build(kind: str, path: Path, out: Path, extra: list[str], capsys) -> tuple[Path, str]:
    from hf_ada.commands.index import build_index_cli

    saved = build_index_cli(["--dataset", str(path), "--output", str(out), *SETTINGS, *extra])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["rows"] == ROWS and Path(summary["saved"]) == saved, kind
    return saved, captured.err


def test_build_streams_a_vector_column_from_save_to_disk_and_parquet_shard_folders(tmp_path, capsys, monkeypatch):
    inputs = _inputs(tmp_path, _rows())
    built = {}
    for kind, path in inputs.items():
        reads = _record_reads(monkeypatch)
        built[kind], err = _build(kind, path, tmp_path / f"index-{kind.replace(' ', '-')}", [], capsys)
        # one training sample, then one pass over the rows in order, BATCH rows at a time
        assert [r for r in reads if r[0] == "take"] == [("take", reads[0][1], ROWS)], kind
        passes = [r for r in reads if r[0] == "read"]
        assert [r[1] for r in passes] == list(range(0, ROWS, BATCH)), kind
        assert max(r[2] for r in passes) == BATCH and sum(r[2] for r in passes) == ROWS, kind
        assert re.search(BAR.format(desc="AdANNS index", n=ROWS, unit="vec"), err), (kind, err[-500:])
        monkeypatch.undo()
    for kind in ("save_to_disk", "parquet shards"):
        _assert_same_index(built[kind], built["file"])


def test_build_embeds_a_text_column_of_save_to_disk_and_parquet_shard_folders(tiny_model_dir, tmp_path, capsys):
    inputs = _inputs(tmp_path, _rows().remove_columns("embeddings"))
    built = {}
    for kind, path in inputs.items():
        built[kind], err = _build(kind, path, tmp_path / f"index-{kind.replace(' ', '-')}",
                                  ["--text-column", "text", "--model", str(tiny_model_dir)], capsys)
        assert re.search(BAR.format(desc="Embedding 'text'", n=ROWS, unit="doc"), err), (kind, err[-500:])
        assert re.search(BAR.format(desc="AdANNS index", n=ROWS, unit="vec"), err), (kind, err[-500:])
        config = AdANNSIndex.from_pretrained(built[kind]).config
        assert config.extra["text_column"] == "text" and config.embedding_model == str(tiny_model_dir)
    for kind in ("save_to_disk", "parquet shards"):
        _assert_same_index(built[kind], built["file"])
        assert (AdANNSIndex.from_pretrained(built[kind]).config.extra["text_content_hash"]
                == AdANNSIndex.from_pretrained(built["file"]).config.extra["text_content_hash"])
    # the texts check of `index search` holds across layouts: built from shards, searched next to one file
    from hf_ada.commands.index import search_cli

    texts = _rows()["text"]
    results = search_cli(["--dataset", str(inputs["file"]), "--index", str(built["parquet shards"]), "--model",
                          str(tiny_model_dir), "--query", texts[11], "--k", "3", "--json"])
    assert results[0]["hits"][0]["row"] == 11


def test_text_hash_does_not_depend_on_how_the_rows_are_cut_into_arrow_chunks():
    """One chunk or several, with or without nulls: the same texts give the same hash (an index built from
    parquet shards is searched next to the same rows saved as one file); other texts give another. A single
    chunk hashes as it always did (indexes saved before keep their check)."""
    import hashlib

    import datasets
    import pyarrow as pa

    from hf_ada.adanns.dataset import text_content_hash

    texts = ["alpha", "", "gamma delta", None, "\u00e9t\u00e9", "z" * 40, "last"]

    def dataset(cuts: list[int]) -> datasets.Dataset:
        parts = [pa.array(texts[a:b], type=pa.string()) for a, b in zip(cuts, cuts[1:])]
        return datasets.Dataset(datasets.table.InMemoryTable(pa.table({"text": pa.chunked_array(parts)})))

    one = dataset([0, len(texts)])
    assert one.data.column("text").num_chunks == 1
    for cuts in ([0, 3, len(texts)], [0, 1, 4, 5, len(texts)], [0, 4, len(texts)]):
        several = dataset(cuts)
        assert several.data.column("text").num_chunks == len(cuts) - 1
        assert text_content_hash(several, "text") == text_content_hash(one, "text"), cuts
    # the single-chunk digest, transcribed from its definition: lengths, UTF-8 bytes, null flags
    encoded = [(t or "").encode() for t in texts]
    want = hashlib.sha256(f"{len(texts)}:text".encode())
    want.update(np.array([len(e) for e in encoded], dtype=np.int64).tobytes())
    want.update(b"".join(encoded))
    want.update(np.array([t is None for t in texts]).tobytes())
    assert text_content_hash(one, "text") == want.hexdigest()
    changed = texts[:2] + ["gamma delta!"] + texts[3:]
    other = datasets.Dataset(datasets.table.InMemoryTable(pa.table({"text": pa.array(changed)})))
    assert text_content_hash(other, "text") != text_content_hash(one, "text")


def test_on_disk_build_from_parquet_shards_equals_the_in_memory_build_and_serves_mapped(tmp_path, capsys):
    """--on-disk: the vectors go to a file next to the output (removed once saved), only the lists and codes
    stay in memory; the saved index equals the in-memory build with the same settings, and `index search
    --mmap` returns what the in-memory load returns."""
    from hf_ada.commands.index import search_cli

    inputs = _inputs(tmp_path, _rows())
    on_disk, err = _build("on disk", inputs["parquet shards"], tmp_path / "on-disk", ["--on-disk", "--d-pq", "16"],
                          capsys)  # SETTINGS: pq_bytes 8, d_rerank 32, --tune 0
    assert re.search(BAR.format(desc="vectors to disk", n=ROWS, unit="vec"), err), err[-500:]
    assert re.search(BAR.format(desc="AdANNS index", n=ROWS, unit="vec"), err), err[-500:]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no vector file left beside
    in_memory, _ = _build("in memory", inputs["file"], tmp_path / "in-memory", ["--d-pq", "16"], capsys)
    _assert_same_index(on_disk, in_memory)
    config = AdANNSIndex.from_pretrained(on_disk).config
    assert (config.scan, config.d_rerank, config.column) == ("pq", DIM, "embeddings")
    queries = tmp_path / "queries.npy"
    np.save(queries, np.asarray(_rows()["embeddings"][:4], dtype=np.float32))
    mapped = search_cli(["--dataset", str(inputs["save_to_disk"]), "--index", str(on_disk), "--query-vectors",
                         str(queries), "--k", "5", "--json", "--mmap"])
    loaded = search_cli(["--dataset", str(inputs["save_to_disk"]), "--index", str(on_disk), "--query-vectors",
                         str(queries), "--k", "5", "--json"])
    assert mapped == loaded and [r["hits"][0]["row"] for r in mapped] == [0, 1, 2, 3]


def test_on_disk_build_refuses_what_it_cannot_build_before_any_work(tmp_path, capsys):
    from hf_ada.commands.index import build_index_cli

    inputs = _inputs(tmp_path, _rows())
    base = ["--dataset", str(inputs["parquet shards"]), "--on-disk"]
    for extra, message in ((["--output", str(tmp_path / "a")], "--on-disk .* needs --pq-bytes"),
                           (["--pq-bytes", "8", "--tune", "16", "--output", str(tmp_path / "b")], "--tune 16 is not"),
                           (["--pq-bytes", "8", "--d-rerank", "0", "--output", str(tmp_path / "c")],
                            "--d-rerank must be in")):
        with pytest.raises(SystemExit, match=message):
            build_index_cli([*base, *extra])
    assert not any((tmp_path / name).exists() for name in "abc")


def test_build_reads_the_split_asked_for_from_split_named_shards_and_dataset_dicts(tmp_path, capsys):
    """A folder of split-named parquet shards (train-*.parquet, test-*.parquet) and a save_to_disk
    DatasetDict: --split picks the rows indexed (default train)."""
    from datasets import DatasetDict

    from hf_ada.adanns.dataset import column_content_hash
    from hf_ada.commands.index import build_index_cli

    ds = _rows().select_columns(["id", "embeddings"])
    train, test = ds.select(range(300)), ds.select(range(300, ROWS))
    (tmp_path / "named").mkdir()
    train.select(range(150)).to_parquet(str(tmp_path / "named" / "train-00000-of-00002.parquet"))
    train.select(range(150, 300)).to_parquet(str(tmp_path / "named" / "train-00001-of-00002.parquet"))
    test.to_parquet(str(tmp_path / "named" / "test-00000-of-00001.parquet"))
    DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dict"))
    flags = ["--nlist", "4", "--tune", "0"]
    for folder in ("named", "dict"):
        for split, want in ((None, train), ("test", test)):
            out = tmp_path / f"index-{folder}-{split}"
            build_index_cli(["--dataset", str(tmp_path / folder), "--output", str(out), *flags,
                             *(["--split", split] if split else [])])
            config = AdANNSIndex.from_pretrained(out).config
            assert config.num_rows == len(want), (folder, split)
            assert config.content_hash == column_content_hash(want.flatten_indices(), "embeddings"), (folder, split)
    capsys.readouterr()
    with pytest.raises(SystemExit, match="has no split 'validation'"):
        build_index_cli(["--dataset", str(tmp_path / "dict"), "--split", "validation", "--output", str(tmp_path / "x")])


def test_on_disk_build_embeds_a_text_column_first_and_searches_text_queries_mapped(tiny_model_dir, tmp_path, capsys):
    from hf_ada.commands.index import search_cli

    inputs = _inputs(tmp_path, _rows().remove_columns("embeddings"))
    out, err = _build("on disk", inputs["parquet shards"], tmp_path / "index",
                      ["--on-disk", "--text-column", "text", "--model", str(tiny_model_dir)], capsys)
    assert re.search(BAR.format(desc="Embedding 'text'", n=ROWS, unit="doc"), err), err[-500:]
    config = AdANNSIndex.from_pretrained(out).config
    assert config.extra["text_column"] == "text" and config.embedding_model == str(tiny_model_dir)
    texts = _rows()["text"]
    results = search_cli(["--dataset", str(inputs["save_to_disk"]), "--index", str(out), "--mmap", "--query",
                          texts[5], "--query", texts[300], "--k", "3", "--json"])
    assert [r["hits"][0]["row"] for r in results] == [5, 300]
