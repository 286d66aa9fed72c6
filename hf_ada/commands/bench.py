"""``hf-ada bench NAME ARGS...``: run a benchmark of a source checkout (every ``benchmarks/bench_*.py`` is
one, found by listing the folder: ``bench_adan_step.py`` is ``hf-ada bench adan-step``)."""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

from . import command
from ._base import UsageError

__all__ = ["main", "benchmarks"]

USAGE = """usage: hf-ada bench NAME [--out DIR] [ARGS ...]

Run one of the benchmarks of a source checkout of hf-ada (they are scripts in benchmarks/, not part of the
installed package: `git clone` the project and `pip install -e ".[bench]"` to run them). Each prints a table
and writes markdown, PNG and JSON results into --out, by default ./hf-ada-bench/<name>/ in the current
folder -- never over the committed benchmarks/results/ (pass --out benchmarks/results to refresh those).
`hf-ada bench NAME --help` lists a benchmark's own options."""


def _benchmarks_dir() -> Path | None:
    """``benchmarks/`` of the source checkout this hf-ada runs from, or ``None`` (a pip install has none)."""
    folder = Path(__file__).resolve().parents[2] / "benchmarks"
    return folder if folder.is_dir() else None


def _summary(script: Path) -> str:
    """The first sentence (at most 90 characters) of a script's module docstring (read, not imported)."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, UnicodeDecodeError):
        doc = ""
    line = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "")
    line = line.split(". ")[0].rstrip(".:")
    return line if len(line) <= 90 else line[:87].rsplit(" ", 1)[0] + " ..."


def benchmarks() -> dict[str, Path]:
    """Every benchmark of the checkout, by command name (``bench_adan_step.py`` -> ``adan-step``)."""
    folder = _benchmarks_dir()
    if folder is None:
        return {}
    return {p.stem[len("bench_"):].replace("_", "-"): p for p in sorted(folder.glob("bench_*.py"))}


@command("bench", "run a benchmark of a source checkout (hf-ada bench --help lists them)")
def main(argv: list[str]) -> int:
    """List the benchmarks, or run one with ``--out ./hf-ada-bench/NAME`` unless ``--out`` is given."""
    found = benchmarks()
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n")
        if found:
            width = max(len(n) for n in found)
            print("benchmarks:\n" + "\n".join(f"  {name:<{width}}  {_summary(p)}" for name, p in found.items()))
        else:
            print("benchmarks: none here (this hf-ada is an installed package without benchmarks/)")
        return 0 if argv else 2
    if _benchmarks_dir() is None:
        raise UsageError(f"{argv[0]}: this hf-ada is an installed package without benchmarks/; the benchmarks run "
                         "from a source checkout of hf-ada (see `hf-ada bench --help`)")
    name = argv[0]
    if name not in found:
        raise UsageError(f"unknown benchmark {name!r}; choose one of: {', '.join(found)}")
    args = argv[1:]
    if not any(a in ("-h", "--help") or a == "--out" or a.startswith("--out=") for a in args):
        args = [*args, "--out", str(Path.cwd() / "hf-ada-bench" / name)]
    sys.argv = [str(found[name]), *args]
    runpy.run_path(str(found[name]), run_name="__main__")
    return 0
