"""Concurrent processes on one artifact folder: a reader never destroys a writer's work, a load during a save
gives the complete old or the complete new artifact, a second save waits (bounded), and recovery touches only
a staging folder whose owner is gone. Every party is a real process; the lock is ``flock`` on a file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hf_ada.common.folder import recover
from hf_ada.common.lock import FolderLock, FolderLockTimeout

from artifact_fixtures import Arrays, arrays, same

TESTS = str(Path(__file__).resolve().parent)
STAGING = ".hf-ada-staging-test-arrays"

_PRELUDE = textwrap.dedent("""
    import json, os, sys, time, traceback
    sys.path.insert(0, sys.argv[1])
    from artifact_fixtures import Arrays, arrays, same
    folder = sys.argv[2]
    first, second = arrays(1, rows=4000), arrays(2, names=("a", "b"), rows=6000)
""")

_SAVER = _PRELUDE + textwrap.dedent("""
    saves, failures = int(sys.argv[3]), []
    for i in range(saves):
        try:
            (first if i % 2 else second).save_pretrained(folder)
        except Exception:
            failures.append(traceback.format_exc(limit=3))
    print(json.dumps({"saves": saves, "failed": len(failures), "errors": failures[:3]}))
""")

_LOADER = _PRELUDE + textwrap.dedent("""
    stop, loads, failures = sys.argv[3], 0, []
    while not os.path.exists(stop):
        try:
            loaded = Arrays.from_pretrained(folder)
            if not (same(loaded, first) or same(loaded, second)):
                failures.append(f"mixed artifact: {loaded.tag} {sorted(loaded.arrays)}")
        except Exception:
            failures.append(traceback.format_exc(limit=3))
        loads += 1
    print(json.dumps({"loads": loads, "failed": len(failures), "errors": failures[:3]}))
""")

_SLOW_SAVER = _PRELUDE + textwrap.dedent("""
    class Slow(Arrays):
        def _write_files(self, staging):
            payload = super()._write_files(staging)
            print("staged", flush=True)
            while not os.path.exists(sys.argv[3]):
                time.sleep(0.01)
            return payload
    Slow(second.arrays, second.tag).save_pretrained(folder)
    print("saved", flush=True)
""")

_HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from hf_ada.common.lock import FolderLock
    with FolderLock(sys.argv[2], shared=False):
        print("locked", flush=True)
        time.sleep(float(sys.argv[3]))
""")


