#!/usr/bin/env python
"""Train (or fine-tune) a causal language model with the transformers Trainer; ``--optim adan`` works.

The script ships inside the package: this file runs ``python -m hf_ada.scripts.run_clm`` for a source checkout.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("hf_ada.scripts.run_clm", run_name="__main__", alter_sys=True)
