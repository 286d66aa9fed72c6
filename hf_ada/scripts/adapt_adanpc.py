"""Build / run / share an AdaNPC predictor (the same as ``hf-ada adapt``); see ``--help``.

Run it as ``python -m hf_ada.scripts.adapt_adanpc`` (pip install) or ``python scripts/adapt_adanpc.py``.
"""

from __future__ import annotations

import sys

from hf_ada.adanpc.cli import adapt_cli


def main(argv: list[str] | None = None) -> int:
    return int(adapt_cli(sys.argv[1:] if argv is None else argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
