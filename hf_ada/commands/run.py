"""``hf-ada run SCRIPT.py ARGS...``: run an unmodified Trainer script with Adan registered.

``import hf_ada`` is all a script needs for ``--optim adan``; this launcher does that import, then runs
the script (or, with ``-m``, a module) as ``__main__`` with the remaining arguments, in the same process.
It composes with the usual launchers (``hf_ada.run`` is the module door they take)::

    hf-ada run run_glue.py --optim adan ...
    python -m hf_ada.run run_glue.py --optim adan ...
    accelerate launch --multi_gpu --num_processes 2 -m hf_ada.run run_glue.py --optim adan ...
    torchrun --nproc_per_node 2 -m hf_ada.run run_glue.py --optim adan ...
    python -m hf_ada.run -m some_package.train --optim adan ...

It also warns once when a Trainer in the script would report a loss that depends on the number of
processes (see :func:`hf_ada.commands.trainer.warn_on_process_dependent_loss`).
"""

from __future__ import annotations

import os
import runpy
import sys

from . import command
from ._base import UsageError

__all__ = ["main", "launch"]

USAGE = """usage: hf-ada run [-h] SCRIPT.py [ARGS ...]
       hf-ada run -m MODULE [ARGS ...]

Run a Trainer script (or module) as __main__ after registering hf-ada (so `--optim adan` is valid).
Works under `accelerate launch -m hf_ada.run ...` and `torchrun -m hf_ada.run ...`. An error raised by
hf-ada's own checks (e.g. a bad --optim_args key) is one line; `hf-ada --debug run ...` shows its traceback."""


def launch(argv: list[str]) -> int:
    """Run ``SCRIPT.py ARGS`` or ``-m MODULE ARGS`` as ``__main__`` with hf-ada registered."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "-m" and len(argv) < 2:
        raise UsageError("-m needs a MODULE name")
    if argv[0] != "-m" and not os.path.isfile(argv[0]):
        raise FileNotFoundError(f"SCRIPT {argv[0]!r}: no such file")
    import hf_ada  # noqa: F401  (registers optim="adan" and the other integrations)

    from .trainer import warn_on_process_dependent_loss

    warn_on_process_dependent_loss()
    if argv[0] == "-m":
        module, rest = argv[1], argv[2:]
        sys.argv = [module, *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    script, rest = argv[0], argv[1:]
    sys.argv = [script, *rest]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


main = command("run", "run a Trainer script (or -m module) with --optim adan registered",
               own_arguments=False)(launch)
