#!/usr/bin/env python
"""Build / run / share an AdaNPC predictor (the same as ``hf-ada adapt``); see ``--help``.

The script ships inside the package: this file runs ``python -m hf_ada.scripts.adapt_adanpc`` for a source checkout.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("hf_ada.scripts.adapt_adanpc", run_name="__main__", alter_sys=True)
