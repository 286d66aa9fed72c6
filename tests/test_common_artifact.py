"""The one artifact protocol (:mod:`hf_ada.common.artifact`): what a save may touch, crash safety, load checks.

The artifact here is a real (tiny) one: numpy arrays in safetensors files plus a JSON config, saved through
:class:`HubArtifactMixin` exactly as the AdANNS index and the AdaNPC predictor are.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hf_ada.common.artifact import ArtifactError, check_name, read_artifact, save_artifact
from hf_ada.common.hub import HubError, looks_like_path, resolve_folder

from artifact_fixtures import Arrays, arrays as _arrays, same as _same


def test_save_keeps_user_files_and_replaces_only_its_own(tmp_path):
    folder = tmp_path / "run"
    (folder / "checkpoint-500").mkdir(parents=True)
    (folder / "checkpoint-500" / "model.safetensors").write_bytes(b"weights")
    (folder / "notes.txt").write_text("mine")
    _arrays(0).save_pretrained(folder)
    assert _same(Arrays.from_pretrained(folder), _arrays(0))
    # a second save with fewer files replaces the artifact and removes its own stale file, nothing else
    _arrays(1, names=("a", "b")).save_pretrained(folder)
    assert _same(Arrays.from_pretrained(folder), _arrays(1, names=("a", "b")))
    assert not (folder / "c.safetensors").exists()
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "checkpoint-500" / "model.safetensors").read_bytes() == b"weights"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_save_into_current_directory_keeps_everything_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("keep.py").write_text("print(1)")
    _arrays(0).save_pretrained(".")
    assert Path("keep.py").read_text() == "print(1)"
    assert _same(Arrays.from_pretrained("."), _arrays(0))


def test_saved_files_have_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        _arrays(0).save_pretrained(tmp_path / "p")
    finally:
        os.umask(old)
    for path in (tmp_path / "p").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


@pytest.mark.parametrize("setup, message", [
    (lambda f: f.write_text("a file"), "is a file"),
    (lambda f: (f.mkdir(), (f / "config.json").write_text('{"model_type": "bert"}')), "not the config of an hf-ada"),
    (lambda f: (f.mkdir(), (f / "a.safetensors").write_bytes(b"user data")), "would overwrite"),
    (lambda f: (f.mkdir(), (f / "other_config.json").write_text(
        json.dumps({"hf_ada_artifact": {"kind": "other-kind", "files": {}}}))), "holds an hf-ada other-kind"),
])
def test_save_refuses_what_it_did_not_write(tmp_path, setup, message):
    folder = tmp_path / "target"
    setup(folder)
    before = {p: p.read_bytes() for p in ([folder] if folder.is_file() else folder.rglob("*"))}
    with pytest.raises(FileExistsError, match=message):
        _arrays(0).save_pretrained(folder)
    assert {p: p.read_bytes() for p in before} == before  # untouched
    if folder.is_dir():
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".hf-ada")]


def test_overwrite_false_and_protected_inputs(tmp_path):
    _arrays(0).save_pretrained(tmp_path / "p")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _arrays(1).save_pretrained(tmp_path / "p", overwrite=False)
    assert _same(Arrays.from_pretrained(tmp_path / "p"), _arrays(0))
    with pytest.raises(ValueError, match="input"):
        _arrays(1).save_pretrained(tmp_path / "data" / "sub", protected=(tmp_path / "data",))
    assert not (tmp_path / "data").exists()


def test_load_refuses_changed_swapped_or_missing_files(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _arrays(0).save_pretrained(first)
    _arrays(1).save_pretrained(second)
    # a file of another save (same size, other bytes): the folder mixes two saves
    (first / "b.safetensors").write_bytes((second / "b.safetensors").read_bytes())
    with pytest.raises(ArtifactError, match=r"b\.safetensors differs"):
        Arrays.from_pretrained(first)
    (first / "b.safetensors").write_bytes(b"short")
    with pytest.raises(ArtifactError, match=r"b\.safetensors has 5 bytes"):
        Arrays.from_pretrained(first)
    (first / "b.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"b\.safetensors is missing"):
        Arrays.from_pretrained(first)
    (second / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="config.json is not valid JSON"):
        Arrays.from_pretrained(second)


def test_load_refuses_other_kinds_and_untrusted_manifests(tmp_path):
    folder = tmp_path / "p"
    _arrays(0).save_pretrained(folder)
    payload = json.loads((folder / "config.json").read_text())
    with pytest.raises(ArtifactError, match="not the config of an hf-ada other"):
        read_artifact(folder, kind="other", config_name="config.json")
    payload["hf_ada_artifact"]["files"]["../outside.bin"] = {"size": 1, "sha256": "0"}
    (folder / "config.json").write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="outside the folder"):
        Arrays.from_pretrained(folder)


def test_writer_failure_leaves_the_old_artifact(tmp_path):
    folder = tmp_path / "p"
    _arrays(0).save_pretrained(folder)

    class Broken(Arrays):
        def _write_files(self, folder: Path) -> dict[str, Any]:
            super()._write_files(folder)
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        Broken(_arrays(1).arrays, "x").save_pretrained(folder)
    assert _same(Arrays.from_pretrained(folder), _arrays(0))
    assert sorted(p.name for p in folder.iterdir()) == ["a.safetensors", "b.safetensors", "c.safetensors",
                                                         "config.json"]


_KILLER = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from artifact_fixtures import arrays
    import hf_ada.common.folder as folder_module
    base, kill_at, counter = sys.argv[1], [0], [0]
    def hit(real):
        def wrapper(*args, **kwargs):
            counter[0] += 1
            if counter[0] == kill_at[0]:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return wrapper
    # every file-system step of a save: files written and hashed, renames, removals
    folder_module.os.replace = hit(os.replace)
    folder_module.sha256_file = hit(folder_module.sha256_file)
    folder_module.write_json = hit(folder_module.write_json)
    folder_module.Path.unlink = hit(folder_module.Path.unlink)
    old, new, outcomes = arrays(0), arrays(1, names=("a", "b")), []
    for step in range(1, 200):
        folder = os.path.join(base, f"run{step}")
        kill_at[0] = 0
        old.save_pretrained(folder)
        open(os.path.join(folder, "user.txt"), "w").write("keep")
        pid = os.fork()
        if pid == 0:  # the saving process, killed at its step-th file-system step
            kill_at[0], counter[0] = step, 0
            new.save_pretrained(folder)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        outcomes.append([folder, os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL])
        if not outcomes[-1][1]:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            break
    print(json.dumps(outcomes))
""")


