#!/usr/bin/env python
"""Build an AdANNS index over a dataset's embedding column (embedding a text column first if needed).

The script ships inside the package: this file runs ``python -m hf_ada.scripts.build_adanns_index`` for a source checkout.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("hf_ada.scripts.build_adanns_index", run_name="__main__", alter_sys=True)
