"""Hub round trip of an AdANNS index against the local Hub test double (``local_hub`` from conftest):
push -> download into an empty cache -> load -> identical results; failures leave everything reusable."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import faiss
import numpy as np
import pytest
from datasets import Dataset

import hf_ada  # noqa: F401
from hf_ada.common.artifact import ArtifactError
from hf_ada.common.hub import HubError

faiss.omp_set_num_threads(1)

D = 16


def _dataset(vectors: np.ndarray) -> Dataset:
    ds = Dataset.from_dict({"emb": vectors.tolist(), "i": list(range(len(vectors)))})
    return ds.cast_column("emb", datasets.List(datasets.Value("float32"), length=D))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The index is built (OPQ + IVF + PQ training) and tuned once per module and saved; each test then gets
    its own dataset with this index loaded (a save/load round trip gives exactly the built index)."""
    vectors = np.random.default_rng(3).standard_normal((600, D)).astype(np.float32)
    ds = _dataset(vectors)
    ds.add_adanns_index("emb", d_cluster=4, d_search=8, nlist=8, nprobe=3, pq_bytes=4, d_pq=8, d_rerank=D,
                        rerank_k=30, show_progress=False, embedding_model="tiny-matryoshka")
    ds.get_index("emb").tune(vectors[:20], [{i} for i in range(20)], grid=[{"nprobe": 1}, {"nprobe": 8}],
                             show_progress=False)
    folder = ds.save_adanns_index("emb", tmp_path_factory.mktemp("built") / "emb")
    copy = _dataset(vectors)
    copy.load_adanns_index("emb", folder)
    for a, b in zip(ds.search_batch("emb", vectors[:30], k=6), copy.search_batch("emb", vectors[:30], k=6)):
        np.testing.assert_array_equal(a, b)
    return folder, vectors


@pytest.fixture
def indexed(built) -> tuple[Dataset, np.ndarray]:
    """A fresh dataset of the 600 vectors with the module's built and tuned index attached as ``emb``."""
    folder, vectors = built
    ds = _dataset(vectors)
    ds.load_adanns_index("emb", folder)
    assert ds.get_index("emb").pareto_front
    return ds, vectors


def test_push_then_load_into_empty_cache_gives_identical_results(local_hub, indexed, empty_cache):
    ds, vectors = indexed
    repo_id = local_hub.repo_id("adanns-index")
    before = ds.search_batch("emb", vectors[:15], k=6)

    url = ds.push_adanns_index_to_hub("emb", repo_id, private=True, commit_message="Add the emb index")

    assert repo_id in url
    assert local_hub.commit_titles(repo_id, repo_type="dataset")[0] == "Add the emb index"
    files = local_hub.files(repo_id, repo_type="dataset")
    assert {"adanns/emb/config.json", "adanns/emb/vectors.faiss", "adanns/emb/lists.safetensors",
            "adanns/emb/tuning.json", "adanns/emb/README.md"} == {f for f in files if f.startswith("adanns/")}
    assert not any(name.endswith((".pkl", ".pickle", ".bin")) for name in files)
    card = files["adanns/emb/README.md"].decode()
    assert "tiny-matryoshka" in card and "d_cluster = 4, nlist = 8" in card and repo_id in card

    ds.drop_index("emb")
    ds.load_adanns_index("emb", repo_id, cache_dir=empty_cache)
    assert any(empty_cache.rglob("config.json"))  # really came from the download
    after = ds.search_batch("emb", vectors[:15], k=6)
    np.testing.assert_array_equal(before.total_indices, after.total_indices)
    np.testing.assert_array_equal(before.total_scores, after.total_scores)
    assert ds.get_index("emb").pareto_front  # the tuned front travelled with it


def test_revision_and_path_in_repo(local_hub, indexed, empty_cache):
    ds, vectors = indexed
    repo_id = local_hub.repo_id("adanns-branch")
    ds.push_adanns_index_to_hub("emb", repo_id, path_in_repo="indexes/v1", revision="v1")
    ds.drop_index("emb")
    with pytest.raises(FileNotFoundError, match="indexes/v1"):  # main has no such folder
        ds.load_adanns_index("emb", repo_id, subfolder="indexes/v1", revision="main", cache_dir=empty_cache)
    ds.load_adanns_index("emb", repo_id, subfolder="indexes/v1", revision="v1", cache_dir=empty_cache)
    assert ds.search("emb", vectors[0], k=1).indices[0] == 0


