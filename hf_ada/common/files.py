"""Atomic single-file writes and bounded JSON reads.

:func:`atomic_file` writes into a temporary sibling file and moves it into place with :func:`os.replace`,
so a crash or an exception while writing leaves the previous content of the destination untouched.
:func:`read_json` / :func:`loads_json` parse JSON from untrusted folders: a regular file only (never a FIFO
or a device), bounded in size and nesting depth, with a :class:`JsonLimitError` naming the file otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["JsonLimitError", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "atomic_file", "check_json_depth", "default_mode",
           "loads_json", "read_json", "read_regular_file", "write_json"]

#: deepest nesting of arrays / objects a JSON file from an artifact folder may have
MAX_JSON_DEPTH = 64
#: largest JSON file read from an artifact folder
MAX_JSON_BYTES = 64 << 20

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JsonLimitError(json.JSONDecodeError):
    """A JSON text is not a regular file, too large or nested too deeply (a ``JSONDecodeError``, so code that
    already handles malformed JSON handles this too)."""

    def __init__(self, message: str, doc: str = "", pos: int = 0) -> None:
        super().__init__(message, doc, pos)
        self.args = (message,)

    def __str__(self) -> str:
        return self.args[0]


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file next to ``target`` for writing; rename it onto ``target`` on success."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    os.chmod(tmp_name, default_mode())  # mkstemp creates 0600; a saved file gets the usual permissions
    try:
        with open(tmp_name, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def default_mode(folder: bool = False) -> int:
    """The permissions a plain ``open()`` (or ``mkdir()``, with ``folder``) gives under the process's umask:
    for files made with ``tempfile.mkstemp`` / ``mkdtemp`` (0600 / 0700) that are moved into place."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON (atomically)."""
    with atomic_file(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")


def check_json_depth(text: str, max_depth: int = MAX_JSON_DEPTH, what: str = "JSON text") -> None:
    """Raise :class:`JsonLimitError` if ``text`` nests arrays / objects deeper than ``max_depth`` (checked on the
    text, before a recursive parser could hit Python's recursion limit)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = 0
    for char in brackets:
        depth += 1 if char in "[{" else -1
        if depth > max_depth:
            raise JsonLimitError(f"{what} is nested deeper than {max_depth} levels; refusing to parse it")


def loads_json(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, what: str = "JSON text") -> Any:
    """``json.loads`` for untrusted text: nesting deeper than ``max_depth`` raises :class:`JsonLimitError`
    (never ``RecursionError``); malformed text raises ``json.JSONDecodeError`` as usual."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    check_json_depth(text, max_depth, what)
    try:
        return json.loads(text)
    except RecursionError as err:  # a lower recursion limit than max_depth needs
        raise JsonLimitError(f"{what} is nested too deeply to parse") from err
    except json.JSONDecodeError:
        raise
    except ValueError as err:  # e.g. an integer literal beyond Python's digit limit
        raise JsonLimitError(f"{what} holds a value that cannot be parsed ({err})") from err


def read_regular_file(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES, follow_symlinks: bool = True,
                      what: str | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes`` (a FIFO or device is refused without
    blocking; ``follow_symlinks=False`` refuses a symbolic link)."""
    what = what or str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if not follow_symlinks and os.path.islink(path):
            raise JsonLimitError(f"{what} is a symbolic link; refusing to follow it") from err
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise JsonLimitError(f"{what} is not a regular file; refusing to read it")
        if info.st_size > max_bytes:
            raise JsonLimitError(f"{what} has {info.st_size} bytes, more than the {max_bytes} allowed")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JsonLimitError(f"{what} has more than the {max_bytes} bytes allowed")
    return data


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH,
              follow_symlinks: bool = True) -> Any:
    """Read a JSON file from a folder that may be untrusted: a regular file of at most ``max_bytes``, nested at
    most ``max_depth`` deep (else :class:`JsonLimitError` naming the file)."""
    data = read_regular_file(path, max_bytes=max_bytes, follow_symlinks=follow_symlinks)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise JsonLimitError(f"{path} is not UTF-8 text ({err})") from err
    return loads_json(text, max_depth=max_depth, what=str(path))
