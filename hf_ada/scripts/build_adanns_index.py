#!/usr/bin/env python
"""Build an AdANNS index over a dataset's embedding column (embedding a text column first if needed).

Same options as ``hf-ada index build``. Example (the packaged all-MiniLM-L6-v2, offline)::

    python scripts/build_adanns_index.py --dataset ../shared/data/debian-packages.parquet \\
        --text-column description --model all-MiniLM-L6-v2 --column embeddings \\
        --d-cluster 64 --d-search 96 --nlist 256 --nprobe 8 --d-rerank 384 --rerank-k 100 \\
        --output out/debian-adanns
"""

from __future__ import annotations

import logging
import sys

import hf_ada  # noqa: F401  (attaches the Dataset methods)
from hf_ada.adanns.cli import build_index_cli

def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO)
    build_index_cli(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
