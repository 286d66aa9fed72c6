"""``hf-ada enable`` / ``hf-ada disable``: make ``--optim adan`` work in any Python script of this
environment without ``import hf_ada`` (a start-up hook that registers Adan when transformers' training
arguments are first imported), and take that hook away again."""

from __future__ import annotations

from typing import Any

from . import command
from ._base import Parser

__all__ = ["enable", "disable"]


def _report(result: Any, default: str) -> None:
    if isinstance(result, (str, bytes)) or result is None:
        print(f"hf-ada: {result or default}")
    elif isinstance(result, dict):
        print("hf-ada: " + "; ".join(f"{key}: {value}" for key, value in result.items()))
    else:
        print(f"hf-ada: {default}: {result}")


@command("enable", "register --optim adan in every Python script of this environment (a start-up hook)")
def enable(argv: list[str]) -> int:
    """``hf-ada enable``: install the start-up hook (``hf_ada.optim.startup.enable()``)."""
    Parser(prog="hf-ada enable", description=enable.__doc__ + "\n\nUndo with `hf-ada disable`.").parse_args(argv)
    from ..optim import startup

    _report(startup.enable(), "enabled: --optim adan now works in scripts that never import hf_ada")
    return 0


@command("disable", "remove the start-up hook that `hf-ada enable` installed")
def disable(argv: list[str]) -> int:
    """``hf-ada disable``: remove the start-up hook (``hf_ada.optim.startup.disable()``)."""
    Parser(prog="hf-ada disable", description=disable.__doc__).parse_args(argv)
    from ..optim import startup

    _report(startup.disable(), "disabled: scripts need `import hf_ada` or `hf-ada run` for --optim adan again")
    return 0
