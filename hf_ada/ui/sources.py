"""Reading what the app shows: data files, Hub repos and artifact folders, every failure as one :class:`UIError`.

The app only reads: nothing here writes into a folder it is given.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["UIError", "describe_error", "load_rows", "is_local", "find_artifact_subfolder", "DATA_SUFFIXES"]

#: Data files the app reads, by suffix, and the ``datasets`` builder that reads them.
DATA_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}


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
    Hub dataset id; anything else raises :class:`UIError` naming ``what``."""
    import datasets

    path = Path(spec).expanduser()
    try:
        if path.is_file():
            builder = DATA_SUFFIXES.get(path.suffix.lower())
            if builder is None:
                raise UIError(f"{what} {path.name}: a data file must end in one of {', '.join(sorted(DATA_SUFFIXES))}")
            return datasets.load_dataset(builder, data_files=str(path), split="train")
        if path.is_dir():
            if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
                loaded = datasets.load_from_disk(str(path))
                if isinstance(loaded, datasets.DatasetDict):
                    if split not in loaded:
                        raise UIError(f"{what} {spec} has no split {split!r}; its splits are {sorted(loaded)}")
                    loaded = loaded[split]
                return loaded
            raise UIError(f"{what} {spec} is a folder but not a saved dataset (no dataset_info.json); give a "
                          f"data file ({', '.join(sorted(DATA_SUFFIXES))}) or a save_to_disk folder")
        if is_local(spec):
            raise UIError(f"{what} {spec}: no such file or folder")
        return datasets.load_dataset(str(spec), split=split)
    except UIError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one line in the page
        raise UIError(f"{what} {spec} could not be read: {describe_error(err)}") from err


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
