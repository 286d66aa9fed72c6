"""One-line notices that a user must see even when their script never configured :mod:`logging`.

``hf_ada`` installs a ``NullHandler`` (library convention), so a plain ``logger.warning`` is swallowed in a
script without logging configuration. :func:`notice` logs normally and, only when no real handler would
receive the record, also writes the line to stderr (prefixed ``hf-ada:``), the way Python's own "last
resort" handler would have without the ``NullHandler``.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["notice"]


def _has_real_handler(logger: logging.Logger, level: int) -> bool:
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, logging.NullHandler) and level >= handler.level:
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def notice(logger: logging.Logger, message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log ``message % args`` at ``level`` on ``logger``; print it to stderr if no handler would show it."""
    if not logger.isEnabledFor(level):
        return
    logger.log(level, message, *args)
    if not _has_real_handler(logger, level):
        print(f"hf-ada: {message % args if args else message}", file=sys.stderr, flush=True)
