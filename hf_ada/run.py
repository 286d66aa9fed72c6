"""``python -m hf_ada.run SCRIPT.py ARGS...``: the module door of ``hf-ada run`` for launchers
(``accelerate launch -m hf_ada.run ...``, ``torchrun -m hf_ada.run ...``); see :mod:`hf_ada.commands.run`."""

from __future__ import annotations

import sys

from .commands import run_main
from .commands.run import launch

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``SCRIPT.py ARGS`` (or ``-m MODULE ARGS``) with hf-ada registered; return the exit status."""
    return run_main(launch, argv, prog="hf-ada run", strip_debug=False, only_own_errors=True)


if __name__ == "__main__":
    sys.exit(main())
