"""The ``hf-ada`` command line: every subcommand's argument handling, in one room.

One module per subcommand (``demo``, ``run``, ``index``, ``adapt``, ``bench``, ``enable`` / ``disable``,
``ui``); each registers itself with :func:`command`, and :func:`commands` finds them by listing this
package, so a new subcommand is a new module here and nothing else. ``trainer`` holds the arguments of the
Trainer scripts (``scripts/run_text_classification.py``, ``scripts/run_clm.py``). Command modules import
the methods lazily, inside their functions, so ``hf-ada --help`` loads none of them.

Every entry point runs under :func:`run_main`: one line per error (exit status 2 for a usage error, 1 for
a failure), the traceback with ``--debug`` or ``HF_ADA_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

from ._base import Parser, UsageError, check_output_folder, load_dataset, run_main

__all__ = ["Command", "command", "commands", "main", "run_main", "Parser", "UsageError", "load_dataset",
           "check_output_folder"]


@dataclass(frozen=True)
class Command:
    """A subcommand: ``hf-ada NAME ARGS...`` calls ``run(ARGS)``, which returns the exit status."""

    name: str
    help: str
    run: Callable[[list[str]], int | None]
    #: False for a command whose arguments belong to another program (``hf-ada run SCRIPT --debug``)
    own_arguments: bool = True


_REGISTRY: dict[str, Command] = {}


def command(name: str, help: str, *, own_arguments: bool = True) -> Callable[[Callable], Callable]:
    """Decorator registering ``func(argv) -> exit status`` as ``hf-ada NAME``."""

    def register(func: Callable[[list[str]], int | None]) -> Callable[[list[str]], int | None]:
        _REGISTRY[name] = Command(name, help, func, own_arguments)
        return func

    return register


def commands() -> dict[str, Command]:
    """Every registered subcommand, by name (importing each command module of this package once)."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(_REGISTRY.items()))


def _usage(table: dict[str, Command]) -> str:
    width = max(len(name) for name in table)
    lines = ["usage: hf-ada [--debug] [--version] COMMAND [ARGS ...]", "",
             "Adan, AdANNS and AdaNPC for Hugging Face users. `hf-ada COMMAND --help` describes each command.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {cmd.help}" for name, cmd in table.items()]
    lines += ["", "--debug (or HF_ADA_DEBUG=1) shows the traceback of an error instead of its one-line message."]
    return "\n".join(lines)


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hf-ada`` console command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = False
    while argv and argv[0] == "--debug":
        debug = True
        argv.pop(0)
    table = commands()
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(table))
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"hf-ada {_version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in table:
        print(f"hf-ada: error: unknown command {name!r}; choose one of: {', '.join(table)} (see hf-ada --help)",
              file=sys.stderr)
        return 2
    # hf-ada's own progress at INFO; other libraries (faiss's loader, datasets, ...) only when they warn
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("hf_ada").setLevel(logging.INFO)
    cmd = table[name]
    return run_main(cmd.run, rest, prog=f"hf-ada {name}", strip_debug=cmd.own_arguments,
                    only_own_errors=not cmd.own_arguments, debug=debug)
