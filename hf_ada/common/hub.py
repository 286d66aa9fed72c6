"""Hub I/O shared by every hf-ada artifact, through ``huggingface_hub`` only.

* :func:`push_folder` uploads a saved artifact folder (creating the repo if needed) and turns every
  transport or server failure into one :class:`HubError` with a readable message. The local folder is
  only read, never modified, so a failed push leaves it intact and reusable.
* :func:`resolve_folder` turns "a local folder or a repo id" into a local folder, downloading a snapshot
  when needed (honouring ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, tokens and revisions).
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

from huggingface_hub import create_repo, snapshot_download, upload_folder
from huggingface_hub.errors import HfHubHTTPError

logger = logging.getLogger(__name__)

__all__ = ["HubError", "looks_like_path", "push_folder", "resolve_folder"]

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


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    path_in_repo: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to it; return the commit URL.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        HubError: the repo could not be created or the upload failed (server down, 4xx/5xx, interrupted
            transfer). The local folder is untouched in every case.
    """
    _check_repo_type(repo_type)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder to push does not exist: {folder}")
    try:
        create_repo(repo_id, repo_type=repo_type, token=token, private=private, exist_ok=True)
        if revision is not None:
            from huggingface_hub import create_branch

            create_branch(repo_id, repo_type=repo_type, branch=revision, token=token, exist_ok=True)
        info = upload_folder(
            repo_id=repo_id,
            repo_type=repo_type,
            folder_path=str(folder),
            path_in_repo=path_in_repo,
            token=token,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with hf-ada",
            create_pr=create_pr,
        )
    except (*_HUB_FAILURES, RuntimeError) as err:
        raise HubError(
            f"Pushing {folder} to {repo_type} repo {repo_id!r} failed: {_describe(err)}. The local copy at {folder} is "
            "intact; fix the cause and push again."
        ) from err
    logger.info("Pushed %s to %s (%s)", folder, repo_id, info)
    return str(info)


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
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (subfolder={subfolder!r} of {path_or_repo_id!r})")
    return folder