def test_sigkill_at_every_step_leaves_old_or_new(tmp_path):
    """Kill a saving process (SIGKILL, a real separate process) at each file-system step of the save in turn:
    the next load always gives the complete old or the complete new artifact, and cleans up."""
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    tests_dir = str(Path(__file__).resolve().parent)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), tests_dir], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    old, new = _arrays(0), _arrays(1, names=("a", "b"))
    outcomes = []
    for folder, killed in runs:
        folder = Path(folder)
        loaded = Arrays.from_pretrained(folder)
        assert _same(loaded, old) or _same(loaded, new), folder
        assert (folder / "user.txt").read_text() == "keep"
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".hf-ada")]
        outcomes.append("new" if _same(loaded, new) else "old")
    assert [killed for _, killed in runs] == [True] * (len(runs) - 1) + [False]  # the last save finished
    assert outcomes[-1] == "new"
    assert len(runs) > 8  # the save really went through many steps
    assert "old" in outcomes[:-1] and "new" in outcomes[:-1]  # kills before and after the commit point were hit


def test_names_and_paths():
    assert check_name("my-index_1.v2") == "my-index_1.v2"
    for bad in ("../x", "a/b", "", ".hidden", "a..b", "x" * 200, "a\\b"):
        with pytest.raises(ValueError, match="not allowed"):
            check_name(bad, "index name")
    assert looks_like_path("./out") and looks_like_path("/abs/x") and looks_like_path("a/b/c")
    assert not looks_like_path("user/repo") and not looks_like_path("repo")


def test_missing_local_path_is_not_looked_up_on_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_folder(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        Arrays.from_pretrained(str(tmp_path / "missing" / "deeper"))


def test_push_and_pull_round_trip_and_failures(local_hub, empty_cache, tmp_path):
    repo_id = local_hub.repo_id("arrays")
    original = _arrays(3)
    original.push_to_hub(repo_id)
    pulled = Arrays.from_pretrained(repo_id, cache_dir=empty_cache)
    assert _same(pulled, original)
    assert "config.json" in local_hub.files(repo_id)
    local_hub.set_down(True)
    with pytest.raises(HubError, match=repo_id):
        _arrays(4).push_to_hub(repo_id)
    local_hub.set_down(False)
    assert _same(Arrays.from_pretrained(repo_id, cache_dir=tmp_path / "c2"), original)


def test_save_artifact_checks_its_writer(tmp_path):
    with pytest.raises(TypeError, match="must return its config"):
        save_artifact(tmp_path / "x", kind="k", config_name="config.json", write=lambda folder: None)
    assert not [p for p in (tmp_path / "x").iterdir()]


def test_a_class_carries_its_own_card_template(tmp_path, local_hub):
    from huggingface_hub import ModelCardData

    template = tmp_path / "carded.md"
    template.write_text("---\n{{ card_data }}\n---\n# {{ title }}\n\nrows: {{ rows }}, repo: {{ repo_id }}\n")

    class Carded(Arrays, card_template=str(template)):
        def _card_values(self, repo_id=None):
            return ModelCardData(tags=["hf-ada"]), {"title": self.tag, "rows": len(self.arrays["a"]),
                                                    "repo_id": repo_id}

    assert Carded.card_template == str(template) and Arrays.card_template is None
    folder = Carded(_arrays(0).arrays, "carded").save_pretrained(tmp_path / "p")
    card = (folder / "README.md").read_text()
    assert "# carded" in card and "rows: 64, repo: None" in card and "hf-ada" in card
    repo_id = local_hub.repo_id("carded")
    url = Carded(_arrays(0).arrays, "carded").push_to_hub(repo_id)
    assert "/commit/" in url and f"repo: {repo_id}" in local_hub.files(repo_id)["README.md"].decode()
    with pytest.raises(ValueError, match="unknown card template 'nope'"):
        class Missing(Arrays, card_template="nope"):
            def _card_values(self, repo_id=None):
                return None, {}

        Missing(_arrays(0).arrays).save_pretrained(tmp_path / "q")
    assert not (tmp_path / "q" / "config.json").exists()
