"""``hf_ada.adanns.embed`` with a real (tiny) SentenceTransformer, the Matryoshka head / loss, the training
script with ``--optim adan``, and the CLI build -> search round trip."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from datasets import Dataset

import hf_ada  # noqa: F401
from hf_ada.adanns import embed
from hf_ada.adanns.matryoshka import apply_head, attach_head, matryoshka_infonce_loss, train_linear_head

torch.set_num_threads(1)

TEXTS = [f"package {w} provides {v} tools for {u}" for w, v, u in
         zip("abcdefghijklmnopqrstuvwx", ["network", "audio", "image", "text"] * 6, ["admins", "users", "devs"] * 8)]


def test_embed_stores_full_dim_vectors_once(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    model.truncate_dim = 8  # must be ignored: every Matryoshka prefix stays available
    ds = Dataset.from_dict({"text": TEXTS})
    out = embed(ds, model, "text", batch_size=8, dtype="float16", model_name="tiny-st", model_revision="abc123")
    assert out.features["embeddings"] == datasets.List(datasets.Value("float16"), length=32)
    model.truncate_dim = None
    expected = model.encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(np.array(out["embeddings"], dtype=np.float32), expected, atol=2e-3)
    out.add_adanns_index("embeddings", d_cluster=8, d_search=16, nlist=2, nprobe=2, show_progress=False)
    config = out.get_index("embeddings").config
    assert (config.embedding_model, config.embedding_model_revision) == ("tiny-st", "abc123")
    _, examples = out.get_nearest_examples("embeddings", expected[5], k=1)
    assert examples["text"] == [TEXTS[5]]
    with pytest.raises(ValueError, match="dtype must be one of"):
        embed(ds, model, "text", dtype="int8")
    with pytest.raises(ValueError, match="text_column 'body'"):
        embed(ds, model, "body")


@pytest.mark.multiprocess
def test_embed_over_two_worker_processes_equals_one_process(tiny_model_dir, monkeypatch):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    texts = TEXTS * 3  # 72 rows: several chunks of 8 shared by the two workers, in length order
    ds = Dataset.from_dict({"text": texts})
    one = embed(ds, model, "text", batch_size=8, show_progress=False)
    pools, start = [], SentenceTransformer.start_multi_process_pool
    monkeypatch.setattr(SentenceTransformer, "start_multi_process_pool",
                        lambda self, devices: pools.append(start(self, devices)) or pools[-1])
    two = embed(ds, model, "text", batch_size=8, show_progress=False, devices=["cpu", "cpu"])
    assert len(pools) == 1 and len(pools[0]["processes"]) == 2
    for process in pools[0]["processes"]:  # stopped when done: close() refuses a process still running
        with pytest.raises(ValueError, match="closed"):
            process.is_alive()
    np.testing.assert_allclose(np.array(two["embeddings"]), np.array(one["embeddings"]), atol=1e-5)
    np.testing.assert_allclose(np.array(two["embeddings"]), model.encode(texts, convert_to_numpy=True), atol=1e-5)
    for bad in ("cuda:0", ["cpu"], ["cpu", ""]):
        with pytest.raises(ValueError, match="devices must be a list of at least two"):
            embed(ds, model, "text", devices=bad)


def test_matryoshka_loss_matches_a_literal_transcription():
    rng = np.random.default_rng(0)
    a, p = rng.standard_normal((6, 12)), rng.standard_normal((6, 12))
    ref = 0.0
    for d in (4, 12):
        an = a[:, :d] / np.linalg.norm(a[:, :d], axis=1, keepdims=True)
        pn = p[:, :d] / np.linalg.norm(p[:, :d], axis=1, keepdims=True)
        logits = an @ pn.T / 0.1
        log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        ref += -np.mean(np.diag(log_softmax))
    got = matryoshka_infonce_loss(torch.tensor(a), torch.tensor(p), [4, 12], temperature=0.1)
    assert float(got) == pytest.approx(ref / 2, rel=1e-6)


def test_linear_head_improves_short_prefix_and_attaches(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((16, 16)))[0]
    latent = rng.standard_normal((600, 16)) * np.r_[np.full(12, 0.05), np.full(4, 3.0)]  # information at the END
    anchors = (latent @ basis).astype(np.float32)
    positives = (anchors + 0.1 * rng.standard_normal(anchors.shape)).astype(np.float32)

    def top1(a, p, d):
        an = a[:, :d] / np.linalg.norm(a[:, :d], axis=1, keepdims=True)
        pn = p[:, :d] / np.linalg.norm(p[:, :d], axis=1, keepdims=True)
        return float(np.mean(np.argmax(an @ pn.T, axis=1) == np.arange(len(a))))

    head = train_linear_head(anchors[:500], positives[:500], [3, 4, 16], epochs=30, batch_size=100, lr=1e-2,
                             validation_fraction=0.0, show_progress=False)
    before = top1(anchors[500:], positives[500:], 3)
    after = top1(apply_head(head, anchors[500:]), apply_head(head, positives[500:]), 3)
    assert after > before + 0.1  # measured: 0.76 -> 0.92 (top-1 of 100 on a 3-dim prefix)
    # the default holds 10% out and keeps the epoch with the best validation loss (measured: 0.86)
    stopped = train_linear_head(anchors[:500], positives[:500], [3, 4, 16], batch_size=100, show_progress=False)
    assert top1(apply_head(stopped, anchors[500:]), apply_head(stopped, positives[500:]), 3) > before + 0.05
    model = attach_head(SentenceTransformer(str(tiny_model_dir), device="cpu"), torch.nn.Linear(32, 32, bias=False))
    assert model.get_embedding_dimension() == 32
    with pytest.raises(ValueError, match="optimizer must be"):
        train_linear_head(anchors, positives, [4], optimizer="sgd")


def test_train_script_with_adan(tiny_model_dir, tmp_path):
    from hf_ada.scripts import train_matryoshka
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"q": t.split(" provides")[0], "d": t}) + "\n" for t in TEXTS))
    out = train_matryoshka.main([
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(pairs), "--anchor_column", "q",
        "--positive_column", "d", "--matryoshka_dims", "32,16,8", "--output_dir", str(tmp_path / "out"),
        "--optim", "adan", "--learning_rate", "1e-3", "--max_steps", "3", "--per_device_train_batch_size", "8",
        "--report_to", "none", "--save_strategy", "no", "--use_cpu", "true", "--head_only", "true",
    ])
    from sentence_transformers import SentenceTransformer

    trained = SentenceTransformer(out, device="cpu")
    assert trained.get_embedding_dimension() == 32
    dense = trained[-1].linear.weight.detach().numpy()
    assert not np.allclose(dense, np.eye(32))  # Adan moved the head
    original = SentenceTransformer(str(tiny_model_dir), device="cpu")
    for name, value in original[0].auto_model.state_dict().items():  # head_only froze the transformer
        torch.testing.assert_close(trained[0].auto_model.state_dict()[name], value)


def test_cli_build_then_search(tiny_model_dir, tmp_path, capsys):
    from hf_ada.commands.index import build_index_cli, search_cli

    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXTS)))
    out = build_index_cli(["--dataset", str(data), "--text-column", "text", "--model", str(tiny_model_dir),
                           "--d-cluster", "8", "--d-search", "32", "--nlist", "2", "--nprobe", "2",
                           "--output", str(tmp_path / "index")])  # worker pools: the test above (embed(devices=))
    assert (out / "config.json").is_file()
    capsys.readouterr()
    # the dataset has no vector column: only the query is embedded, the texts are checked against the index
    results = search_cli(["--dataset", str(data), "--index", str(out), "--model", str(tiny_model_dir),
                          "--query", TEXTS[7], "--k", "3", "--show-column", "text"])
    assert results[0]["hits"][0]["text"] == TEXTS[7] and results[0]["hits"][0]["rank"] == 1
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"query: {TEXTS[7]}" and table[1].split() == ["rank", "score", "row", "text"]
    assert table[3].split()[0] == "1" and table[3].split()[2] == "7" and TEXTS[7] in table[3]
    search_cli(["--dataset", str(data), "--index", str(out), "--model", str(tiny_model_dir), "--query", TEXTS[3],
                "--k", "2", "--json", "--show-column", "id"])
    line = json.loads(capsys.readouterr().out.strip())
    assert line["query"] == TEXTS[3] and line["hits"][0]["id"] == 3 and len(line["hits"]) == 2
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"text": t + "!"}) + "\n" for t in TEXTS))
    with pytest.raises(SystemExit, match="differs from the texts the index was built on"):
        search_cli(["--dataset", str(other), "--index", str(out), "--model", str(tiny_model_dir), "--query", "x"])


def test_cli_build_tunes_unless_the_search_settings_are_given(tmp_path, capsys):
    """Like add_adanns_index: no search flags -> the plan is measured and chosen; explicit flags are kept."""
    from hf_ada.commands.index import build_index_cli

    vectors = np.random.default_rng(0).standard_normal((300, 32)).astype(np.float32)
    data = tmp_path / "vectors.parquet"
    Dataset.from_dict({"embeddings": vectors.tolist()}).to_parquet(str(data))
    build_index_cli(["--dataset", str(data), "--output", str(tmp_path / "tuned")])
    tuned = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "exact flat search" in tuned["reason"]
    build_index_cli(["--dataset", str(data), "--nprobe", "2", "--output", str(tmp_path / "fixed")])
    fixed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fixed["reason"].startswith("not tuned") and "nprobe=2" in fixed["plan"]
    build_index_cli(["--dataset", str(data), "--tune", "0", "--output", str(tmp_path / "off")])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reason"].startswith("not tuned")


def test_cli_build_checks_the_output_before_the_work(tmp_path):
    from hf_ada.commands.index import build_index_cli

    data = tmp_path / "ds"
    Dataset.from_dict({"text": TEXTS}).save_to_disk(str(data))
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(SystemExit, match="is the input"):
        build_index_cli(["--dataset", str(data), "--text-column", "text", "--output", str(data)])
    with pytest.raises(SystemExit, match="is the input"):
        build_index_cli(["--dataset", str(data), "--text-column", "text", "--output", str(data / "idx")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match="is a file"):
        build_index_cli(["--dataset", str(data), "--text-column", "text", "--output", str(tmp_path / "file")])
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(SystemExit, match="not an AdANNS index"):
        build_index_cli(["--dataset", str(data), "--text-column", "text", "--output", str(tmp_path / "model")])
    with pytest.raises(SystemExit, match="--name '../x' is not allowed"):
        build_index_cli(["--dataset", str(data), "--text-column", "text", "--output", str(tmp_path / "o"),
                         "--name", "../x"])
    with pytest.raises(SystemExit, match="--embed-devices takes two or more"):
        build_index_cli(["--dataset", str(data), "--text-column", "text", "--output", str(tmp_path / "o"),
                         "--embed-devices", "cpu"])
    assert sorted(p.name for p in data.iterdir()) == before


def test_every_index_cli_flag_has_help(capsys):
    from hf_ada.commands import index as cli

    for entry in (cli.build_index_cli, cli.search_cli, cli.push_cli):
        with pytest.raises(SystemExit) as exit_info:
            entry(["--help"])
        assert exit_info.value.code == 0
    captured = capsys.readouterr().out
    assert "--d-cluster" in captured and "default: ~dim/6" in captured and "--json" in captured
    for parser in (cli.build_parser(), cli.search_parser(), cli.push_parser()):
        missing = [a.option_strings or a.dest for a in parser._actions if not a.help and a.dest != "help"]
        assert not missing, f"{parser.prog}: flags without help text {missing}"


def test_provenance_travels_with_the_data(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    from hf_ada.adanns.dataset import embedding_provenance

    out = embed(Dataset.from_dict({"text": TEXTS}), SentenceTransformer(str(tiny_model_dir), device="cpu"), "text",
                model_name="tiny-st", model_revision="r1", show_progress=False)
    out.save_to_disk(str(tmp_path / "ds"))
    reloaded = datasets.load_from_disk(str(tmp_path / "ds")).map(lambda row: {"n": len(row["text"])})
    assert embedding_provenance(reloaded, "embeddings") == ("tiny-st", "r1")  # no process-global state involved
    assert embedding_provenance(reloaded, "text") == (None, None)
    reloaded.add_adanns_index("embeddings", d_cluster=8, d_search=16, nlist=2, nprobe=2, show_progress=False)
    assert reloaded.get_index("embeddings").config.embedding_model == "tiny-st"


def test_default_model_and_progress_switch(capfd):
    from hf_ada.adanns.dataset import embedding_provenance

    ds = Dataset.from_dict({"text": TEXTS[:6]})
    quiet = embed(ds, show_progress=False)  # the packaged all-MiniLM-L6-v2, column "text"
    assert quiet.features["embeddings"].length == 384
    assert "all-MiniLM-L6-v2" in embedding_provenance(quiet, "embeddings")[0]
    assert "Embedding" not in capfd.readouterr().err
    embed(ds, batch_size=2)
    err = capfd.readouterr().err
    assert "Embedding 'text'" in err and "6/6" in err and "doc/s" in err
