"""The ``hf-ada`` command line: a thin shell over the library.

Subcommands::

    hf-ada demo [--out DIR] [--quick]         the main job: Adan, AdANNS and AdaNPC end to end, offline
    hf-ada run SCRIPT.py ARGS...              run any Trainer script with --optim adan registered
    hf-ada index build|search|push ...        AdANNS indexes over dataset columns
    hf-ada adapt ...                          AdaNPC test-time adaptation of a classifier on a stream
    hf-ada bench NAME ARGS...                 run a benchmark of a source checkout (results to ./hf-ada-bench/)

Each has ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main"]

BENCHMARKS = {
    "adan-step": "bench_adan_step.py",
    "adan-convergence": "bench_adan_convergence.py",
    "adanns": "bench_adanns.py",
    "adanpc": "bench_adanpc.py",
}


def _run_launcher(argv: list[str]) -> int:
    from .run import main as run_main

    run_main(argv)
    return 0


def _run_demo(argv: list[str]) -> int:
    from .demo import main as demo_main

    return demo_main(argv)


def _run_index(argv: list[str]) -> int:
    from .adanns import cli as index_cli

    actions: dict[str, Callable[[list[str]], object]] = {
        "build": index_cli.build_index_cli,
        "search": index_cli.search_cli,
        "push": index_cli.push_cli,
    }
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in actions:
        print("usage: hf-ada index {build,search,push} [--help] ...")
        print("  build   build an AdANNS index over a dataset column and save it as a folder")
        print("  search  nearest rows of a dataset for text queries (or a .npy of query vectors)")
        print("  push    check a saved AdANNS index folder, then upload it into a Hub dataset repo")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"hf-ada index: unknown action {argv[0]!r}; choose one of {sorted(actions)}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    actions[argv[0]](argv[1:])
    return 0


def _run_adapt(argv: list[str]) -> int:
    from .adanpc.cli import adapt_cli

    return int(adapt_cli(argv) or 0)


def _benchmarks_dir() -> Path | None:
    """``benchmarks/`` of the source checkout this hf-ada runs from, or ``None`` (a pip install has none)."""
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    return folder if folder.is_dir() else None


BENCH_USAGE = """usage: hf-ada bench {names} [--out DIR] [ARGS ...]

Run one of the benchmarks of a source checkout of hf-ada (they are scripts in benchmarks/, not part of the
installed package: `git clone` the project and `pip install -e ".[bench]"` to run them). Each prints a table
and writes markdown, PNG and JSON results into --out, by default ./hf-ada-bench/<name>/ in the current
folder -- never over the committed benchmarks/results/ (pass --out benchmarks/results to refresh those).
`hf-ada bench NAME --help` lists a benchmark's own options.

  adan-step          Adan step time / memory vs AdamW, timm and pytorch-optimizer Adan
  adan-convergence   Adan vs AdamW loss curves (GPT-2 from scratch, fine-tuning, batch sizes)
  adanns             AdANNS vs flat / HNSW / rigid IVF / OPQ: recall vs time and FLOPs
  adanpc             AdaNPC vs no adaptation / T3A on shifted streams"""


def _run_bench(argv: list[str]) -> int:
    usage = BENCH_USAGE.format(names="{" + ",".join(BENCHMARKS) + "}")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print(usage)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"hf-ada bench: unknown benchmark {argv[0]!r}; choose one of {sorted(BENCHMARKS)}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    folder = _benchmarks_dir()
    if folder is None:
        print(f"hf-ada bench {argv[0]}: this hf-ada is an installed package without benchmarks/; the benchmarks "
              "run from a source checkout of hf-ada (see `hf-ada bench --help`).", file=sys.stderr)
        return 2
    script = folder / BENCHMARKS[argv[0]]
    args = argv[1:]
    if not any(a in ("-h", "--help") or a == "--out" or a.startswith("--out=") for a in args):
        args = [*args, "--out", str(Path.cwd() / "hf-ada-bench" / argv[0])]
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")
    return 0


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "demo": (_run_demo, "the main job: Adan vs AdamW, AdANNS vs rigid search, AdaNPC vs no adaptation, offline"),
    "run": (_run_launcher, "run a Trainer script (or -m module) with --optim adan registered"),
    "index": (_run_index, "AdANNS indexes: build | search | push"),
    "adapt": (_run_adapt, "AdaNPC test-time adaptation of a classifier over a stream"),
    "bench": (_run_bench, "run a benchmark of a source checkout: " + ", ".join(BENCHMARKS)),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-ada",
        description="Adan, AdANNS and AdaNPC for Hugging Face users.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(f"  {name:<7} {text}" for name, (_, text) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments (see COMMAND --help)")
    parser.add_argument("--version", action="version", version="hf-ada " + _version())
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hf-ada`` console command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        command, rest = argv[0], argv[1:]
    else:
        args = _parser().parse_args(argv)
        command, rest = args.command, args.args
    # hf-ada's own progress at INFO; other libraries (faiss's loader, datasets, ...) only when they warn
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("hf_ada").setLevel(logging.INFO)
    handler, _ = COMMANDS[command]
    return handler(rest)


if __name__ == "__main__":
    raise SystemExit(main())
