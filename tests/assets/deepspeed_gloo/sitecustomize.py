"""Imported as ``sitecustomize`` by the processes the DeepSpeed tests launch (their ``PYTHONPATH`` starts with
this folder), and by nothing else.

DeepSpeed's torch backend builds a shared-memory all-reduce op the first time it starts on a machine: C++
compiled against torch's headers, half a minute to two minutes on 2 cores, paid by every fresh CI machine.
This makes ``deepspeed.comm.torch.build_shm_op`` return ``None``, DeepSpeed's own answer where that op is not
compatible, so the ranks reduce over gloo. What the tests check, Adan under ZeRO, does not depend on that
transport. Standard library only: it runs at every interpreter start-up of those processes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

TARGET = "deepspeed.comm.torch"


class _WithoutSharedMemoryOp(importlib.abc.MetaPathFinder):
    """Finds ``deepspeed.comm.torch`` with the other finders and wraps its loader to replace the op builder."""

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                exec_module = spec.loader.exec_module

                def exec_and_replace(module: ModuleType) -> None:
                    exec_module(module)
                    module.build_shm_op = lambda: None

                spec.loader.exec_module = exec_and_replace  # type: ignore[method-assign]
                return spec
        return None


sys.meta_path.insert(0, _WithoutSharedMemoryOp())
