"""``hf-ada sample-data FOLDER``: write the first hour's sample files (3,000 Debian packages shaped like a
user's own data; see :mod:`hf_ada.demo.sample_data`) into a new folder."""

from __future__ import annotations

from pathlib import Path

from . import command
from ._base import Parser, UsageError

__all__ = ["main"]


@command("sample-data", "write the README's first-hour sample files (Debian packages as parquet / CSV)")
def main(argv: list[str]) -> int:
    """Write ``packages.parquet``, ``train.csv``, ``validation.csv`` and ``stream.csv`` into FOLDER."""
    from ..demo import sample_data

    parser = Parser(prog="hf-ada sample-data", description=sample_data.__doc__)
    parser.add_argument("folder", type=Path, help="where to write the sample files (must not hold them already)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    if args.folder.exists() and not args.folder.is_dir():
        raise UsageError(f"FOLDER {args.folder} is a file, not a folder")
    for name, path in sample_data.write_sample_data(args.folder).items():
        print(f"{name:<17} {path}")
    return 0
