"""Untrusted artifact folders (issue: trust at the folder's edge): nothing outside the folder is ever read, written
or deleted; an old manifest is a claim, not an order; JSON from a folder is bounded.

Every case builds the hostile folder from real files, links and FIFOs, then checks what a plain load or save
does to it and to the files outside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import pytest
from huggingface_hub import upload_folder

from hf_ada.common import folder as artifact_module
from hf_ada.common.artifact import ArtifactError
from hf_ada.common.folder import recover
from hf_ada.common.files import JsonLimitError, loads_json, read_json
from hf_ada.common.hub import resolve_folder
from hf_ada.common.paths import hub_cache_root

from artifact_fixtures import Arrays, arrays, same

STAGING = ".hf-ada-staging-test-arrays"


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry below ``root``: file bytes, or the target of a link (never followed)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = "dir"
    return out


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """Files outside the artifact folder that a hostile folder tries to reach."""
    outside = tmp_path / "home"
    (outside / "docs").mkdir(parents=True)
    (outside / "docs" / "thesis.txt").write_text("years of work")
    (outside / "README.md").write_text("my readme")
    return outside


def _saved(tmp_path: Path, seed: int = 0) -> Path:
    folder = tmp_path / "artifact"
    arrays(seed).save_pretrained(folder)
    return folder


# ------------------------------------------------------------------ 1. links out of the folder
@pytest.mark.parametrize("action", ["load", "save"])
def test_staging_symlink_is_refused_and_its_target_untouched(tmp_path, victim, action):
    folder = _saved(tmp_path)
    (folder / STAGING).symlink_to(victim, target_is_directory=True)
    before = _snapshot(victim)
    with pytest.raises(ArtifactError, match="symbolic link.*left in place"):
        if action == "load":
            Arrays.from_pretrained(folder)
        else:
            arrays(1).save_pretrained(folder)
    assert _snapshot(victim) == before
    assert (folder / STAGING).is_symlink()  # left in place
    (folder / STAGING).unlink()  # once the user removed the link, the folder loads as saved
    assert same(Arrays.from_pretrained(folder), arrays(0))


def test_staging_that_is_a_file_is_refused(tmp_path):
    folder = _saved(tmp_path)
    (folder / STAGING).write_text("not a folder")
    with pytest.raises(ArtifactError, match="not a folder"):
        Arrays.from_pretrained(folder)
    assert (folder / STAGING).read_text() == "not a folder"


def test_commit_marker_through_a_symlinked_subfolder_is_refused(tmp_path, victim):
    folder = _saved(tmp_path)
    (folder / "sub").symlink_to(victim / "docs", target_is_directory=True)
    staging = folder / STAGING
    (staging / "sub").mkdir(parents=True)
    (staging / "sub" / "thesis.txt").write_text("overwritten")
    thesis = (victim / "docs" / "thesis.txt").read_bytes()
    marker = {"version": 2, "config": "config.json",
              "files": {"sub/thesis.txt": None, "config.json": None},
              "remove": {"sub/thesis.txt": {"size": len(thesis), "sha256": hashlib.sha256(thesis).hexdigest()}}}
    (staging / ".commit.json").write_text(json.dumps(marker))
    before = _snapshot(victim)
    with pytest.raises(ArtifactError, match="symbolic link|not a file"):
        Arrays.from_pretrained(folder)
    assert _snapshot(victim) == before
    assert (staging / ".commit.json").is_file()  # left in place


@pytest.mark.parametrize("name", ["../home/README.md", "/etc/hostname", ".bashrc", "a/../../x", "notes.txt"])
def test_commit_marker_naming_foreign_files_is_refused(tmp_path, victim, name):
    folder = _saved(tmp_path)
    (folder / "notes.txt").write_text("mine")
    staging = folder / STAGING
    staging.mkdir()
    (staging / ".commit.json").write_text(json.dumps(
        {"version": 2, "config": "config.json", "files": {"config.json": None},
         "remove": {name: {"size": 4, "sha256": hashlib.sha256(b"mine").hexdigest()}}}))
    before = _snapshot(victim)
    try:
        Arrays.from_pretrained(folder)
    except ArtifactError:
        pass
    assert (folder / "notes.txt").read_text() == "mine"  # not a name this artifact writes
    assert _snapshot(victim) == before


def test_unfinished_staging_with_links_or_fifos_is_refused_not_emptied(tmp_path, victim):
    folder = _saved(tmp_path)
    staging = folder / STAGING
    staging.mkdir()
    (staging / "a.safetensors").write_bytes(b"partial")
    (staging / "escape").symlink_to(victim, target_is_directory=True)
    with pytest.raises(ArtifactError, match="symbolic link"):
        Arrays.from_pretrained(folder)
    assert (staging / "a.safetensors").exists() and (staging / "escape").is_symlink()
    assert (victim / "docs" / "thesis.txt").read_text() == "years of work"
    (staging / "escape").unlink()
    os.mkfifo(staging / "pipe")
    with pytest.raises(ArtifactError, match="not a regular file"):
        recover(folder, "test-arrays")
    (staging / "pipe").unlink()
    assert same(Arrays.from_pretrained(folder), arrays(0))  # the plain leftover is cleaned up
    assert not staging.exists()


@pytest.mark.parametrize("how", ["file_is_link", "parent_is_link", "outside_name"])
def test_manifest_names_never_lead_outside(tmp_path, victim, how):
    folder = _saved(tmp_path)
    payload = json.loads((folder / "config.json").read_text())
    files = payload["hf_ada_artifact"]["files"]
    if how == "file_is_link":  # the right bytes, but behind a link out of the folder
        (victim / "a.safetensors").write_bytes((folder / "a.safetensors").read_bytes())
        (folder / "a.safetensors").unlink()
        (folder / "a.safetensors").symlink_to(victim / "a.safetensors")
    elif how == "parent_is_link":
        (folder / "extra").symlink_to(victim / "docs", target_is_directory=True)
        data = (victim / "docs" / "thesis.txt").read_bytes()
        files["extra/thesis.json"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    else:
        files["../home/README.md"] = {"size": 9, "sha256": hashlib.sha256(b"my readme").hexdigest()}
    (folder / "config.json").write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="symbolic link|outside|not a file|not allowed|not a file an"):
        Arrays.from_pretrained(folder)


@pytest.mark.parametrize("entry", ["link", "dir", "fifo"])
def test_lock_file_that_is_no_plain_file_is_refused(tmp_path, victim, entry):
    folder = _saved(tmp_path)
    lock = folder / ".hf-ada.lock"
    if entry == "link":
        lock.symlink_to(victim / "README.md")
    elif entry == "dir":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    for action in (lambda: Arrays.from_pretrained(folder), lambda: arrays(1).save_pretrained(folder),
                   lambda: hub_push(folder)):
        with pytest.raises(ArtifactError, match="symbolic link|not a regular file"):
            action()
    assert (victim / "README.md").read_text() == "my readme"  # never truncated through the link
    assert os.path.lexists(lock)  # left in place


def hub_push(folder: Path) -> None:
    from hf_ada.common.hub import push_folder

    push_folder(folder, "user/never-reached")


def test_hub_cache_snapshot_is_read_only(local_hub, tmp_path, empty_cache):
    """A Hub repo carrying a hidden staging folder whose marker removes README.md: the load ignores it, the
    cache is not modified, and a save into the cache is refused."""
    hostile = tmp_path / "hostile"
    arrays(0).save_pretrained(hostile)
    (hostile / "README.md").write_text("card")
    staging = hostile / STAGING
    staging.mkdir()
    (staging / ".commit.json").write_text(json.dumps(
        {"files": ["config.json"], "remove": ["README.md", "a.safetensors"]}))
    repo_id = local_hub.repo_id("hostile")
    from huggingface_hub import create_repo

    create_repo(repo_id)
    upload_folder(repo_id=repo_id, folder_path=str(hostile))
    loaded = Arrays.from_pretrained(repo_id, cache_dir=empty_cache)
    assert same(loaded, arrays(0))
    snapshot = resolve_folder(repo_id, cache_dir=empty_cache, local_files_only=True)
    assert hub_cache_root(snapshot) is not None
    assert (snapshot / "README.md").read_text() == "card" and (snapshot / STAGING / ".commit.json").exists()
    assert not (snapshot / ".hf-ada.lock").exists()
    before = _snapshot(empty_cache)
    Arrays.from_pretrained(snapshot)  # the local path of the snapshot is recognised too
    with pytest.raises(ValueError, match="Hub cache"):
        arrays(1).save_pretrained(snapshot)
    assert _snapshot(empty_cache) == before


def test_saving_over_a_linked_destination_is_refused(tmp_path, victim):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "a.safetensors").symlink_to(victim / "README.md")
    with pytest.raises((FileExistsError, ArtifactError)):
        arrays(0).save_pretrained(folder)
    assert (victim / "README.md").read_text() == "my readme"
    assert not (folder / "config.json").exists()


# ------------------------------------------------------------------ 2. an old manifest is a claim
def _claim(folder: Path, name: str, entry: object) -> None:
    payload = json.loads((folder / "config.json").read_text())
    payload["hf_ada_artifact"]["files"][name] = entry
    (folder / "config.json").write_text(json.dumps(payload))


def _entry(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("name, entry", [
    ("notes.txt", None),  # filled with the file's true size and hash: still not a name Arrays writes
    ("notes.txt", {"size": 1, "sha256": "0" * 64}),
    ("../outside.txt", {"size": 4, "sha256": "0" * 64}),
    ("checkpoint-500", {"size": 4096, "sha256": "0" * 64}),
    ("d.safetensors", {"size": 4, "sha256": "0" * 64}),  # a name it writes, but not the recorded bytes
    ("d.safetensors", "not an entry"),
])
def test_resave_removes_only_verified_old_files(tmp_path, name, entry, caplog):
    folder = _saved(tmp_path)
    (folder / "notes.txt").write_text("mine")
    (folder / "d.safetensors").write_text("mine")
    (folder / "checkpoint-500").mkdir()
    (tmp_path / "outside.txt").write_text("mine")
    _claim(folder, name, _entry(b"mine") if entry is None else entry)
    with caplog.at_level(logging.WARNING, logger="hf_ada.common.folder"):
        arrays(1, names=("a",)).save_pretrained(folder)
    assert same(Arrays.from_pretrained(folder), arrays(1, names=("a",)))
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "d.safetensors").read_text() == "mine"
    assert (folder / "checkpoint-500").is_dir() and (tmp_path / "outside.txt").read_text() == "mine"
    assert not (folder / "b.safetensors").exists()  # the verified old files are removed
    arrays(2).save_pretrained(folder)  # the folder is not bricked
    assert same(Arrays.from_pretrained(folder), arrays(2))


@pytest.mark.parametrize("files", [["a.safetensors"], "x", None, {"a.safetensors": [1, 2]}])
def test_malformed_old_manifest_is_reported_and_does_not_brick(tmp_path, files, caplog):
    folder = _saved(tmp_path)
    payload = json.loads((folder / "config.json").read_text())
    payload["hf_ada_artifact"]["files"] = files
    (folder / "config.json").write_text(json.dumps(payload))
    with pytest.raises(ArtifactError):
        Arrays.from_pretrained(folder)
    before = _snapshot(folder)
    # the old files can no longer be verified as the artifact's own: not overwritten, the manifest is named
    with pytest.raises(FileExistsError, match=r"(?s)a\.safetensors.*config\.json.*malformed"):
        arrays(1).save_pretrained(folder)
    assert _snapshot(folder) == before
    with caplog.at_level(logging.WARNING, logger="hf_ada.common.folder"):
        arrays(1, names=("x", "y")).save_pretrained(folder)  # a save that overwrites nothing still succeeds
    assert "config.json" in caplog.text
    assert same(Arrays.from_pretrained(folder), arrays(1, names=("x", "y")))
    assert {n: before[n] for n in ("a.safetensors", "b.safetensors")} == {
        n: (folder / n).read_bytes() for n in ("a.safetensors", "b.safetensors")}  # left alone


def test_unreadable_old_config_refuses_before_writing(tmp_path):
    folder = _saved(tmp_path)
    (folder / "config.json").write_text("{broken")
    before = _snapshot(folder)
    with pytest.raises(FileExistsError, match=r"config\.json.*not valid JSON"):
        arrays(1).save_pretrained(folder)
    assert _snapshot(folder) == before


def test_changed_old_file_is_not_overwritten(tmp_path):
    folder = _saved(tmp_path)
    (folder / "a.safetensors").write_bytes(b"edited by the user")
    with pytest.raises(FileExistsError, match=r"a\.safetensors"):
        arrays(1).save_pretrained(folder)
    assert (folder / "a.safetensors").read_bytes() == b"edited by the user"


# ------------------------------------------------------------------ 6. files: bounded JSON, own config only
def test_deep_json_is_a_clear_error_not_recursion():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(JsonLimitError, match="nested deeper"):
        loads_json(deep)
    with pytest.raises(json.JSONDecodeError):  # callers handling bad JSON handle this too
        loads_json('{"a": ' + deep + "}")
    assert loads_json('{"a": [[1], {"b": "[[[[["}]}') == {"a": [[1], {"b": "[[[[["}]}
    assert loads_json("[" * 64 + "]" * 64) is not None


def test_deeply_nested_artifact_json_is_refused_on_load(tmp_path):
    folder = _saved(tmp_path)
    payload = json.loads((folder / "config.json").read_text())
    text = json.dumps(payload)[:-1] + ', "deep": ' + "[" * 50_000 + "]" * 50_000 + "}"
    (folder / "config.json").write_text(text)
    with pytest.raises(ArtifactError, match="nested deeper"):
        Arrays.from_pretrained(folder)
    deep = Arrays(arrays(0).arrays, "deep", extra="[" * 50_000 + "]" * 50_000)
    deep.save_pretrained(tmp_path / "deep")
    with pytest.raises(ArtifactError, match=r"extra/data\.json is nested deeper"):
        Arrays.from_pretrained(tmp_path / "deep")


def test_save_reads_only_the_artifacts_own_config(tmp_path, monkeypatch):
    folder = tmp_path / "target"
    folder.mkdir()
    os.mkfifo(folder / "x.json")  # opening it for reading would block forever
    (folder / "big.json").write_text("[" + "1," * 1_000_000 + "1]")
    read: list[str] = []
    real = artifact_module.read_json
    monkeypatch.setattr(artifact_module, "read_json", lambda path, **kw: (read.append(Path(path).name), real(path, **kw))[1])
    done = threading.Event()

    def save() -> None:
        arrays(0).save_pretrained(folder)
        arrays(1).save_pretrained(folder)
        done.set()

    thread = threading.Thread(target=save, daemon=True)
    thread.start()
    thread.join(60)
    assert done.is_set(), "the save blocked"
    assert set(read) <= {"config.json", "other_config.json", ".commit.json"}
    assert same(Arrays.from_pretrained(folder), arrays(1))


def test_fifo_config_is_refused_without_blocking(tmp_path):
    folder = tmp_path / "target"
    folder.mkdir()
    os.mkfifo(folder / "config.json")
    with pytest.raises((FileExistsError, ArtifactError), match="config.json"):
        arrays(0).save_pretrained(folder)
    with pytest.raises(ArtifactError, match="not a regular file"):
        Arrays.from_pretrained(folder)
    with pytest.raises(JsonLimitError, match="not a regular file"):
        read_json(folder / "config.json")


def test_protocol_arguments_are_checked_before_any_work(tmp_path):
    target = tmp_path / "never"
    for kwargs, error, match in [({"lock_timeout": float("nan")}, ValueError, "lock_timeout"),
                                 ({"lock_timeout": -1}, ValueError, "lock_timeout"),
                                 ({"overwrite": "yes"}, TypeError, "overwrite"),
                                 ({"push_to_hub": "yes"}, TypeError, "push_to_hub"),
                                 ({"push_to_hub": True, "repo_id": ""}, ValueError, "repo_id"),
                                 ({"private": True}, TypeError, "push_to_hub=True")]:
        with pytest.raises(error, match=match):
            arrays(0).save_pretrained(target, **kwargs)
    assert not target.exists()


def test_push_finds_the_kind_without_the_class_imported(tmp_path, monkeypatch, local_hub):
    from hf_ada.common import folder as folder_module
    from hf_ada.common.hub import push_folder

    folder = _saved(tmp_path)
    (folder / "notes.json").write_text('{"hf_ada_artifact": "not a record"}')
    os.mkfifo(folder / "pipe.json")
    monkeypatch.setattr(folder_module, "_KINDS", {})  # a process that never imported the artifact's class
    repo_id = local_hub.repo_id("no-class")
    push_folder(folder, repo_id)
    assert {n for n in local_hub.files(repo_id) if n != ".gitattributes"} == {
        "config.json", "a.safetensors", "b.safetensors", "c.safetensors"}


def test_commit_marker_never_overwrites_a_file_it_cannot_verify(tmp_path):
    """A staged file named like a user's file (a name the artifact could write): the recovery refuses to move it
    over the user's file, unless the marker records that file as the older artifact's."""
    folder = _saved(tmp_path)
    (folder / "d.safetensors").write_bytes(b"the user's own file")
    staging = folder / STAGING
    staging.mkdir()
    (staging / "d.safetensors").write_bytes(b"hostile")
    marker = {"version": 2, "config": "config.json", "files": {"d.safetensors": None, "config.json": None},
              "replace": {}, "remove": {}}
    (staging / ".commit.json").write_text(json.dumps(marker))
    with pytest.raises(ArtifactError, match=r"would replace .*d\.safetensors.*left in place"):
        Arrays.from_pretrained(folder)
    assert (folder / "d.safetensors").read_bytes() == b"the user's own file"
    marker["replace"] = {"d.safetensors": _entry(b"the user's own file")}  # recorded as the old artifact's
    (staging / ".commit.json").write_text(json.dumps(marker))
    (staging / "config.json").write_bytes((folder / "config.json").read_bytes())
    assert same(Arrays.from_pretrained(folder), arrays(0))  # rolled forward
    assert (folder / "d.safetensors").read_bytes() == b"hostile" and not staging.exists()


def test_subfolder_through_a_link_and_unparseable_numbers_are_refused(tmp_path, victim):
    folder = _saved(tmp_path)
    arrays(5).save_pretrained(victim / "elsewhere")
    (folder / "sub").symlink_to(victim / "elsewhere", target_is_directory=True)
    with pytest.raises(ValueError, match="symbolic link"):
        Arrays.from_pretrained(folder, subfolder="sub")
    with pytest.raises(JsonLimitError, match="cannot be parsed"):
        loads_json('{"n": ' + "9" * 5000 + "}")
    (folder / "config.json").write_text('{"n": ' + "9" * 5000 + "}")
    with pytest.raises(ArtifactError, match="config.json"):
        Arrays.from_pretrained(folder)


def test_deeply_nested_memory_metadata_is_a_clear_error(tmp_path):
    """AdaNPC memory metadata (JSON inside a safetensors header) nested 50,000 deep: ArtifactError naming it."""
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from hf_ada.adanpc.memory import AdaNPCMemory

    memory = AdaNPCMemory(4, "cosine")
    memory.add(np.eye(4, dtype=np.float32), np.array([0, 1, 0, 1]))
    path = tmp_path / "memory.safetensors"
    memory.save(path)
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
    save_file(load_file(str(path)), str(path), metadata={**metadata, "info": "[" * 50_000 + "]" * 50_000})
    with pytest.raises(ArtifactError, match="metadata 'info' is nested deeper"):
        AdaNPCMemory.load(path)
