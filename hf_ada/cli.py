"""The ``hf-ada`` console command (``hf_ada.cli:main``); the subcommands live in :mod:`hf_ada.commands`.

``python -m hf_ada.cli ARGS`` runs it too.
"""

from __future__ import annotations

import sys

from .commands import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
