"""The artifact folder on disk: save, verify, recover and snapshot, every step locked and link-safe.

An *artifact* is a folder of files plus one JSON config (``config_name``) that names the artifact's kind and
binds every other file by size and SHA-256 (the ``"hf_ada_artifact"`` record). Every folder is untrusted:

* a save writes into a hidden staging folder, commits with an atomic marker, then moves the files in; it
  replaces or removes an older file only when it can verify it as the old artifact's own (a name an
  artifact writes, size and SHA-256 as recorded), and leaves everything else alone;
* saves and crash recovery hold the folder's lock (:class:`~hf_ada.common.lock.FolderLock`) exclusively,
  loads and pushes share it, so a load returns the complete old or the complete new artifact;
* no symbolic link or special file is ever followed or removed: names are checked with
  :func:`~hf_ada.common.paths.member_path`, and anything else is refused with an :class:`ArtifactError`;
* a snapshot of the Hugging Face Hub cache is only read (no lock file, no recovery).

:mod:`hf_ada.common.artifact` builds the ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` mixin on it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .config import ARTIFACT_KEY
from .files import MAX_JSON_BYTES, JsonLimitError, atomic_file, check_json_depth, default_mode, read_json, write_json
from .lock import FolderLock, check_lock_timeout
from .paths import UnsafePathError, check_member_name, hub_cache_root, member_path, tree_entries

logger = logging.getLogger(__name__)

__all__ = [
    "ARTIFACT_KEY",
    "ArtifactError",
    "ArtifactSnapshot",
    "check_name",
    "open_snapshot",
    "read_artifact",
    "reading",
    "recorded_kind",
    "recover",
    "register_kind",
    "registered_kinds",
    "save_artifact",
    "sha256_file",
]

_STAGING_PREFIX = ".hf-ada-staging-"
_COMMIT_NAME = ".commit.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_CONFIG_BYTES = 16 << 20

#: kind -> (config file name, file-name patterns or None) of every artifact class defined so far
_KINDS: dict[str, tuple[str, tuple[str, ...] | None]] = {}


class ArtifactError(ValueError):
    """A saved artifact is incomplete, inconsistent, unsafe or not what was asked for; the message names the file."""


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is safe as one path component (letters, digits, ``.``, ``_``, ``-``; no ``..``)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise ValueError(
            f"{what} {name!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit, without '..' or path separators"
        )
    return name


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def register_kind(kind: str, config_name: str, file_patterns: tuple[str, ...] | None = None) -> None:
    """Make ``kind`` known: its config file name (read when telling kinds apart) and, optionally, the ``fnmatch``
    patterns of every file it writes (names outside them are refused in manifests and commit markers)."""
    check_member_name(config_name, f"the config name of {kind}")
    _KINDS[kind] = (config_name, None if file_patterns is None else (*file_patterns, config_name, "README.md"))


def registered_kinds() -> dict[str, str]:
    """``{kind: config file name}`` of every artifact kind defined so far (see :func:`register_kind`)."""
    return {kind: config for kind, (config, _) in _KINDS.items()}


@contextlib.contextmanager
def _artifact_errors() -> Iterator[None]:
    """Report unsafe entries and over-limit JSON as :class:`ArtifactError` (one error type for callers)."""
    try:
        yield
    except (UnsafePathError, JsonLimitError) as err:
        raise ArtifactError(str(err)) from err


# ---------------------------------------------------------------------------------------------- names and files
def _check_allowed(kind: str, name: str, where: str) -> None:
    """Refuse a name that is not one this kind of artifact writes."""
    check_member_name(name, where)
    patterns = _KINDS.get(kind, (None, None))[1]
    if patterns is not None and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
        raise ArtifactError(f"{where} names {name!r}, which is not a file a {kind} writes ({list(patterns)})")


def _valid_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("size"), int) and not isinstance(entry["size"], bool)
            and entry["size"] >= 0 and isinstance(entry.get("sha256"), str) and bool(_SHA_RE.match(entry["sha256"])))


def _matches(path: Path, entry: dict[str, Any]) -> bool:
    """Whether the regular file ``path`` has the recorded size and SHA-256."""
    return os.lstat(path).st_size == entry["size"] and sha256_file(path) == entry["sha256"]


def _read_config(path: Path, *, follow_symlinks: bool = False) -> dict[str, Any]:
    try:
        payload = read_json(path, max_bytes=_MAX_CONFIG_BYTES, follow_symlinks=follow_symlinks)
    except JsonLimitError as err:
        raise ArtifactError(str(err)) from err
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(payload, dict):
        raise ArtifactError(f"{path} must hold a JSON object, got {type(payload).__name__}")
    return payload


def _staging_dir(folder: Path, kind: str) -> Path:
    return folder / f"{_STAGING_PREFIX}{kind}"


def _staging_exists(staging: Path) -> bool:
    """Whether a staging folder is there; a link or a file of that name is refused (and left in place)."""
    try:
        info = os.lstat(staging)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a folder"
        raise ArtifactError(
            f"{staging} is {what}; hf-ada never follows or removes such an entry in an artifact folder: it was left "
            "in place, remove it by hand"
        )
    return True


def _discard(staging: Path) -> None:
    """Remove a staging folder after checking that it holds only regular files and real folders."""
    files, folders = tree_entries(staging)
    for name in files:
        (staging / name).unlink()
    for name in folders:
        os.rmdir(staging / name)
    os.rmdir(staging)


# ---------------------------------------------------------------------------------------------- recovery
def _roll_forward(folder: Path, staging: Path, kind: str, *, verified: bool = False) -> None:
    """Finish a committed save: move the staged files in (the config last), remove the older artifact's files
    that the marker lists and that still match their recorded size and SHA-256, drop the staging folder.

    A file already in place is replaced only if it is the older artifact's (the marker records its size and
    SHA-256) or the older config of this kind; ``verified=True`` (the saver itself, which checked exactly that
    under the same lock a moment ago) skips re-hashing them."""
    marker_path = staging / _COMMIT_NAME
    marker = _read_config(marker_path)
    where = str(marker_path)
    files, remove, config = marker.get("files"), marker.get("remove", {}), marker.get("config")
    replace = marker.get("replace", {})
    if isinstance(files, list):  # a marker of an older hf-ada: the config was listed last
        config = config or (files[-1] if files else None)
        files = dict.fromkeys(files)
    if not isinstance(files, dict) or not files or not isinstance(config, str) or config not in files \
            or not isinstance(replace, dict):
        raise ArtifactError(f"{marker_path} is not a commit marker hf-ada wrote; it was left in place")
    moves = []
    for name in sorted(files, key=lambda n: n == config):
        _check_allowed(kind, name, where)
        source = member_path(staging, name, where=where, must_exist=False)
        destination = member_path(folder, name, where=where, must_exist=False)
        staged, in_place = os.path.lexists(source), os.path.lexists(destination)
        if not staged and not in_place:
            raise ArtifactError(f"{marker_path}: {name} is neither staged nor in place; the save cannot be completed")
        if staged and in_place and not verified:
            own = recorded_kind(destination) == kind if name == config else (
                _valid_entry(replace.get(name)) and _matches(destination, replace[name]))
            if not own:
                raise ArtifactError(
                    f"{marker_path} would replace {destination}, which is not a file of the saved {kind}; the "
                    "interrupted save was left in place: remove the staging folder by hand to keep the file"
                )
        moves.append((name, source, destination))
    for name, source, destination in moves:
        if os.path.lexists(source):  # not yet moved by an interrupted earlier roll-forward
            _make_parents(folder, name, where)
            os.replace(source, destination)
    if isinstance(remove, dict):
        for name, entry in remove.items():
            _remove_if_own(folder, name, entry, kind, where)
    elif remove:
        logger.warning("%s lists files to remove without their sizes and hashes; they were left in place", where)
    _discard(staging)


def _make_parents(folder: Path, name: str, where: str) -> None:
    path = folder
    for part in name.split("/")[:-1]:
        path = path / part
        if not os.path.lexists(path):
            os.mkdir(path)
        elif os.path.islink(path) or not os.path.isdir(path):
            raise ArtifactError(f"{path} is not a real folder ({where} names a file below it); it was left in place")


def _remove_if_own(folder: Path, name: str, entry: Any, kind: str, where: str) -> None:
    """Remove ``folder/name`` only if it is the file recorded (a name the kind writes, same size and SHA-256)."""
    try:
        _check_allowed(kind, name, where)
        path = member_path(folder, name, where=where)
    except FileNotFoundError:
        return
    except (UnsafePathError, ArtifactError) as err:
        logger.warning("not removing %r: %s", name, err)
        return
    if not _valid_entry(entry) or not _matches(path, entry):
        logger.warning("%s: %s differs from the file the older artifact recorded; it was left in place", where, name)
        return
    path.unlink()


def _recover_locked(folder: Path, kind: str) -> None:
    staging = _staging_dir(folder, kind)
    if not _staging_exists(staging):
        return
    if os.path.lexists(staging / _COMMIT_NAME):
        logger.warning("Completing an interrupted save of the %s in %s", kind, folder)
        _roll_forward(folder, staging, kind)
    else:
        logger.warning("Removing the unfinished save of a %s left in %s", kind, staging)
        _discard(staging)


def recover(folder: str | os.PathLike, kind: str, *, lock_timeout: float | None = None) -> None:
    """Finish or discard what a killed save of ``kind`` left in ``folder``, holding the folder's lock (so a save in
    progress is never touched). A Hub cache snapshot is never modified; a read-only folder is left as it is."""
    folder = Path(folder)
    if hub_cache_root(folder) is not None:
        return
    with _artifact_errors():
        if not _staging_exists(_staging_dir(folder, kind)):
            return
        try:
            with FolderLock(folder, shared=False, timeout=lock_timeout, what=kind):
                _recover_locked(folder, kind)
        except PermissionError:
            logger.warning("%s holds an interrupted save but is read-only; reading it as it is", folder)


# ---------------------------------------------------------------------------------------------- saving
def _refuse_other_kinds(folder: Path, kind: str) -> None:
    """Refuse a folder holding an artifact of another kind (only the config files of known kinds are read)."""
    for name in sorted({name for name, _ in _KINDS.values()}):
        found = recorded_kind(folder / name)
        if found is not None and found != kind:
            raise FileExistsError(
                f"{folder} holds an hf-ada {found} ({name}); refusing to save a {kind} over it: choose another folder"
            )


def recorded_kind(path: str | os.PathLike, *, max_bytes: int = _MAX_CONFIG_BYTES) -> str | None:
    """The hf-ada kind recorded in the config file ``path``; ``None`` if it is not a readable hf-ada config. Only a
    regular file is opened, never a link, FIFO or device, and only if it has at most ``max_bytes``."""
    path = Path(path)
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        record = _read_config(path).get(ARTIFACT_KEY)
    except (OSError, ArtifactError):
        return None
    found = record.get("kind") if isinstance(record, dict) else None
    return found if isinstance(found, str) else None


def _old_artifact(folder: Path, kind: str, config_name: str, overwrite: bool,
                  problems: list[str]) -> dict[str, dict[str, Any] | None]:
    """The files of the older artifact of ``kind`` in ``folder`` that a save may replace or remove: the config and
    each listed file that still has its recorded size and SHA-256. The manifest is a claim: entries that are
    malformed, unsafe or changed are reported (logged and added to ``problems``) and left alone."""
    try:
        config_path = member_path(folder, config_name, where="the save")
    except FileNotFoundError:
        return {}
    except UnsafePathError as err:
        raise FileExistsError(f"{err}; refusing to save over it") from err
    try:
        payload = _read_config(config_path)
    except ArtifactError as err:
        raise FileExistsError(
            f"{config_path} exists and cannot be read as the config of an hf-ada {kind} ({err}); refusing to overwrite "
            "it: choose an empty or new folder, or remove the file"
        ) from err
    record = payload.get(ARTIFACT_KEY)
    if not isinstance(record, dict) or record.get("kind") != kind:
        raise FileExistsError(
            f"{config_path} exists and is not the config of an hf-ada {kind}; refusing to overwrite it: choose "
            "an empty or new folder"
        )
    if not overwrite:
        raise FileExistsError(f"{folder} already holds a {kind}; pass overwrite=True to replace it")
    own: dict[str, dict[str, Any] | None] = {config_name: None}
    manifest = record.get("files")
    if not isinstance(manifest, dict):
        problems.append(f"{config_path}: the artifact record lists no files (malformed manifest)")
        logger.warning("%s; no older file will be replaced or removed", problems[-1])
        return own
    for name, entry in manifest.items():
        try:
            _check_allowed(kind, name, str(config_path))
            path = member_path(folder, name, where=str(config_path))
        except FileNotFoundError:
            continue
        except (UnsafePathError, ArtifactError) as err:
            problems.append(f"{config_path}: ignoring a manifest entry: {err}")
        else:
            if name == config_name or not _valid_entry(entry):
                problems.append(f"{config_path}: malformed manifest entry for {name!r}")
            elif _matches(path, entry):
                own[name] = entry
                continue
            else:
                problems.append(f"{config_path} lists {name}, but the file differs from the one saved")
        logger.warning("%s; that file is left alone", problems[-1])
    return own


def save_artifact(
    folder: str | os.PathLike,
    *,
    kind: str,
    config_name: str,
    write: Callable[[Path], dict[str, Any]],
    overwrite: bool = True,
    protected: tuple[str | os.PathLike, ...] = (),
    lock_timeout: float | None = None,
) -> Path:
    """Save an artifact of ``kind`` into ``folder`` with the guarantees of this module; return ``folder``.

    ``write(staging)`` writes every file of the artifact into the (empty) staging folder and returns the
    config payload; this function adds the ``hf_ada_artifact`` record (kind + size and SHA-256 of each
    file) and writes it as ``config_name``, last. ``protected`` lists paths the save must not write into
    (the inputs being read, e.g. a dataset folder or the model being adapted). Another save or load of the
    folder is waited for, at most ``lock_timeout`` seconds (default ``$HF_ADA_LOCK_TIMEOUT`` or 300).

    Raises:
        FileExistsError: ``folder`` is a file, or holds something the save would overwrite that is not verifiably
            this kind's artifact (another kind, a foreign ``config_name``, a foreign or changed file of the same
            name), or an artifact of this kind while ``overwrite=False``.
        ValueError: ``folder`` is (or lies inside) one of ``protected``, or inside the Hub cache.
        ArtifactError: the folder holds a link or special file where the artifact's files go.
        hf_ada.common.lock.FolderLockTimeout: the folder stayed locked longer than ``lock_timeout``.
    """
    check_member_name(config_name, "config_name")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if lock_timeout is not None:
        check_lock_timeout(lock_timeout)
    folder = Path(folder)
    target = folder.resolve()
    for path in protected:
        guarded = Path(path).resolve()
        if target == guarded or guarded in target.parents:
            raise ValueError(f"refusing to save the {kind} into {folder}: that is the input {path} being read")
    cache = hub_cache_root(folder) or hub_cache_root(target)
    if cache is not None:
        raise ValueError(f"refusing to save the {kind} into {folder}: it lies in the Hugging Face Hub cache ({cache}), "
                         "which hf-ada never modifies; save to another folder")
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"cannot save the {kind} to {folder}: it is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    with _artifact_errors(), FolderLock(folder, shared=False, timeout=lock_timeout, what=kind):
        _recover_locked(folder, kind)
        _refuse_other_kinds(folder, kind)
        problems: list[str] = []
        old = _old_artifact(folder, kind, config_name, overwrite, problems)
        staging = _staging_dir(folder, kind)
        os.mkdir(staging)
        try:
            payload = write(staging)
            if not isinstance(payload, dict):
                raise TypeError(f"the writer of a {kind} must return its config as a dict, got {type(payload).__name__}")
            if os.path.lexists(staging / config_name):
                raise RuntimeError(f"the writer of a {kind} must not write {config_name} itself")
            names, _ = tree_entries(staging)
            for name in names:
                _check_allowed(kind, name, f"the writer of a {kind}")
            _normal_permissions(staging, names)
            foreign = []
            for name in [*names, config_name]:
                destination = member_path(folder, name, where=f"the {kind} being saved", must_exist=False)
                if os.path.lexists(destination) and name not in old:
                    foreign.append(name)
            if foreign:
                raise FileExistsError(
                    f"saving the {kind} into {folder} would overwrite {foreign}, which are not (or no longer) files of "
                    f"a saved {kind}; move them away or choose an empty or new folder"
                    + "".join(f"\n  - {problem}" for problem in problems)
                )
            files = {n: {"size": (staging / n).stat().st_size, "sha256": sha256_file(staging / n)} for n in names}
            payload = {**payload, ARTIFACT_KEY: {"kind": kind, "files": files}}
            write_json(staging / config_name, payload)
            config_entry = {"size": (staging / config_name).stat().st_size,
                            "sha256": sha256_file(staging / config_name)}
            remove = {n: entry for n, entry in old.items() if entry is not None and n not in files}
            replace = {n: entry for n, entry in old.items() if entry is not None and n in files}
            commit = {"version": 2, "config": config_name, "files": {**files, config_name: config_entry},
                      "replace": replace, "remove": remove}
            with atomic_file(staging / _COMMIT_NAME) as handle:
                json.dump(commit, handle)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            if not os.path.lexists(staging / _COMMIT_NAME):
                with contextlib.suppress(OSError, UnsafePathError):
                    _discard(staging)
            raise
        _roll_forward(folder, staging, kind, verified=True)
    logger.info("Saved %s to %s", kind, folder)
    return folder


def _normal_permissions(staging: Path, names: list[str]) -> None:
    """Give staged files and folders the permissions a plain ``open()`` / ``mkdir()`` would (some writers,
    e.g. safetensors, create files 0600)."""
    file_mode, folder_mode = default_mode(), default_mode(folder=True)
    for name in names:
        os.chmod(staging / name, file_mode)
    for path in [staging, *(p for p in staging.rglob("*") if p.is_dir() and not p.is_symlink())]:
        os.chmod(path, folder_mode)


# ---------------------------------------------------------------------------------------------- loading
def _record(folder: Path, kind: str, config_name: str, links_into: Path | None) -> tuple[Path, dict, dict]:
    """The config path, payload (record removed) and checked manifest of the artifact in ``folder``."""
    try:
        config_path = member_path(folder, config_name, where="the load", links_into=links_into)
    except FileNotFoundError:
        raise ArtifactError(f"{folder} is not a saved {kind}: {config_name} is missing") from None
    payload = _read_config(config_path, follow_symlinks=links_into is not None)
    record = payload.pop(ARTIFACT_KEY, None)
    if not isinstance(record, dict) or record.get("kind") != kind:
        found = record.get("kind") if isinstance(record, dict) else "no hf-ada artifact record"
        raise ArtifactError(f"{config_path} is not the config of an hf-ada {kind} (found: {found})")
    files = record.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(f"{config_path}: the artifact record lists no files")
    for name, expected in files.items():
        try:
            _check_allowed(kind, name, str(config_path))
        except UnsafePathError as err:
            raise ArtifactError(f"{err} (outside the folder or not an artifact file)") from err
        if name == config_name or not _valid_entry(expected):
            raise ArtifactError(f"{config_path}: malformed entry for {name!r}")
    return config_path, payload, files


def _verify(folder: Path, kind: str, config_name: str, links_into: Path | None) -> dict[str, Any]:
    config_path, payload, files = _record(folder, kind, config_name, links_into)
    for name, expected in files.items():
        try:
            path = member_path(folder, name, where=str(config_path), links_into=links_into)
        except FileNotFoundError:
            raise ArtifactError(f"{folder}: {name} is missing (the {kind} was saved with it)") from None
        size = os.stat(path).st_size
        if size != expected["size"]:
            raise ArtifactError(
                f"{folder}: {name} has {size} bytes, but {config_name} was saved with {expected['size']}: the "
                "folder mixes files of different saves, or the file was changed"
            )
        if name.endswith(".json") and size <= MAX_JSON_BYTES:
            data = Path(path).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest == expected["sha256"]:
                check_json_depth(data.decode("utf-8", errors="replace"), what=f"{folder}/{name}")
        else:
            digest = sha256_file(path)
        if digest != expected["sha256"]:
            raise ArtifactError(
                f"{folder}: {name} differs from the file saved with {config_name} (SHA-256 mismatch): the folder "
                "mixes files of different saves, or the file was changed"
            )
    return payload


@contextlib.contextmanager
def reading(folder: str | os.PathLike, *, kind: str, config_name: str,
            lock_timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Check the artifact of ``kind`` in ``folder`` and yield its config payload (the record removed), holding the
    folder's shared lock until the block ends, so files read inside the block belong to the verified save.

    An interrupted save whose owner is gone is finished first (when the folder is writable); a Hub cache
    snapshot is read as it is. Raises :class:`ArtifactError` when the config is missing, corrupt, of another
    kind, names an unsafe entry, or any bound file is missing or differs in size or SHA-256 from what was saved.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist or is not a folder")
    cache = hub_cache_root(folder)
    with _artifact_errors():
        if cache is not None:
            yield _verify(folder, kind, config_name, cache / "blobs")
            return
        staging = _staging_dir(folder, kind)
        for _ in range(5):
            recover(folder, kind, lock_timeout=lock_timeout)
            lock = FolderLock(folder, shared=True, timeout=lock_timeout, what=kind)
            with lock:
                if lock.held and _staging_exists(staging):
                    continue  # a save died between our check and our lock: recover, then read
                yield _verify(folder, kind, config_name, None)
                return
        raise ArtifactError(f"{folder}: an interrupted save of the {kind} keeps reappearing; try again")


def read_artifact(folder: str | os.PathLike, *, kind: str, config_name: str,
                  lock_timeout: float | None = None) -> dict[str, Any]:
    """Check the artifact of ``kind`` in ``folder`` and return its config payload (see :func:`reading`)."""
    with reading(folder, kind=kind, config_name=config_name, lock_timeout=lock_timeout) as payload:
        return payload


@dataclass
class ArtifactSnapshot:
    """An artifact's files opened for reading: each handle keeps reading the bytes it had when opened (a re-save
    moves new files in, it never writes into these), so uploading from it publishes exactly one save.

    :meth:`source` gives a path that reads through the open handle (``/proc/self/fd/N``) where the system has
    one, so libraries that want paths (``hf_xet``) read the snapshot too; elsewhere the file's own path, and
    :meth:`check_unchanged` then refuses a folder re-saved meanwhile."""

    folder: Path
    kind: str
    config_name: str
    config_bytes: bytes
    entries: dict[str, dict[str, Any]]
    handles: dict[str, BinaryIO] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    _stats: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    _config_id: tuple[int, int] = (0, 0)
    _by_path: bool = False

    def source(self, name: str) -> str:
        """A path reading the snapshot's bytes of ``name`` (see the class docstring)."""
        through_handle = f"/proc/self/fd/{self.handles[name].fileno()}"
        if os.path.isfile(through_handle):
            return through_handle
        self._by_path = True
        return str(self.paths[name])

    def check_unchanged(self) -> None:
        """Raise :class:`ArtifactError` if an opened file was modified in place (or, when files were read by path,
        replaced); log when the folder was re-saved meanwhile (the snapshot holds the complete earlier save)."""
        for name, handle in self.handles.items():
            info = os.fstat(handle.fileno())
            if (info.st_size, info.st_mtime_ns) != self._stats[name][:2]:
                raise ArtifactError(f"{self.folder}: {name} was modified in place while it was read; nothing was "
                                    "published, try again")
            if self._by_path:
                try:
                    current = os.lstat(self.paths[name])
                    same_file = (current.st_ino, current.st_dev) == self._stats[name][2:]
                except OSError:
                    same_file = False
                if not same_file:
                    raise ArtifactError(f"{self.folder} was re-saved while it was being pushed; nothing was "
                                        "published, push again")
        try:
            info = os.stat(self.folder / self.config_name)
            current_config = (info.st_ino, info.st_dev)
        except OSError:
            current_config = (0, 0)
        if current_config != self._config_id:
            logger.warning("%s was re-saved while it was being pushed; the push publishes the complete earlier save",
                           self.folder)


