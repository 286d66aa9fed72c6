"""Reading what the app shows: data files, Hub repos and artifact folders, every failure as one :class:`UIError`.

The app only reads: nothing here writes into a folder it is given.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["UIError", "describe_error", "load_rows", "is_local", "find_artifact_subfolder"]


class UIError(ValueError):
    """Bad input for the app: the message is shown in the page as it is (one or two sentences, no traceback)."""


def describe_error(err: BaseException) -> str:
    """One readable line for an unexpected failure (type and message, no traceback)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, UIError) else f"{type(err).__name__}: {text}"


def is_local(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names something on this machine (an existing path, or a string that can only be a path)."""
    from ..common.hub import looks_like_path

    return Path(spec).expanduser().exists() or looks_like_path(str(spec))


def load_rows(spec: str | os.PathLike, *, what: str, split: str = "train") -> Any:
    """A ``datasets.Dataset`` from a data file (parquet/csv/json/jsonl/txt), a ``save_to_disk`` folder or a
    Hub dataset id (read as ``hf-ada``'s commands read them); any failure raises :class:`UIError` naming
    ``what``."""
    from ..commands._base import load_dataset

    try:
        return load_dataset(str(spec), flag=what, split=split)
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one line in the page
        text = describe_error(err)
        raise UIError(text if text.startswith(what) or what in text else f"{what} {spec}: {text}") from err


def find_artifact_subfolder(repo_id: str, *, repo_type: str, prefix: str, revision: str | None = None,
                            token: str | None = None) -> str | None:
    """The folder of the one saved artifact (a ``config.json``) under ``prefix`` in a Hub repo, ``None`` for
    the repo root; :class:`UIError` when there is none or more than one."""
    from huggingface_hub import list_repo_files

    try:
        files = list_repo_files(repo_id, repo_type=repo_type, revision=revision, token=token)
    except Exception as err:  # noqa: BLE001
        raise UIError(f"the Hub {repo_type} repo {repo_id!r} could not be listed: {describe_error(err)}") from err
    if "config.json" in files and not prefix:
        return None
    folders = sorted({f.rsplit("/", 1)[0] for f in files
                      if f.endswith("/config.json") and f.startswith(prefix)})
    if not folders:
        if "config.json" in files:
            return None
        raise UIError(f"the Hub {repo_type} repo {repo_id!r} holds no saved artifact under {prefix or '/'}")
    if len(folders) > 1:
        raise UIError(f"the Hub {repo_type} repo {repo_id!r} holds several artifacts ({', '.join(folders)}); "
                      "name one with --index-subfolder")
    return folders[0]
