"""Hub I/O shared by every hf-ada artifact, through ``huggingface_hub`` only.

* :func:`push_folder` uploads exactly the saved artifact in a folder (its config and the files it binds,
  nothing else; creating the repo if needed) and turns every transport or server failure into one
  :class:`HubError` with a readable message. The local folder is only read, never modified.
* :class:`PushOptions`: the Hub options of every push, defined once.
* :func:`resolve_folder` turns "a local folder or a repo id" into a local folder, downloading a snapshot
  when needed (honouring ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, tokens and revisions).
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from huggingface_hub import create_repo, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from .folder import ArtifactError, open_snapshot
from .paths import UnsafePathError, check_member_name

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

__all__ = ["HubError", "PushOptions", "check_push_options", "looks_like_path", "push_folder", "resolve_folder"]

REPO_TYPES = ("model", "dataset", "space")


class HubError(RuntimeError):
    """A Hub upload or download failed; the message names the repo and the cause."""


def _client_errors() -> tuple[type[BaseException], ...]:
    """Connection errors of the HTTP client under ``huggingface_hub`` (httpx2 in 2.x, httpx in 1.x).

    They are not ``OSError`` subclasses: a dropped or refused connection surfaces as one of these.
    """
    errors: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module_name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


# ValueError: malformed server replies. RuntimeError: huggingface_hub wraps a failed LFS upload in one.
_HUB_FAILURES: tuple[type[BaseException], ...] = (HfHubHTTPError, OSError, ValueError, *_client_errors())


def _describe(err: BaseException) -> str:
    """``err`` followed by the causes it wraps that add information (huggingface_hub wraps a failed LFS upload
    in a ``RuntimeError`` whose own text does not say why)."""
    text = str(err).strip() or type(err).__name__
    if isinstance(err, _client_errors()) and not isinstance(err, HfHubHTTPError):
        text = f"no answer from the Hub ({type(err).__name__}: {text})"
    cause = None if isinstance(err, HfHubHTTPError) else err.__cause__  # HfHubHTTPError's text is complete
    while cause is not None:
        if str(cause).strip() and str(cause).strip() not in text:
            text += f" (cause: {str(cause).strip()})"
        cause = None if isinstance(cause, HfHubHTTPError) else cause.__cause__
    return text


def _check_repo_type(repo_type: str) -> None:
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")


class PushOptions(TypedDict, total=False):
    """The Hub options every hf-ada push takes (``push_to_hub``, ``save_pretrained(push_to_hub=True)``,
    :func:`push_folder`), defined once.

    Keys: ``path_in_repo`` (folder inside the repo; default: its root), ``commit_message``, ``private`` (for a
    repo created by the push), ``token``, ``revision`` (a branch, created if needed), ``create_pr``.
    """

    path_in_repo: str | None
    commit_message: str | None
    private: bool | None
    token: str | bool | None
    revision: str | None
    create_pr: bool


_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "path_in_repo": (str, type(None)), "commit_message": (str, type(None)), "private": (bool, type(None)),
    "token": (str, bool, type(None)), "revision": (str, type(None)), "create_pr": (bool,),
}


def check_push_options(options: dict[str, Any]) -> PushOptions:
    """Return ``options`` if every key is a :class:`PushOptions` key with a value of its type (else ``TypeError``
    / ``ValueError`` naming it); ``path_in_repo`` must be a relative path of plain names."""
    for key, value in options.items():
        if key not in _OPTION_TYPES:
            raise TypeError(f"unknown push option {key!r}; allowed: {sorted(_OPTION_TYPES)}")
        if not isinstance(value, _OPTION_TYPES[key]):
            allowed = " or ".join("None" if t is type(None) else t.__name__ for t in _OPTION_TYPES[key])
            raise TypeError(f"{key} must be {allowed}, got {value!r}")
    path = options.get("path_in_repo")
    if path not in (None, "", "."):
        check_member_name(path.strip("/"), "path_in_repo")
    return options  # type: ignore[return-value]


def _repo_path(prefix: str | None, name: str) -> str:
    prefix = (prefix or "").strip("/")
    return name if prefix in ("", ".") else f"{prefix}/{name}"


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    kind: str | None = None,
    config_name: str | None = None,
    lock_timeout: float | None = None,
    **options: Unpack[PushOptions],
) -> str:
    """Upload the saved artifact in ``folder`` to ``repo_id`` (created if needed); return the commit URL.

    Exactly the artifact is published: its config and the files the config binds (the card among them), read
    from handles opened under the folder's lock and checked against the recorded sizes and SHA-256 before
    anything is sent. Nothing else in the folder (``.env``, notes, checkpoints) is read. The artifact's kind
    is found from its config unless ``kind`` / ``config_name`` are given. A re-save of the folder during the
    upload does not mix saves (the handles keep the earlier one); a file modified in place is detected and
    nothing is committed.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        hf_ada.common.folder.ArtifactError: ``folder`` holds no verifiable artifact.
        HubError: the repo could not be created or the upload failed (server down, 4xx/5xx, interrupted
            transfer). The local folder is untouched in every case.
    """
    from huggingface_hub import CommitOperationAdd, create_commit, preupload_lfs_files

    _check_repo_type(repo_type)
    check_push_options(options)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder to push does not exist: {folder}")
    token, revision = options.get("token"), options.get("revision")
    create_pr = options.get("create_pr", False)
    with open_snapshot(folder, kind=kind, config_name=config_name, lock_timeout=lock_timeout) as snapshot:
        operations = []
        for name in snapshot.handles:  # by path, not file object: hf_xet uploads only paths and bytes
            operation = CommitOperationAdd(path_in_repo=_repo_path(options.get("path_in_repo"), name),
                                           path_or_fileobj=snapshot.source(name))
            expected = snapshot.entries[name]
            if operation.upload_info.sha256.hex() != expected["sha256"] or operation.upload_info.size != expected["size"]:
                raise ArtifactError(
                    f"{folder}: {name} differs from the file saved with {snapshot.config_name} (SHA-256 mismatch): "
                    "nothing was pushed"
                )
            operations.append(operation)
        operations.append(CommitOperationAdd(path_in_repo=_repo_path(options.get("path_in_repo"), snapshot.config_name),
                                             path_or_fileobj=snapshot.config_bytes))
        try:
            create_repo(repo_id, repo_type=repo_type, token=token, private=options.get("private"), exist_ok=True)
            if revision is not None:
                from huggingface_hub import create_branch

                create_branch(repo_id, repo_type=repo_type, branch=revision, token=token, exist_ok=True)
            preupload_lfs_files(repo_id, additions=operations, token=token, repo_type=repo_type, revision=revision,
                                create_pr=create_pr, free_memory=False)
            snapshot.check_unchanged()
            info = create_commit(
                repo_id, operations=operations, repo_type=repo_type, token=token, revision=revision,
                commit_message=options.get("commit_message") or f"Upload {snapshot.kind} with hf-ada",
                create_pr=create_pr,
            )
        except ArtifactError:
            raise
        except (*_HUB_FAILURES, RuntimeError) as err:
            raise HubError(
                f"Pushing {folder} to {repo_type} repo {repo_id!r} failed: {_describe(err)}. The local copy at {folder} "
                "is intact; fix the cause and push again."
            ) from err
    logger.info("Pushed %s to %s (%s)", folder, repo_id, info)
    return str(info)


def _refuse_links(root: Path, subfolder: str) -> None:
    """Refuse a ``subfolder`` reached through a symbolic link (it would lead out of ``root``)."""
    path = root
    for part in subfolder.split("/"):
        path = path / part
        if path.is_symlink():
            raise UnsafePathError(f"subfolder {subfolder!r}: {path} is a symbolic link; hf-ada never follows a link "
                                  "out of a folder")


def looks_like_path(value: str | os.PathLike) -> bool:
    """Whether ``value`` can only be meant as a local path, not as a Hub repo id (``name`` or ``owner/name``)."""
    if not isinstance(value, str):
        return True  # a PathLike
    if value.startswith(("/", "./", "../", "~", ".\\")) or "\\" in value or value in (".", ".."):
        return True
    parts = value.split("/")
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())


def resolve_folder(
    path_or_repo_id: str | os.PathLike,
    *,
    repo_type: str = "model",
    subfolder: str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> Path:
    """Return a local folder for ``path_or_repo_id``: the folder itself, or a downloaded Hub snapshot.

    ``subfolder`` selects a folder inside it (for an index stored next to its dataset, say). A string that
    can only be a path (absolute, ``./``, ``../``, ``~``, more than one ``/``, or ``dir/name`` whose ``dir``
    exists here) and does not exist raises :class:`FileNotFoundError` instead of a Hub look-up.
    """
    _check_repo_type(repo_type)
    if subfolder is not None:
        check_member_name(str(subfolder).strip("/"), "subfolder")
    local = Path(path_or_repo_id).expanduser()
    if local.is_dir():
        root = local
    elif looks_like_path(path_or_repo_id):
        raise FileNotFoundError(f"{path_or_repo_id} does not exist (or is not a folder)")
    else:
        try:
            root = Path(
                snapshot_download(
                    str(path_or_repo_id),
                    repo_type=repo_type,
                    revision=revision,
                    token=token,
                    cache_dir=cache_dir,
                    local_files_only=local_files_only,
                    force_download=force_download,
                    allow_patterns=None if subfolder is None else [f"{subfolder}/*", f"{subfolder}/**"],
                )
            )
        except _HUB_FAILURES as err:
            raise HubError(
                f"{path_or_repo_id!r} is neither a local folder nor a {repo_type} repo that could be "
                f"downloaded: {_describe(err)}"
            ) from err
    folder = root / subfolder if subfolder else root
    if subfolder:
        _refuse_links(root, str(subfolder).strip("/"))
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (subfolder={subfolder!r} of {path_or_repo_id!r})")
    return folder
