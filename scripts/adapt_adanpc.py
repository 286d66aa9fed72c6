#!/usr/bin/env python
"""Build / run / share an AdaNPC predictor (same as ``hf-ada adapt``); see ``--help``."""

import sys

from hf_ada.adanpc.cli import adapt_cli

if __name__ == "__main__":
    sys.exit(adapt_cli(sys.argv[1:]))
