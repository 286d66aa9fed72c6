"""Import-time helpers that keep ``import hf_ada`` cheap.

* :func:`lazy_exports` gives a package a module-level ``__getattr__`` that imports a public name's
  submodule only when the name is first used (PEP 562), so ``import hf_ada`` does not pay for faiss,
  sentence-transformers or transformers' pipelines.
* :func:`call_when_imported` runs a callback right after a module has been imported -- at once if it
  already is. hf-ada registers its pipeline tasks this way: the registration needs
  ``transformers.pipelines`` (seconds to import), which every user of :func:`transformers.pipeline`
  imports anyway.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["lazy_exports", "call_when_imported"]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` resolving ``name -> "submodule"`` on first access.

    ``exports`` maps each public name to the submodule (relative to ``package``) that defines it.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__


_HOOKS: dict[str, list[Callable[[ModuleType], None]]] = {}
_LOCK = threading.RLock()


class _HookedLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the callbacks registered for the module."""

    def __init__(self, loader: importlib.abc.Loader, fullname: str) -> None:
        self._loader = loader
        self._fullname = fullname

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _run_hooks(self._fullname, module)

    def __getattr__(self, name: str) -> Any:  # get_code, get_source, is_package, ... of the real loader
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` entry that wraps the loader of each watched module (and nothing else)."""

    def __init__(self) -> None:
        self._resolving: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _HOOKS or fullname in self._resolving:
            return None
        self._resolving.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._resolving.discard(fullname)
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader, fullname)
        return spec


_FINDER = _PostImportFinder()


def _run_hooks(fullname: str, module: ModuleType) -> None:
    with _LOCK:
        callbacks = _HOOKS.pop(fullname, [])
    for callback in callbacks:
        callback(module)


def call_when_imported(module_name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call ``callback(module)`` once ``module_name`` is imported: now if it already is, else right after
    its import finishes (in the importing thread)."""
    with _LOCK:
        module = sys.modules.get(module_name)
        if module is None:
            _HOOKS.setdefault(module_name, []).append(callback)
            if _FINDER not in sys.meta_path:
                sys.meta_path.insert(0, _FINDER)
            return
    callback(module)
