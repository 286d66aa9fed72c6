"""Round trips and failure handling of :mod:`hf_ada.common.hub` against the local Hub test double."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from hf_ada.common import hub
from hf_ada.common.artifact import ArtifactError, save_artifact
from hf_ada.common.hub import HubError, resolve_folder


KIND = "hub-test artifact"


def _make_artifact(folder: Path, seed: int = 0, dim: int = 8) -> Path:
    """A saved artifact: a small JSON config and a >1 MB safetensors file (LFS path)."""

    def write(staging: Path) -> dict:
        weights = np.random.default_rng(seed).standard_normal((400, 1000)).astype(np.float32)  # 1.6 MB
        save_file({"weights": weights}, str(staging / "model.safetensors"))
        return {"schema_version": 1, "dim": dim, "seed": seed}

    return save_artifact(folder, kind=KIND, config_name="config.json", write=write)


def push_folder(folder: Path, repo_id: str, **kwargs) -> str:
    return hub.push_folder(folder, repo_id, kind=KIND, config_name="config.json", **kwargs)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _assert_same_files(local: Path, downloaded: Path) -> None:
    expected = _digests(local)
    got = {name: digest for name, digest in _digests(downloaded).items() if name != ".gitattributes"}
    assert got == expected


def test_round_trip_regular_and_lfs_files(local_hub, tmp_path, empty_cache):
    folder = _make_artifact(tmp_path / "artifact")
    repo_id = local_hub.repo_id("round-trip")

    url = push_folder(folder, repo_id, commit_message="First upload of the artifact")

    assert repo_id in url
    stored = local_hub.server.repo(repo_id).resolve("main").files
    assert stored["model.safetensors"].lfs_sha256 == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert stored["config.json"].lfs_sha256 is None  # small JSON went inline (regular upload)
    assert local_hub.commit_titles(repo_id)[0] == "First upload of the artifact"

    downloaded = resolve_folder(repo_id, cache_dir=empty_cache)
    assert empty_cache in downloaded.parents
    _assert_same_files(folder, downloaded)
    np.testing.assert_array_equal(
        load_file(str(downloaded / "model.safetensors"))["weights"], load_file(str(folder / "model.safetensors"))["weights"]
    )


def test_dataset_repo_with_path_in_repo_and_branch(local_hub, tmp_path, empty_cache):
    folder = _make_artifact(tmp_path / "index", seed=1)
    repo_id = local_hub.repo_id("indexed-dataset")

    push_folder(folder, repo_id, repo_type="dataset", path_in_repo="adanns/emb", revision="v1")

    # the branch got the files, main did not
    assert "adanns/emb/config.json" in local_hub.files(repo_id, "dataset", revision="v1")
    assert "adanns/emb/config.json" not in local_hub.files(repo_id, "dataset", revision="main")
    downloaded = resolve_folder(repo_id, repo_type="dataset", subfolder="adanns/emb", revision="v1", cache_dir=empty_cache)
    assert downloaded.name == "emb"
    _assert_same_files(folder, downloaded)
    with pytest.raises(FileNotFoundError, match="adanns/emb"):
        resolve_folder(repo_id, repo_type="dataset", subfolder="adanns/emb", revision="main", cache_dir=empty_cache)


def test_private_repo_needs_a_token_to_read(local_hub, tmp_path, empty_cache):
    folder = _make_artifact(tmp_path / "secret")
    repo_id = local_hub.repo_id("private")
    push_folder(folder, repo_id, private=True)
    assert local_hub.server.repo(repo_id).private

    with pytest.raises(HubError, match=repo_id):
        resolve_folder(repo_id, token=False, cache_dir=empty_cache)  # unauthenticated
    _assert_same_files(folder, resolve_folder(repo_id, token=local_hub.read_token, cache_dir=empty_cache))


def test_server_down_raises_and_folder_is_pushable_afterwards(local_hub, tmp_path, empty_cache):
    folder = _make_artifact(tmp_path / "artifact")
    before = _digests(folder)
    repo_id = local_hub.repo_id("down")

    local_hub.set_down(True)
    with pytest.raises(HubError, match=r"(?s)intact.*push again"):
        push_folder(folder, repo_id)
    with pytest.raises(HubError, match=repo_id):
        resolve_folder(repo_id, cache_dir=empty_cache)
    local_hub.set_down(False)

    assert _digests(folder) == before
    push_folder(folder, repo_id)
    _assert_same_files(folder, resolve_folder(repo_id, cache_dir=empty_cache))


def test_server_error_on_commit_raises_and_nothing_is_committed(local_hub, tmp_path, empty_cache):
    folder = _make_artifact(tmp_path / "artifact")
    repo_id = local_hub.repo_id("commit-500")
    local_hub.fail_next(status=500, path_contains="/commit/")

    with pytest.raises(HubError, match="500"):
        push_folder(folder, repo_id, commit_message="will fail")

    assert local_hub.commit_titles(repo_id) == ["initial commit"]
    push_folder(folder, repo_id, commit_message="retry")
    assert local_hub.commit_titles(repo_id)[0] == "retry"
    _assert_same_files(folder, resolve_folder(repo_id, cache_dir=empty_cache))


@pytest.mark.parametrize("token_kind, status", [("invalid", "401"), ("read_only", "403")])
def test_bad_token_raises(local_hub, tmp_path, token_kind, status):
    folder = _make_artifact(tmp_path / "artifact")
    token = "hf_not_a_valid_token" if token_kind == "invalid" else local_hub.read_token
    repo_id = local_hub.repo_id(f"token-{token_kind}")

    with pytest.raises(HubError, match=status):
        push_folder(folder, repo_id, token=token)
    assert (tmp_path / "artifact" / "model.safetensors").is_file()


def test_write_to_an_existing_repo_with_a_read_only_token_raises(local_hub, tmp_path):
    folder = _make_artifact(tmp_path / "artifact")
    repo_id = local_hub.repo_id("existing")
    push_folder(folder, repo_id)
    _make_artifact(folder, dim=16)

    # create_repo(exist_ok=True) accepts the existing repo; the upload itself is refused.
    with pytest.raises(HubError, match="403"):
        push_folder(folder, repo_id, token=local_hub.read_token)
    assert json.loads(local_hub.files(repo_id)["config.json"])["dim"] == 8


def test_interrupted_lfs_upload_raises_then_push_again_succeeds(local_hub, tmp_path, empty_cache):
    folder = _make_artifact(tmp_path / "artifact")
    before = _digests(folder)
    repo_id = local_hub.repo_id("interrupted")
    # huggingface_hub retries a dropped upload 5 times: drop all 6 attempts, half-way through the body.
    local_hub.fail_next(count=6, status=None, path_contains="/__lfs__/", method="PUT")

    with pytest.raises(HubError, match="model.safetensors"):
        push_folder(folder, repo_id)

    assert local_hub.commit_titles(repo_id) == ["initial commit"]  # no half commit
    assert _digests(folder) == before
    push_folder(folder, repo_id)
    _assert_same_files(folder, resolve_folder(repo_id, cache_dir=empty_cache))


def test_transient_lfs_drop_is_retried_by_the_client(local_hub, tmp_path):
    folder = _make_artifact(tmp_path / "artifact")
    repo_id = local_hub.repo_id("transient")
    local_hub.fail_next(count=1, status=None, path_contains="/__lfs__/", method="PUT")

    push_folder(folder, repo_id)

    assert local_hub.files(repo_id)["model.safetensors"] == (folder / "model.safetensors").read_bytes()


def test_missing_revision_and_missing_folder_are_clear_errors(local_hub, tmp_path, empty_cache):
    repo_id = local_hub.repo_id("revisions")
    push_folder(_make_artifact(tmp_path / "artifact"), repo_id)
    with pytest.raises(HubError, match="no-such-branch"):
        resolve_folder(repo_id, revision="no-such-branch", cache_dir=empty_cache)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        push_folder(tmp_path / "nothing-here", repo_id)
    with pytest.raises(ValueError, match="repo_type"):
        push_folder(tmp_path / "artifact", repo_id, repo_type="bucket")


def test_create_pr_leaves_main_untouched(local_hub, tmp_path, empty_cache):
    folder = _make_artifact(tmp_path / "artifact")
    repo_id = local_hub.repo_id("pull-request")
    push_folder(folder, repo_id, commit_message="base")
    _make_artifact(folder, dim=32)

    url = push_folder(folder, repo_id, create_pr=True, commit_message="proposal")

    assert "/commit/" in url
    assert json.loads(local_hub.files(repo_id)["config.json"])["dim"] == 8
    assert json.loads(local_hub.files(repo_id, revision="refs/pr/1")["config.json"])["dim"] == 32
    downloaded = resolve_folder(repo_id, revision="refs/pr/1", cache_dir=empty_cache)
    assert json.loads((downloaded / "config.json").read_text())["dim"] == 32


# ------------------------------------------------------------------ a push publishes exactly the artifact
def _listed(local_hub, repo_id: str) -> set[str]:
    return {name for name in local_hub.files(repo_id) if name != ".gitattributes"}


def test_push_uploads_only_the_manifest_files(local_hub, tmp_path, empty_cache):
    from artifact_fixtures import Arrays, arrays, same

    folder = tmp_path / "run"
    arrays(0).save_pretrained(folder)
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    (folder / "notes.txt").write_text("mine")
    (folder / "checkpoint-500").mkdir()
    (folder / "checkpoint-500" / "optimizer.pt").write_bytes(b"state")
    repo_id = local_hub.repo_id("exact")
    url = hub.push_folder(folder, repo_id)  # the kind is found from the folder's config
    assert "/commit/" in url
    assert _listed(local_hub, repo_id) == {"config.json", "a.safetensors", "b.safetensors", "c.safetensors"}
    assert same(Arrays.from_pretrained(repo_id, cache_dir=empty_cache), arrays(0))
    other = local_hub.repo_id("save-push")
    url = arrays(1).save_pretrained(folder, push_to_hub=True, repo_id=other, commit_message="save and push")
    assert "/commit/" in url and local_hub.commit_titles(other)[0] == "save and push"
    assert _listed(local_hub, other) == {"config.json", "a.safetensors", "b.safetensors", "c.safetensors"}
    with pytest.raises(ArtifactError, match="no saved hf-ada artifact"):
        hub.push_folder(folder / "checkpoint-500", local_hub.repo_id("not-an-artifact"))


def test_push_refuses_a_changed_file_before_anything_is_sent(local_hub, tmp_path):
    from artifact_fixtures import arrays

    folder = tmp_path / "run"
    arrays(0).save_pretrained(folder)
    data = bytearray((folder / "b.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "b.safetensors").write_bytes(bytes(data))
    repo_id = local_hub.repo_id("changed")
    with pytest.raises(ArtifactError, match=r"b\.safetensors differs.*nothing was pushed"):
        hub.push_folder(folder, repo_id)
    with pytest.raises(Exception):
        local_hub.commit_titles(repo_id)  # not even created


@pytest.mark.parametrize("change", ["resave", "in_place", "resave_without_proc_fd"])
def test_folder_changed_mid_upload_never_mixes_saves(local_hub, tmp_path, empty_cache, monkeypatch, change, caplog):
    """The folder is re-saved (or a file rewritten in place) after the LFS upload and before the commit. Where
    files cannot be read through their open handles by path (no ``/proc/self/fd``), a re-save is refused."""
    import logging

    import huggingface_hub

    from artifact_fixtures import Arrays, arrays, same

    folder = tmp_path / "run"
    first, second = arrays(0, rows=40_000), arrays(1, names=("a", "b"), rows=40_000)  # 1.3 MB files: LFS
    first.save_pretrained(folder)
    real = huggingface_hub.preupload_lfs_files

    def preupload_then_change(*args, **kwargs):
        real(*args, **kwargs)
        if change.startswith("resave"):
            second.save_pretrained(folder)
        else:
            with open(folder / "a.safetensors", "r+b") as handle:
                handle.seek(-1, 2)
                handle.write(b"\0")

    monkeypatch.setattr(huggingface_hub, "preupload_lfs_files", preupload_then_change)
    repo_id = local_hub.repo_id(f"mid-upload-{change}")
    if change == "resave_without_proc_fd":
        real_isfile = os.path.isfile
        monkeypatch.setattr(os.path, "isfile", lambda p: not str(p).startswith("/proc/self/fd/") and real_isfile(p))
    if change != "resave":
        match = "modified in place" if change == "in_place" else "re-saved while it was being pushed"
        with pytest.raises(ArtifactError, match=f"{match}.*nothing was published"):
            hub.push_folder(folder, repo_id)
        assert local_hub.commit_titles(repo_id) == ["initial commit"]
        return
    with caplog.at_level(logging.WARNING, logger="hf_ada.common.folder"):
        hub.push_folder(folder, repo_id)
    assert "re-saved while it was being pushed" in caplog.text
    assert same(Arrays.from_pretrained(repo_id, cache_dir=empty_cache), first)  # the complete earlier save
    assert same(Arrays.from_pretrained(folder), second)


def test_push_options_are_checked(local_hub, tmp_path):
    folder = _make_artifact(tmp_path / "artifact")
    with pytest.raises(TypeError, match="unknown push option 'privat'"):
        push_folder(folder, local_hub.repo_id("options"), privat=True)
    with pytest.raises(TypeError, match="create_pr must be bool"):
        push_folder(folder, local_hub.repo_id("options"), create_pr="yes")
    with pytest.raises(ValueError, match="path_in_repo"):
        push_folder(folder, local_hub.repo_id("options"), path_in_repo="../elsewhere")
    with pytest.raises(ValueError, match="subfolder"):
        resolve_folder(str(folder), subfolder="../..")