def _find_kind(folder: Path) -> tuple[str, str]:
    """The (kind, config name) of the artifact in ``folder``, from the config files of the known kinds only."""
    found = [(kind, name) for kind, (name, _) in sorted(_KINDS.items()) if recorded_kind(folder / name) == kind]
    if not found:  # no artifact class of this kind imported here: look at the folder's own small JSON files
        with os.scandir(folder) as entries:
            candidates = sorted(e.name for e in entries if e.name.endswith(".json") and e.is_file(follow_symlinks=False))
        for name in candidates[:64]:
            kind = recorded_kind(folder / name, max_bytes=1 << 20)
            if kind is not None:
                found.append((kind, name))
    if len(found) != 1:
        known = ", ".join(f"{k} ({n})" for k, (n, _) in sorted(_KINDS.items())) or "none loaded"
        what = "no" if not found else "more than one"
        raise ArtifactError(f"{folder} holds {what} saved hf-ada artifact (known kinds: {known}); pass kind= and "
                            "config_name=")
    return found[0]


@contextlib.contextmanager
def open_snapshot(folder: str | os.PathLike, *, kind: str | None = None, config_name: str | None = None,
                  lock_timeout: float | None = None) -> Iterator[ArtifactSnapshot]:
    """Open the manifest's files of the artifact in ``folder`` (and read its config) under the folder's shared lock;
    yield an :class:`ArtifactSnapshot`. Only the config and the files it binds are opened: nothing else in the
    folder (notes, tokens, checkpoints) is read. Sizes are checked here; SHA-256 by whoever reads the handles."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist or is not a folder")
    with _artifact_errors():
        if kind is None or config_name is None:
            kind, config_name = _find_kind(folder)
        cache = hub_cache_root(folder)
        links_into = cache / "blobs" if cache is not None else None
        with contextlib.ExitStack() as handles:
            with contextlib.ExitStack() as locked:
                if cache is None:
                    recover(folder, kind, lock_timeout=lock_timeout)
                    locked.enter_context(FolderLock(folder, shared=True, timeout=lock_timeout, what=kind))
                snapshot = _open_files(folder, kind, config_name, links_into, handles)
            yield snapshot  # the lock is released: handles keep the verified save while a new one may be written


def _open_files(folder: Path, kind: str, config_name: str, links_into: Path | None,
                handles: contextlib.ExitStack) -> ArtifactSnapshot:
    config_path, _, files = _record(folder, kind, config_name, links_into)
    config_handle = handles.enter_context(open(config_path, "rb"))
    snapshot = ArtifactSnapshot(folder, kind, config_name, config_handle.read(), files)
    info = os.fstat(config_handle.fileno())
    snapshot._config_id = (info.st_ino, info.st_dev)
    for name, expected in files.items():
        try:
            path = member_path(folder, name, where=str(config_path), links_into=links_into)
        except FileNotFoundError:
            raise ArtifactError(f"{folder}: {name} is missing (the {kind} was saved with it)") from None
        handle = handles.enter_context(open(path, "rb"))
        info = os.fstat(handle.fileno())
        if info.st_size != expected["size"]:
            raise ArtifactError(f"{folder}: {name} has {info.st_size} bytes, but {config_name} was saved with "
                                f"{expected['size']}: the folder mixes files of different saves")
        snapshot.handles[name] = handle
        snapshot.paths[name] = path
        snapshot._stats[name] = (info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev)
    return snapshot


