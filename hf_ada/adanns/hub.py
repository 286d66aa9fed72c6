"""Where AdANNS index folders live in Hub dataset repos; all transfers go through :mod:`hf_ada.common.hub`."""

from __future__ import annotations

import os
from pathlib import Path

from ..common.artifact import check_name
from ..common.hub import looks_like_path

__all__ = ["default_path_in_repo", "index_subfolder"]


def default_path_in_repo(index_name: str) -> str:
    """Where an index lives inside a dataset repo unless told otherwise: ``adanns/<index_name>``."""
    return f"adanns/{check_name(index_name, 'index name')}"


def index_subfolder(index_name: str, repo_id_or_path: str | os.PathLike, subfolder: str | None) -> str | None:
    """The subfolder to read: the given one, none for a local folder, else ``adanns/<index_name>``."""
    if subfolder is not None:
        return subfolder
    if Path(repo_id_or_path).expanduser().is_dir() or looks_like_path(repo_id_or_path):
        return None
    return default_path_in_repo(index_name)
