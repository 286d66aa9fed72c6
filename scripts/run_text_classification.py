#!/usr/bin/env python
"""Fine-tune a sequence classifier with the transformers Trainer; ``--optim adan`` works out of the box.

The script ships inside the package: this file runs ``python -m hf_ada.scripts.run_text_classification`` for a source checkout.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("hf_ada.scripts.run_text_classification", run_name="__main__", alter_sys=True)
