#!/usr/bin/env python
"""Build an AdANNS index over a dataset's embedding column (embedding a text column first if needed).

Same options as ``hf-ada index build``. Example: your own parquet/CSV file with a ``description`` column,
embedded with the packaged all-MiniLM-L6-v2 (offline); the index settings are chosen from the data size and
``--tune 500`` picks the fastest search plan within 1% of exact search's recall::

    python -m hf_ada.scripts.build_adanns_index --dataset my_docs.parquet --text-column description \\
        --tune 500 --output out/my-docs-index
    hf-ada index search --dataset my_docs.parquet --index out/my-docs-index --query "network monitoring tool" \\
        --show-column description
"""

from __future__ import annotations

import logging
import sys

import hf_ada  # noqa: F401  (attaches the Dataset methods)
from hf_ada.adanns.cli import build_index_cli


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("hf_ada").setLevel(logging.INFO)
    build_index_cli(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
