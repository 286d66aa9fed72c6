"""One artifact protocol for everything hf-ada saves: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

An *artifact* is a folder of files plus one JSON config file (``config.json`` for an AdANNS index,
``adanpc_config.json`` for an AdaNPC predictor) that names the artifact's kind and binds every other file
of it by size and SHA-256 (the ``"hf_ada_artifact"`` entry). That one config file is the artifact's
commit record. What this module guarantees, for every kind alike:

**Saving never destroys what it did not write.** A save writes and replaces only the artifact's own files;
everything else in the folder (a training run's checkpoints, notes, a dataset) is left untouched. It is
refused, before anything is written, when the target is a file, holds an hf-ada artifact of another kind,
or holds files the save would overwrite that do not belong to the artifact being replaced. Replacing an
older artifact of the same kind is what ``save_pretrained`` does (``overwrite=False`` refuses that too).

**Crash-safe replacement.** New files are written into a hidden staging folder inside the target
(``.hf-ada-staging-<kind>``); when complete, a commit marker is written atomically, then the files are
moved in (the config last) and files of the older artifact that the new one lacks are removed. A save or
load that finds a staging folder *with* its marker finishes the move (roll forward); one *without* it
deletes it (the old artifact was never touched). Killed at any instant, the folder therefore reads as the
complete old or the complete new artifact.

**A load gives exactly what was saved, or refuses.** :func:`read_artifact` checks the kind and every bound
file's size and SHA-256 (hashing runs at disk speed: about 1 s per GB here) and raises
:class:`ArtifactError` naming the first file that differs, so files from two saves (a Hub commit that
raced a re-save, a swapped ``.faiss`` file) never load together. Kind-specific structural checks come on
top, in each method's loader.

Why not ``huggingface_hub.ModelHubMixin``: its ``save_pretrained`` deletes an existing ``config.json`` in
the target and writes in place, which breaks both guarantees above. :class:`HubArtifactMixin` keeps its
method names and arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeVar

from .config import ARTIFACT_KEY
from .files import atomic_file, write_json

logger = logging.getLogger(__name__)

__all__ = [
    "ARTIFACT_KEY",
    "ArtifactError",
    "HubArtifactMixin",
    "check_name",
    "read_artifact",
    "recover",
    "save_artifact",
    "sha256_file",
]

_STAGING_PREFIX = ".hf-ada-staging-"
_COMMIT_NAME = ".commit.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

T = TypeVar("T", bound="HubArtifactMixin")


class ArtifactError(ValueError):
    """A saved artifact is incomplete, inconsistent or not what was asked for; the message names the file."""


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


def _staging_dir(folder: Path, kind: str) -> Path:
    return folder / f"{_STAGING_PREFIX}{kind}"


def _files_below(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files below ``root`` (sorted), the commit marker excluded."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.name != _COMMIT_NAME:
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _safe_relative(name: Any, folder: Path) -> Path:
    """``folder / name`` for a relative name that stays inside ``folder`` (manifests are untrusted)."""
    if not isinstance(name, str) or not name:
        raise ArtifactError(f"{folder}: a file name in the manifest is not a non-empty string: {name!r}")
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise ArtifactError(f"{folder}: manifest names a file outside the folder: {name!r}")
    return folder.joinpath(*pure.parts)


def _remove_tree(root: Path) -> None:
    """Remove a staging folder hf-ada created: its files, then its (now empty) folders."""
    if not root.exists():
        return
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    root.rmdir()


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path} is not valid JSON ({err})") from err
    except UnicodeDecodeError as err:
        raise ArtifactError(f"{path} is not UTF-8 text ({err})") from err
    if not isinstance(payload, dict):
        raise ArtifactError(f"{path} must hold a JSON object, got {type(payload).__name__}")
    return payload


def _artifact_kind(path: Path) -> str | None:
    """The hf-ada kind recorded in the JSON file ``path``, or ``None`` when it is not an hf-ada config."""
    try:
        payload = _read_config(path)
    except (ArtifactError, OSError):
        return None
    entry = payload.get(ARTIFACT_KEY)
    return entry.get("kind") if isinstance(entry, dict) else None


def _roll_forward(folder: Path, staging: Path) -> None:
    """Finish a committed save: move the staged files in (config last), drop the old artifact's extra files."""
    commit = _read_config(staging / _COMMIT_NAME)
    for name in commit["files"]:
        source = _safe_relative(name, staging)
        if source.exists():  # already moved by an interrupted earlier roll-forward
            destination = _safe_relative(name, folder)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
    for name in commit["remove"]:
        with contextlib.suppress(FileNotFoundError):
            _safe_relative(name, folder).unlink()
    _remove_tree(staging)


