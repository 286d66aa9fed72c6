"""An inter-process reader / writer lock of one artifact folder.

Saves and crash recovery hold it exclusively, loads and pushes share it, so a reader never sees (or cleans up)
a save in progress. It is an advisory lock (``flock`` on POSIX, :mod:`filelock` elsewhere) on a hidden
``.hf-ada.lock`` file in the folder, opened without following links; the last holder removes the file. A
folder where the file cannot be created (a read-only mount) is read without a lock: nobody can save there.

    with FolderLock(folder, shared=True):
        ...  # read the artifact
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from pathlib import Path
from types import TracebackType

from .paths import UnsafePathError

logger = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "FolderLock", "FolderLockTimeout", "check_lock_timeout", "default_timeout"]

LOCK_NAME = ".hf-ada.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class FolderLockTimeout(TimeoutError):
    """Another process kept the artifact folder locked longer than the timeout allowed."""


def default_timeout() -> float:
    """Seconds to wait for a folder's lock: ``$HF_ADA_LOCK_TIMEOUT``, else 300."""
    value = os.environ.get("HF_ADA_LOCK_TIMEOUT", "300")
    try:
        seconds = float(value)
    except ValueError as err:
        raise ValueError(f"HF_ADA_LOCK_TIMEOUT must be a number of seconds, got {value!r}") from err
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"HF_ADA_LOCK_TIMEOUT must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def check_lock_timeout(timeout: object) -> float:
    """``timeout`` as seconds, if it is a finite number >= 0 (else ``ValueError`` naming ``lock_timeout``)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout < float("inf"):
        raise ValueError(f"lock_timeout must be a finite number of seconds >= 0 (or None), got {timeout!r}")
    return float(timeout)


class FolderLock:
    """Hold ``folder``'s lock, shared (readers) or exclusive (a save, a recovery), waiting at most ``timeout``
    seconds (default :func:`default_timeout`) before raising :class:`FolderLockTimeout`.

    ``held`` is ``False`` when the folder cannot hold a lock file (read-only) and ``shared=True``: the caller
    then reads without one. An exclusive lock that cannot be created raises the ``OSError``.
    """

    def __init__(self, folder: str | os.PathLike, *, shared: bool, timeout: float | None = None,
                 what: str = "artifact") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.shared = shared
        self.timeout = default_timeout() if timeout is None else check_lock_timeout(timeout)
        self.what = what
        self.held = False
        self._fd: int | None = None
        self._filelock = None

    # -- acquiring
    def __enter__(self) -> FolderLock:
        if fcntl is None:  # pragma: no cover - Windows: an exclusive filelock for readers and writers alike
            self._enter_filelock()
            return self
        deadline = time.monotonic() + self.timeout
        delay = 0.002
        while True:
            fd = self._open()
            if fd is None:
                return self
            try:
                mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
                while True:
                    try:
                        fcntl.flock(fd, mode)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise FolderLockTimeout(self._timeout_message()) from None
                        time.sleep(delay)
                        delay = min(delay * 2, 0.05)
                    except OSError as err:  # a file system without flock: go on unlocked, say so
                        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                            raise
                        logger.warning("%s does not support file locks (%s); %s is used unlocked", self.folder,
                                       err, self.what)
                        os.close(fd)
                        return self
                if self._same_file(fd):
                    self._fd, self.held = fd, True
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the last holder removed the file meanwhile: lock the new one

    def _open(self) -> int | None:
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as err:
            if err.errno == errno.ELOOP or os.path.islink(self.path):
                raise UnsafePathError(
                    f"{self.path} is a symbolic link; hf-ada never follows links in an artifact folder: remove it"
                ) from err
            if err.errno in (errno.EISDIR, errno.ENXIO, errno.ENOTDIR):
                raise UnsafePathError(f"{self.path} is not a regular file; it was left in place, remove it by "
                                      "hand") from err
            if err.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise
            if not self.shared:
                raise PermissionError(err.errno, f"cannot lock {self.folder} for a save: the folder is not writable "
                                      f"({err.strerror})", str(self.path)) from err
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
            except FileNotFoundError:
                logger.debug("%s is read-only: reading the %s without a lock", self.folder, self.what)
                return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePathError(f"{self.path} is not a regular file; it was left in place, remove it by hand")
        return fd

    def _same_file(self, fd: int) -> bool:
        try:
            current = os.lstat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)

    def _timeout_message(self) -> str:
        action = "read" if self.shared else "save into"
        return (f"could not {action} {self.folder}: another process held its lock ({self.path}) for more than "
                f"{self.timeout:g} s (a save or load of the {self.what} in progress); try again later, or raise "
                "HF_ADA_LOCK_TIMEOUT")

    def _enter_filelock(self) -> None:  # pragma: no cover - Windows
        import filelock

        if os.path.islink(self.path):
            raise UnsafePathError(f"{self.path} is a symbolic link; hf-ada never follows links in an artifact folder")
        self._filelock = filelock.FileLock(str(self.path), timeout=self.timeout)
        try:
            self._filelock.acquire()
        except filelock.Timeout as err:
            raise FolderLockTimeout(self._timeout_message()) from err
        except OSError:
            if not self.shared:
                raise
            self._filelock = None
            return
        self.held = True

    # -- releasing
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        """Release the lock; the last holder removes the lock file."""
        if self._filelock is not None:  # pragma: no cover - Windows
            self._filelock.release()
            self._filelock = None
        fd, self._fd = self._fd, None
        self.held = False
        if fd is None:
            return
        try:
            try:  # nobody else holds it: remove the file (waiters notice and lock the next one)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return
            if self._same_file(fd):
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
        finally:
            os.close(fd)
