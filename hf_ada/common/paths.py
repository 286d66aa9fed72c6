"""Paths inside an untrusted artifact folder: names checked, links never followed out of it.

Every name an artifact's manifest or commit marker holds goes through :func:`member_path`: a relative name of
plain components, whose parents are real folders of this folder (no symbolic link anywhere on the way) and
whose real path lies under the folder. :func:`hub_cache_root` recognises a snapshot of the Hugging Face Hub
cache, which hf-ada only ever reads.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath

__all__ = ["UnsafePathError", "check_member_name", "hub_cache_root", "member_path", "tree_entries"]

_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}$")
_MAX_PARTS = 8
_MAX_ENTRIES = 100_000
_CACHE_REPO_RE = re.compile(r"^(models|datasets|spaces)--.+")


class UnsafePathError(ValueError):
    """A name or an entry of an artifact folder would lead outside it, or is not a plain file / folder."""


def check_member_name(name: object, where: str = "the manifest") -> str:
    """Return ``name`` if it is a file name an artifact may write: relative, ``/``-separated, at most 8 plain
    components of letters, digits, ``._+-`` (not starting with ``.``), no ``..``."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        raise UnsafePathError(f"{where} holds a file name that is not a non-empty string: {name!r}")
    parts = name.split("/")
    if len(parts) > _MAX_PARTS or any(not _PART_RE.match(part) or ".." in part for part in parts):
        raise UnsafePathError(
            f"{where} names {name!r}, which is not a file an hf-ada artifact writes (relative names of letters, "
            "digits, '._+-', no '..', no hidden or absolute paths)"
        )
    return name


def member_path(root: str | os.PathLike, name: str, *, where: str = "the manifest", must_exist: bool = True,
                links_into: str | os.PathLike | None = None) -> Path:
    """``root / name`` after checking that nothing on the way leaves ``root``.

    Each parent component must be a real folder (not a symbolic link); the file itself, when it exists, must be
    a regular file, not a link, unless ``links_into`` is given (a Hub cache snapshot), in which case it may be a
    link whose target lies in ``links_into``. With ``must_exist=False`` a missing file (or missing parents) is
    fine: the path is where a file may be created.
    """
    check_member_name(name, where)
    root = Path(root)
    real_root = os.path.realpath(root)
    path = root
    parts = PurePosixPath(name).parts
    for i, part in enumerate(parts):
        path = path / part
        last = i == len(parts) - 1
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            if must_exist:
                raise
            return root.joinpath(*parts)
        if stat.S_ISLNK(info.st_mode):
            target = os.path.realpath(path)
            if last and links_into is not None and _under(target, os.path.realpath(links_into)) \
                    and os.path.isfile(target):
                return path
            raise UnsafePathError(
                f"{path} is a symbolic link (to {os.readlink(path)!r}); hf-ada never follows a link in an artifact "
                "folder: it was left in place, remove it by hand"
            )
        if not last and not stat.S_ISDIR(info.st_mode):
            raise UnsafePathError(f"{path} is not a folder, but {where} names {name!r} below it")
        if last and not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{path} is not a regular file ({where} names it as one); it was left in place")
    if not _under(os.path.realpath(path), real_root):
        raise UnsafePathError(f"{where} names {name!r}, which resolves outside {root}")
    return path


def tree_entries(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The files and folders below ``root`` (relative POSIX names, folders deepest first), checking that every
    entry is a regular file or a real folder: a symbolic link, FIFO, socket or device raises
    :class:`UnsafePathError` naming it, before anything is touched."""
    root = Path(root)
    files: list[str] = []
    folders: list[str] = []
    stack = [("", 0)]
    while stack:
        prefix, depth = stack.pop()
        with os.scandir(root / prefix if prefix else root) as entries:
            for entry in entries:
                name = f"{prefix}/{entry.name}" if prefix else entry.name
                if entry.is_symlink():
                    raise UnsafePathError(
                        f"{root / name} is a symbolic link; hf-ada never follows links in an artifact folder: it was "
                        "left in place, remove it by hand"
                    )
                if entry.is_dir(follow_symlinks=False):
                    if depth >= _MAX_PARTS:
                        raise UnsafePathError(f"{root / name} is nested too deeply for an hf-ada artifact folder")
                    folders.append(name)
                    stack.append((name, depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    files.append(name)
                else:
                    raise UnsafePathError(f"{root / name} is not a regular file or folder; it was left in place")
                if len(files) + len(folders) > _MAX_ENTRIES:
                    raise UnsafePathError(f"{root} holds more than {_MAX_ENTRIES} entries")
    folders.sort(key=lambda n: n.count("/"), reverse=True)
    return sorted(files), folders


def hub_cache_root(folder: str | os.PathLike) -> Path | None:
    """The repo folder of the Hugging Face Hub cache (``models--owner--name``) that ``folder`` is a snapshot of
    (or lies in), else ``None``. Files of such a snapshot are links into the repo folder's ``blobs/``."""
    for path in dict.fromkeys((Path(os.path.abspath(folder)), Path(os.path.realpath(folder)))):
        for candidate in (path, *path.parents):
            parent = candidate.parent
            blobs = parent.parent / "blobs"
            if parent.name == "snapshots" and _CACHE_REPO_RE.match(parent.parent.name) and blobs.is_dir() \
                    and not blobs.is_symlink():
                return parent.parent
    return None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