def test_pulled_index_is_checked_before_use(local_hub, indexed, empty_cache, tmp_path):
    ds, vectors = indexed
    repo_id = local_hub.repo_id("adanns-checked")
    ds.push_adanns_index_to_hub("emb", repo_id)
    # the same rows rebuilt elsewhere (another fingerprint) pass: the column's content hash matches
    elsewhere = Dataset.from_dict({"emb": vectors.tolist(), "i": list(range(600)), "extra": [0] * 600})
    elsewhere = elsewhere.cast_column("emb", datasets.List(datasets.Value("float32"), length=D))
    assert elsewhere._fingerprint != ds._fingerprint
    elsewhere.load_adanns_index("emb", repo_id, cache_dir=empty_cache)
    assert elsewhere.search("emb", vectors[7], k=1).indices[0] == 7
    other = Dataset.from_dict({"emb": np.zeros((500, D), np.float32).tolist()})
    with pytest.raises(ValueError, match="holds 600 rows but the dataset has 500"):
        other.load_adanns_index("emb", repo_id, cache_dir=empty_cache)
    # a newer schema on the Hub is refused, not half-used
    folder = tmp_path / "newer"
    ds.save_adanns_index("emb", folder)
    config = json.loads((folder / "config.json").read_text())
    config["schema_version"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    from hf_ada.common.hub import push_folder

    newer_repo = local_hub.repo_id("adanns-newer")
    push_folder(folder, newer_repo, repo_type="dataset", path_in_repo="adanns/emb")
    with pytest.raises(ValueError, match="schema_version 3"):
        ds.load_adanns_index("emb", newer_repo, cache_dir=empty_cache)


def test_failures_raise_clearly_and_leave_the_index_usable(local_hub, indexed, empty_cache):
    ds, vectors = indexed
    repo_id = local_hub.repo_id("adanns-fail")
    before = ds.search_batch("emb", vectors[:5], k=3)
    local_hub.set_down(True)
    with pytest.raises(HubError, match=repo_id):
        ds.push_adanns_index_to_hub("emb", repo_id)
    local_hub.set_down(False)
    local_hub.fail_next(count=10, status=500, path_contains="preupload")
    with pytest.raises(HubError):
        ds.push_adanns_index_to_hub("emb", repo_id)
    local_hub.reset()
    np.testing.assert_array_equal(ds.search_batch("emb", vectors[:5], k=3).total_indices, before.total_indices)
    ds.push_adanns_index_to_hub("emb", repo_id)  # the same index pushes fine once the server is back
    local_hub.set_down(True)
    with pytest.raises(HubError):
        ds.load_adanns_index("emb2", repo_id, subfolder="adanns/emb", cache_dir=empty_cache)
    local_hub.set_down(False)
    assert ds.list_indexes() == ["emb"]
    ds.load_adanns_index("emb2", repo_id, subfolder="adanns/emb", cache_dir=empty_cache)
    np.testing.assert_array_equal(ds.search_batch("emb2", vectors[:5], k=3).total_indices, before.total_indices)


def test_push_cli_uploads_a_checked_folder(local_hub, indexed, empty_cache, tmp_path):
    from hf_ada.commands.index import push_cli

    ds, vectors = indexed
    folder = ds.save_adanns_index("emb", tmp_path / "emb")
    repo_id = local_hub.repo_id("adanns-cli")
    push_cli([str(folder), repo_id, "--token", local_hub.token, "--commit-message", "cli push"])
    assert local_hub.commit_titles(repo_id, repo_type="dataset")[0] == "cli push"
    ds.load_adanns_index("again", repo_id, subfolder="adanns/emb", cache_dir=empty_cache)
    np.testing.assert_array_equal(ds.search_batch("again", vectors[:4], k=3).total_indices,
                                  ds.search_batch("emb", vectors[:4], k=3).total_indices)
    (folder / "lists.safetensors").unlink()
    with pytest.raises(ArtifactError, match="lists.safetensors is missing"):  # refused before any upload
        push_cli([str(folder), local_hub.repo_id("adanns-cli-bad")])


def test_index_names_are_checked_before_they_become_paths(local_hub, indexed, tmp_path):
    ds, _ = indexed
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    for bad in ("../victim", "a/b", "..", ""):
        with pytest.raises(ValueError, match="is not allowed"):
            ds.push_adanns_index_to_hub(bad, local_hub.repo_id("adanns-bad-name"))
        with pytest.raises(ValueError, match="is not allowed"):
            ds.load_adanns_index(bad, local_hub.repo_id("adanns-bad-name"))
    assert (victim / "notes.txt").read_text() == "mine"


def test_every_push_publishes_exactly_the_index(local_hub, indexed, tmp_path):
    """A token, notes and a checkpoint beside a saved index: the CLI push, ``save_pretrained(push_to_hub=True)``
    and ``push_to_hub`` upload the index's own files and its card, nothing else."""
    from hf_ada.commands.index import push_cli

    ds, _ = indexed
    folder = ds.save_adanns_index("emb", tmp_path / "emb")
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    (folder / "notes.txt").write_text("mine")
    (folder / "checkpoint-500").mkdir()
    (folder / "checkpoint-500" / "model.safetensors").write_bytes(b"weights")
    index_files = {"config.json", "vectors.faiss", "lists.safetensors", "tuning.json", "README.md"}
    repo_id = local_hub.repo_id("adanns-exact")
    push_cli([str(folder), repo_id, "--token", local_hub.token])
    assert {f for f in local_hub.files(repo_id, "dataset") if f != ".gitattributes"} == {
        f"adanns/emb/{name}" for name in index_files}
    index = ds.get_index("emb")
    url = index.save_pretrained(folder, push_to_hub=True, repo_id=local_hub.repo_id("adanns-save-push"))
    assert "/commit/" in url and (folder / ".env").is_file() and (folder / "notes.txt").read_text() == "mine"
    pushed = local_hub.files(url.split("/datasets/")[1].split("/commit/")[0], "dataset")
    assert set(pushed) - {".gitattributes"} == index_files


def _sign(folder, name: str, data: bytes) -> None:
    """Write ``folder/name`` and record it in the index's manifest, as a hand-edited (re-signed) folder would."""
    import hashlib

    (folder / name).write_bytes(data)
    config = json.loads((folder / "config.json").read_text())
    config["hf_ada_artifact"]["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "config.json").write_text(json.dumps(config))


def test_deeply_nested_index_json_is_a_clear_error(indexed, tmp_path):
    """A re-signed index whose tuning.json / config.json nest 50,000 levels deep: ArtifactError, not RecursionError."""
    from hf_ada.adanns.index import AdANNSIndex

    ds, _ = indexed
    folder = ds.save_adanns_index("emb", tmp_path / "deep")
    deep = "[" * 50_000 + "]" * 50_000
    _sign(folder, "tuning.json", deep.encode())
    with pytest.raises(ArtifactError, match="tuning.json is nested deeper"):
        AdANNSIndex.from_pretrained(folder)
    config = (folder / "config.json").read_text().rstrip()
    (folder / "config.json").write_text(config[:-1] + ', "extra_deep": ' + deep + "}")
    with pytest.raises(ArtifactError, match="nested deeper"):
        AdANNSIndex.from_pretrained(folder)


def test_index_manifest_claims_only_index_files(indexed, tmp_path):
    """A hand-edited config.json claiming the user's notes.txt (with its true size and SHA-256): the load refuses
    it and a re-save leaves the file alone, because it is not a file an index writes."""
    from hf_ada.adanns.index import AdANNSIndex

    ds, _ = indexed
    folder = ds.save_adanns_index("emb", tmp_path / "claimed")
    _sign(folder, "notes.txt", b"my notes")
    with pytest.raises(ArtifactError, match="notes.txt"):
        AdANNSIndex.from_pretrained(folder)
    ds.save_adanns_index("emb", folder)
    assert (folder / "notes.txt").read_bytes() == b"my notes"
    AdANNSIndex.from_pretrained(folder)