def recover(folder: str | os.PathLike, kind: str) -> None:
    """Finish or discard what a killed save of ``kind`` left in ``folder`` (see the module docstring)."""
    staging = _staging_dir(Path(folder), kind)
    if not staging.is_dir():
        return
    if (staging / _COMMIT_NAME).is_file():
        logger.warning("Completing an interrupted save of the %s in %s", kind, folder)
        _roll_forward(Path(folder), staging)
    else:
        logger.warning("Removing the unfinished save of a %s left in %s", kind, staging)
        _remove_tree(staging)


def save_artifact(
    folder: str | os.PathLike,
    *,
    kind: str,
    config_name: str,
    write: Callable[[Path], dict[str, Any]],
    overwrite: bool = True,
    protected: tuple[str | os.PathLike, ...] = (),
) -> Path:
    """Save an artifact of ``kind`` into ``folder`` with the guarantees of this module; return ``folder``.

    ``write(staging)`` writes every file of the artifact into the (empty) staging folder and returns the
    config payload; this function adds the ``hf_ada_artifact`` record (kind + size and SHA-256 of each
    file) and writes it as ``config_name``, last. ``protected`` lists paths the save must not write into
    (the inputs being read, e.g. a dataset folder or the model being adapted).

    Raises:
        FileExistsError: ``folder`` is a file, or holds something the save would overwrite that is not this
            kind's artifact (another kind, a foreign ``config_name``, a foreign file of the same name), or an
            artifact of this kind while ``overwrite=False``.
        ValueError: ``folder`` is (or lies inside) one of ``protected``.
    """
    folder = Path(folder)
    target = folder.resolve()
    for path in protected:
        guarded = Path(path).resolve()
        if target == guarded or guarded in target.parents:
            raise ValueError(f"refusing to save the {kind} into {folder}: that is the input {path} being read")
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"cannot save the {kind} to {folder}: it is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    recover(folder, kind)
    old_files = _existing_files(folder, kind, config_name, overwrite)
    staging = _staging_dir(folder, kind)
    staging.mkdir()
    try:
        payload = write(staging)
        if not isinstance(payload, dict):
            raise TypeError(f"the writer of a {kind} must return its config as a dict, got {type(payload).__name__}")
        if (staging / config_name).exists():
            raise RuntimeError(f"the writer of a {kind} must not write {config_name} itself")
        names = _files_below(staging)
        _normal_permissions(staging, names)
        foreign = [n for n in names if (folder / n).exists() and n not in old_files]
        if foreign:
            raise FileExistsError(
                f"saving the {kind} into {folder} would overwrite {foreign}, which do not belong to a saved {kind}; "
                "choose an empty or new folder"
            )
        files = {n: {"size": (staging / n).stat().st_size, "sha256": sha256_file(staging / n)} for n in names}
        payload = {**payload, ARTIFACT_KEY: {"kind": kind, "files": files}}
        write_json(staging / config_name, payload)
        commit = {"files": [*names, config_name], "remove": sorted(set(old_files) - set(names) - {config_name})}
        with atomic_file(staging / _COMMIT_NAME) as handle:
            json.dump(commit, handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if not (staging / _COMMIT_NAME).is_file():
            _remove_tree(staging)
        raise
    _roll_forward(folder, staging)
    logger.info("Saved %s to %s", kind, folder)
    return folder


def _normal_permissions(staging: Path, names: list[str]) -> None:
    """Give staged files and folders the permissions a plain ``open()`` / ``mkdir()`` would (some writers,
    e.g. safetensors, create files 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    for name in names:
        os.chmod(staging / name, 0o666 & ~mask)
    for path in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
        os.chmod(path, 0o777 & ~mask)


def _existing_files(folder: Path, kind: str, config_name: str, overwrite: bool) -> list[str]:
    """Files of the artifact of ``kind`` already in ``folder`` (they may be replaced); refuse a foreign one."""
    for path in sorted(folder.glob("*.json")):
        other = _artifact_kind(path)
        if other is not None and other != kind:
            raise FileExistsError(
                f"{folder} holds an hf-ada {other} ({path.name}); refusing to save a {kind} over it: choose another folder"
            )
    config_path = folder / config_name
    if not config_path.exists():
        return []
    if _artifact_kind(config_path) != kind:
        raise FileExistsError(
            f"{config_path} exists and is not the config of an hf-ada {kind}; refusing to overwrite it: choose "
            "an empty or new folder"
        )
    if not overwrite:
        raise FileExistsError(f"{folder} already holds a {kind}; pass overwrite=True to replace it")
    manifest = _read_config(config_path)[ARTIFACT_KEY].get("files", {})
    return [config_name, *(str(name) for name in manifest)]


def read_artifact(folder: str | os.PathLike, *, kind: str, config_name: str) -> dict[str, Any]:
    """Check the artifact of ``kind`` in ``folder`` and return its config payload (the record removed).

    Finishes an interrupted save first (when the folder is writable). Raises :class:`ArtifactError` when
    the config is missing, corrupt, of another kind, or any bound file is missing or differs in size or
    SHA-256 from what was saved.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist or is not a folder")
    with contextlib.suppress(PermissionError, OSError):
        recover(folder, kind)
    config_path = folder / config_name
    if not config_path.is_file():
        raise ArtifactError(f"{folder} is not a saved {kind}: {config_name} is missing")
    payload = _read_config(config_path)
    record = payload.pop(ARTIFACT_KEY, None)
    if not isinstance(record, dict) or record.get("kind") != kind:
        found = record.get("kind") if isinstance(record, dict) else "no hf-ada artifact record"
        raise ArtifactError(f"{config_path} is not the config of an hf-ada {kind} (found: {found})")
    files = record.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(f"{config_path}: the artifact record lists no files")
    for name, expected in files.items():
        path = _safe_relative(name, folder)
        if not isinstance(expected, dict) or not isinstance(expected.get("size"), int):
            raise ArtifactError(f"{config_path}: malformed entry for {name!r}")
        if not path.is_file():
            raise ArtifactError(f"{folder}: {name} is missing (the {kind} was saved with it)")
        size = path.stat().st_size
        if size != expected["size"]:
            raise ArtifactError(
                f"{folder}: {name} has {size} bytes, but {config_name} was saved with {expected['size']}: the "
                "folder mixes files of different saves, or the file was changed"
            )
        if sha256_file(path) != expected.get("sha256"):
            raise ArtifactError(
                f"{folder}: {name} differs from the file saved with {config_name} (SHA-256 mismatch): the folder "
                "mixes files of different saves, or the file was changed"
            )
    return payload


@contextlib.contextmanager
def _temporary_folder(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


class HubArtifactMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for an hf-ada artifact class.

    A subclass sets :attr:`artifact_kind`, :attr:`config_name` and :attr:`repo_type`, and implements
    :meth:`_write_files` (write every file but the config into a folder, return the config payload),
    :meth:`_from_files` (build an instance from a verified folder and its payload) and
    :meth:`_render_card` (the README card, or ``None``). The card is rendered once per save, with the
    ``repo_id`` when the save is for a push.
    """

    artifact_kind: ClassVar[str]
    config_name: ClassVar[str] = "config.json"
    repo_type: ClassVar[str] = "model"

    # -- what a subclass provides
    def _write_files(self, folder: Path) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_files(cls: type[T], folder: Path, payload: dict[str, Any], **kwargs: Any) -> T:
        raise NotImplementedError

    def _render_card(self, repo_id: str | None = None) -> Any | None:
        return None

    # -- the protocol
    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        overwrite: bool = True,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        protected: tuple[str | os.PathLike, ...] = (),
        **push_to_hub_kwargs: Any,
    ) -> Path:
        """Save into ``save_directory`` (only this artifact's files are written or replaced); with
        ``push_to_hub=True`` also upload it to ``repo_id`` (default: the folder's name)."""

        def write(staging: Path) -> dict[str, Any]:
            payload = self._write_files(staging)
            card = self._render_card(repo_id)
            if card is not None:
                card.save(staging / "README.md")
            return payload

        folder = save_artifact(
            save_directory, kind=self.artifact_kind, config_name=self.config_name, write=write,
            overwrite=overwrite, protected=protected,
        )
        if push_to_hub:
            self.push_to_hub(repo_id or Path(save_directory).resolve().name, **push_to_hub_kwargs)
        return folder

    @classmethod
    def from_pretrained(
        cls: type[T],
        path_or_repo_id: str | os.PathLike,
        *,
        subfolder: str | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        **kwargs: Any,
    ) -> T:
        """Load from a local folder or a Hub repo (``repo_type`` of the class); every file is verified first."""
        from .hub import resolve_folder

        folder = resolve_folder(
            path_or_repo_id, repo_type=cls.repo_type, subfolder=subfolder, revision=revision, token=token,
            cache_dir=cache_dir, local_files_only=local_files_only, force_download=force_download,
        )
        payload = read_artifact(folder, kind=cls.artifact_kind, config_name=cls.config_name)
        return cls._from_files(folder, payload, **kwargs)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        path_in_repo: str | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        create_pr: bool = False,
    ) -> str:
        """Save into a temporary folder (card rendered for ``repo_id``) and upload it; return the commit URL.

        On failure raises :class:`hf_ada.common.hub.HubError`; nothing local is changed.
        """
        from .hub import push_folder

        with _temporary_folder(prefix="hf-ada-push-") as tmp:
            folder = self.save_pretrained(tmp / "artifact", repo_id=repo_id)
            return push_folder(
                folder, repo_id, repo_type=self.repo_type, path_in_repo=path_in_repo, token=token,
                revision=revision, private=private, create_pr=create_pr,
                commit_message=commit_message or f"Upload {self.artifact_kind} with hf-ada",
            )
