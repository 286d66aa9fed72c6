"""``hf-ada enable`` / ``hf-ada disable``: make ``--optim adan`` work in any Python script of this
environment without ``import hf_ada`` (a start-up hook, :mod:`hf_ada.optim.startup`, that registers Adan
when transformers' training arguments are first imported), and take that hook away again."""

from __future__ import annotations

from pathlib import Path

from . import command
from ._base import Parser

__all__ = ["enable", "disable"]


def _parser(prog: str, description: str) -> Parser:
    parser = Parser(prog=prog, description=description)
    parser.add_argument("--site-dir", type=Path, default=None,
                        help="the site-packages folder of the hook (default: this Python environment's)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return parser


@command("enable", "make --optim adan work in every Python script of this environment (a start-up hook)")
def enable(argv: list[str]) -> int:
    """``hf-ada enable``: install the start-up hook (``hf_ada.optim.startup.enable()``)."""
    args = _parser("hf-ada enable", enable.__doc__ + " Undo with `hf-ada disable`.").parse_args(argv)
    from ..optim import startup

    path = startup.enable(args.site_dir)
    print(f"hf-ada: enabled: installed the start-up hook {path}; `--optim adan` now works in any script run by "
          "this Python, without `import hf_ada` (it loads only when transformers' training arguments are "
          "imported). Undo: hf-ada disable")
    return 0


@command("disable", "remove the start-up hook that `hf-ada enable` installed")
def disable(argv: list[str]) -> int:
    """``hf-ada disable``: remove the start-up hook (``hf_ada.optim.startup.disable()``)."""
    args = _parser("hf-ada disable", disable.__doc__).parse_args(argv)
    from ..optim import startup

    if startup.disable(args.site_dir):
        print("hf-ada: disabled: removed the start-up hook; scripts need `import hf_ada` or `hf-ada run` for "
              "`--optim adan` again")
    else:
        print("hf-ada: nothing to disable: no start-up hook is installed")
    return 0
