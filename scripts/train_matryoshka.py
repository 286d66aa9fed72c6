#!/usr/bin/env python
"""Turn a rigid sentence-transformers model into a Matryoshka one (MRL): ``SentenceTransformerTrainer`` +

The script ships inside the package: this file runs ``python -m hf_ada.scripts.train_matryoshka`` for a source checkout.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("hf_ada.scripts.train_matryoshka", run_name="__main__", alter_sys=True)
