"""Run an unmodified Trainer script with Adan registered: ``python -m hf_ada.run SCRIPT.py ARGS...``.

``import hf_ada`` is all a script needs for ``--optim adan``; this launcher does that import, then runs
the script (or, with ``-m``, a module) as ``__main__`` with the remaining arguments, in the same process.
It composes with the usual launchers::

    hf-ada run run_glue.py --optim adan ...
    python -m hf_ada.run run_glue.py --optim adan ...
    accelerate launch --multi_gpu --num_processes 2 -m hf_ada.run run_glue.py --optim adan ...
    torchrun --nproc_per_node 2 -m hf_ada.run run_glue.py --optim adan ...
    python -m hf_ada.run -m some_package.train --optim adan ...
"""

from __future__ import annotations

import os
import runpy
import sys

USAGE = """usage: hf-ada run [-h] SCRIPT.py [ARGS ...]
       hf-ada run -m MODULE [ARGS ...]

Run a Trainer script (or module) as __main__ after registering hf-ada (so `--optim adan` is valid).
Works under `accelerate launch -m hf_ada.run ...` and `torchrun -m hf_ada.run ...`."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``hf-ada run`` and ``python -m hf_ada.run``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    import hf_ada  # noqa: F401  (registers optim="adan" and the other integrations)

    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            raise SystemExit(2)
        module, rest = argv[1], argv[2:]
        sys.argv = [module, *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    script, rest = argv[0], argv[1:]
    if not os.path.isfile(script):
        print(f"hf-ada run: no such script: {script!r}", file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [script, *rest]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
