#!/usr/bin/env python
"""Build, run and share an AdaNPC predictor (a classifier + a kNN memory of its training data that adapts
along a stream of test inputs): the same as ``hf-ada adapt`` (``--help`` lists every option).

What it does, in order: checks every argument, input and output first (columns exist, labels match the
model, outputs are writable, are not inputs and hold no other artifact or README.md of yours); builds the
memory from ``--train-dataset`` with ``--model`` (or loads ``--predictor``); predicts ``--stream`` in order
with a progress bar, letting confident predictions join the memory; prints a JSON summary (accuracy with
``--stream-label-column``, the plain model's with ``--baseline``, the guard's record); writes one JSON line
per stream row to ``--predictions-out``; saves the predictor to ``--output-dir`` and/or uploads it with
``--push-to-hub REPO_ID`` (``--space SPACE_ID``: and a Gradio Space that serves it).

Examples::

    # memory from a labelled dataset, adapt along a stream, compare with the plain model, save the predictor
    python scripts/adapt_adanpc.py --model ./my-classifier --train-dataset train.parquet \\
        --memory-input-column text --stream test.jsonl --stream-input-column sentence --baseline \\
        --predictions-out preds.jsonl --output-dir ./my-adanpc

    # adapt a saved predictor along a new stream
    python scripts/adapt_adanpc.py --predictor ./my-adanpc --stream test.jsonl --predictions-out preds.jsonl

Installed without a checkout: ``hf-ada adapt`` or ``python -m hf_ada.scripts.adapt_adanpc``. An error prints
one line (exit status 2: a bad argument, 1: a failure); ``--debug`` shows the traceback.
"""

import sys

from hf_ada.commands.adapt import adapt_main as main

if __name__ == "__main__":
    sys.exit(main())
