#!/usr/bin/env python
"""Build an AdANNS index over a dataset's embedding column (embedding a text column first if needed) and save
it as a folder: the same as ``hf-ada index build`` (``--help`` lists every option).

What it does, in order: checks every argument and the output folder (never a file, an input, another
artifact or a README.md of yours); loads the data (a .parquet/.csv/.json/.jsonl file, a ``save_to_disk``
folder or a Hub dataset id); embeds ``--text-column`` with ``--model`` (default: the packaged
all-MiniLM-L6-v2, offline) when the vector column is absent; picks the index settings from the data size
and the dimension; measures the candidate search plans (exact flat search included) on ``--tune N`` sampled
rows (default 256) and keeps the fastest within 1% of exact search's recall (the choice depends on this
machine's measured speed); saves the folder and prints one JSON line (``saved``, ``rows``, ``plan``,
``reason``, ``flops_per_query``).

Example: your own parquet/CSV file with a ``description`` column::

    python scripts/build_adanns_index.py --dataset my_docs.parquet --text-column description \\
        --output out/my-docs-index
    hf-ada index search --dataset my_docs.parquet --index out/my-docs-index --query "network monitoring tool" \\
        --show-column description

Several workers: ``--embed-devices cuda:0,cuda:1`` (or ``cpu,cpu``) embeds data-parallel, and
``accelerate launch -m hf_ada.scripts.build_adanns_index ...`` runs this script under accelerate.
Installed without a checkout: ``hf-ada index build`` or ``python -m hf_ada.scripts.build_adanns_index``.
An error prints one line (exit status 2: a bad argument, 1: a failure); ``--debug`` shows the traceback.
"""

import sys

from hf_ada.commands.index import build_main as main

if __name__ == "__main__":
    sys.exit(main())
