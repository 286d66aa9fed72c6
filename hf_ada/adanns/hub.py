"""Where AdANNS index folders live in Hub dataset repos; all transfers go through :mod:`hf_ada.common.hub`."""

from __future__ import annotations

import os
from pathlib import Path

from ..common.hub import resolve_folder

__all__ = ["default_path_in_repo", "resolve_index_folder"]


def default_path_in_repo(index_name: str) -> str:
    """Where an index lives inside a dataset repo unless told otherwise: ``adanns/<index_name>``."""
    return f"adanns/{index_name}"


def resolve_index_folder(
    index_name: str,
    repo_id_or_path: str | os.PathLike,
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local folder holding the index: ``repo_id_or_path`` itself (or its ``subfolder``) when it is a
    local folder, else the ``subfolder`` (default ``adanns/<index_name>``) of a downloaded dataset repo."""
    if Path(repo_id_or_path).is_dir():
        return Path(repo_id_or_path) / subfolder if subfolder else Path(repo_id_or_path)
    return resolve_folder(
        repo_id_or_path,
        repo_type="dataset",
        subfolder=subfolder or default_path_in_repo(index_name),
        revision=revision,
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
    )