def _start(tmp_path: Path, source: str, *args: str) -> subprocess.Popen:
    script = tmp_path / f"script_{abs(hash(source))}.py"
    script.write_text(source)
    return subprocess.Popen([sys.executable, str(script), TESTS, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_line(proc: subprocess.Popen, expected: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == expected:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"process ended before {expected!r}: {proc.stderr.read()}")
    raise AssertionError(f"no {expected!r} within {timeout} s")


def test_saver_and_loaders_in_separate_processes_never_fail(tmp_path):
    """One process re-saves two different artifacts in turn while two others load in a loop: 0 failed saves,
    0 failed or mixed loads, and the folder ends as the last save."""
    folder = tmp_path / "served"
    arrays(2, names=("a", "b"), rows=6000).save_pretrained(folder)
    (folder / "notes.txt").write_text("mine")
    stop = tmp_path / "stop"
    loaders = [_start(tmp_path, _LOADER, str(folder), str(stop)) for _ in range(2)]
    time.sleep(0.5)
    saver = _start(tmp_path, _SAVER, str(folder), "20")
    out, err = saver.communicate(timeout=300)
    stop.touch()
    saved = json.loads(out.strip().splitlines()[-1])
    loaded = [json.loads(proc.communicate(timeout=120)[0].strip().splitlines()[-1]) for proc in loaders]
    figures = {"saves": saved["saves"], "failed_saves": saved["failed"], "loads": sum(r["loads"] for r in loaded),
               "failed_loads": sum(r["failed"] for r in loaded)}
    print("concurrent save/load:", figures)
    assert saved["failed"] == 0, saved["errors"]
    assert all(r["failed"] == 0 for r in loaded), [r["errors"] for r in loaded]
    assert figures["loads"] >= 2
    assert same(Arrays.from_pretrained(folder), arrays(1, rows=4000))  # the 20th save (i = 19) wrote `first`
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["a.safetensors", "b.safetensors", "c.safetensors",
                                                         "config.json", "notes.txt"]


def test_second_save_waits_bounded_then_clear_error(tmp_path):
    folder = tmp_path / "busy"
    arrays(0).save_pretrained(folder)
    holder = _start(tmp_path, _HOLDER, str(folder), "3")
    try:
        _wait_for_line(holder, "locked")
        started = time.monotonic()
        with pytest.raises(FolderLockTimeout, match=r"another process held its lock .* HF_ADA_LOCK_TIMEOUT"):
            arrays(1).save_pretrained(folder, lock_timeout=0.3)
        assert time.monotonic() - started < 3
        with pytest.raises(FolderLockTimeout, match="could not read"):
            Arrays.from_pretrained(folder, lock_timeout=0.3)
        assert same(Arrays.from_pretrained(folder, lock_timeout=60), arrays(0))  # waits for the holder
        arrays(1).save_pretrained(folder, lock_timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert same(Arrays.from_pretrained(folder), arrays(1))
    assert not (folder / ".hf-ada.lock").exists()  # the last holder removed the lock file


def test_recovery_leaves_a_live_save_alone_and_cleans_up_after_a_dead_one(tmp_path):
    folder = tmp_path / "live"
    arrays(1, rows=4000).save_pretrained(folder)
    go = tmp_path / "go"
    saver = _start(tmp_path, _SLOW_SAVER, str(folder), str(go))
    try:
        _wait_for_line(saver, "staged")
        staged = sorted(p.name for p in (folder / STAGING).iterdir())
        with pytest.raises(FolderLockTimeout):
            recover(folder, "test-arrays", lock_timeout=0.3)  # the owner is alive: its staging is not touched
        assert sorted(p.name for p in (folder / STAGING).iterdir()) == staged
        go.touch()
        assert same(Arrays.from_pretrained(folder, lock_timeout=60), arrays(2, names=("a", "b"), rows=6000))
        _wait_for_line(saver, "saved")
        assert saver.wait(timeout=60) == 0
    finally:
        saver.kill()
        saver.wait()
    go.unlink()
    saver = _start(tmp_path, _SLOW_SAVER, str(folder), str(go))
    _wait_for_line(saver, "staged")
    saver.send_signal(signal.SIGKILL)  # the owner dies mid-save: the next load cleans up and reads the old one
    saver.wait()
    assert (folder / STAGING).is_dir()
    assert same(Arrays.from_pretrained(folder), arrays(2, names=("a", "b"), rows=6000))
    assert not (folder / STAGING).exists()


def test_shared_readers_do_not_block_each_other_and_lock_file_is_no_link(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    with FolderLock(folder, shared=True, timeout=1) as first, FolderLock(folder, shared=True, timeout=1) as second:
        assert first.held and second.held
        with pytest.raises(FolderLockTimeout):
            FolderLock(folder, shared=False, timeout=0.1).__enter__()
    with FolderLock(folder, shared=False, timeout=1) as writer:
        assert writer.held
    assert not os.path.exists(folder / ".hf-ada.lock")


@contextlib.contextmanager
def _read_only(folder: Path, monkeypatch: pytest.MonkeyPatch):
    """Make ``folder`` unwritable even for root: the immutable attribute (``chattr +i``), or, on a file system
    without it, a lock-file creation that fails as on a read-only mount (EROFS)."""
    try:
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    except OSError:  # no chattr
        immutable = False
    if immutable:
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        return
    import hf_ada.common.lock as lock_module

    real_open = os.open

    def read_only_open(path, flags, *args):
        if str(path).startswith(str(folder)) and flags & (os.O_CREAT | os.O_RDWR | os.O_WRONLY):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    with monkeypatch.context() as patch:
        patch.setattr(lock_module.os, "open", read_only_open)
        yield


def test_read_only_folder_loads_without_a_lock_and_refuses_saves(tmp_path, monkeypatch):
    folder = tmp_path / "mounted"
    arrays(0).save_pretrained(folder)
    (folder / STAGING).mkdir()  # an interrupted save nobody can clean up here
    (folder / STAGING / "a.safetensors").write_bytes(b"partial")
    with _read_only(folder, monkeypatch):
        assert same(Arrays.from_pretrained(folder), arrays(0))
        with pytest.raises(PermissionError, match="not writable"):
            arrays(1).save_pretrained(folder, lock_timeout=1)
        assert not (folder / ".hf-ada.lock").exists()
    assert (folder / STAGING / "a.safetensors").read_bytes() == b"partial"
    assert same(Arrays.from_pretrained(folder), arrays(0)) and not (folder / STAGING).exists()


def test_two_saving_threads_and_a_loading_thread_share_one_folder(tmp_path):
    """Threads of one process (a web server's workers) exclude each other the same way: two savers writing
    different artifacts and a loader, all succeed; the folder ends as one complete save."""
    import threading

    folder = tmp_path / "shared"
    versions = [arrays(3, rows=2000), arrays(4, names=("a", "b"), rows=3000)]
    versions[0].save_pretrained(folder)
    errors: list[BaseException] = []
    stop = threading.Event()
    loads = [0]

    def save(version: Arrays) -> None:
        try:
            for _ in range(6):
                version.save_pretrained(folder, lock_timeout=120)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    def load() -> None:
        while not stop.is_set():
            try:
                loaded = Arrays.from_pretrained(folder, lock_timeout=120)
                assert any(same(loaded, v) for v in versions), "mixed artifact"
                loads[0] += 1
            except BaseException as err:  # noqa: BLE001
                errors.append(err)
                return

    savers = [threading.Thread(target=save, args=(v,)) for v in versions]
    loader = threading.Thread(target=load)
    loader.start()
    for thread in savers:
        thread.start()
    for thread in savers:
        thread.join(300)
    stop.set()
    loader.join(60)
    assert not errors, errors
    assert loads[0] > 0
    final = Arrays.from_pretrained(folder)
    assert any(same(final, v) for v in versions)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", *(f"{n}.safetensors" for n in final.arrays)])
