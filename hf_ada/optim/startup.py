"""An opt-in start-up hook that makes ``--optim adan`` work in scripts that never import hf_ada.

:func:`enable` (``hf-ada enable``) writes ``hf_ada_startup.pth`` into site-packages; :func:`disable`
(``hf-ada disable``) removes it. At interpreter start-up the file's one line installs a small import hook and
imports nothing. When a script first imports ``transformers.training_args``, the hook loads this file by
its path (not the ``hf_ada`` package), adds ``adan`` to ``OptimizerNames`` (so ``HfArgumentParser``
accepts ``--optim adan``), and the first ``TrainingArguments`` created imports ``hf_ada``, which
registers the rest.

This module uses the standard library only: it runs before anything else in every Python process of the
environment once enabled.
"""

import os
import sys
from pathlib import Path
from typing import Any  # typing and pathlib are loaded at start-up anyway; sysconfig is imported only by enable()

__all__ = ["enable", "disable", "is_enabled", "add_adan_member", "PTH_NAME"]

#: The file :func:`enable` writes into site-packages.
PTH_NAME = "hf_ada_startup.pth"
ADAN = "adan"
_WATCHED = "transformers.training_args"


def _site_dir(site_dir: "str | os.PathLike[str] | None") -> Path:
    import sysconfig

    folder = Path(site_dir) if site_dir is not None else Path(sysconfig.get_paths()["purelib"])
    if not folder.is_dir():
        raise ValueError(f"site_dir {str(folder)!r} is not a directory (pass the site-packages folder to enable)")
    return folder


def _pth_line() -> str:
    """The ``.pth`` line: a finder that waits for ``transformers.training_args`` and only then loads this file
    (by path: the ``hf_ada`` package is not imported) to hand over to :class:`_Finder`."""
    code = (
        "import sys\n"
        "class _HfAdaStartupFinder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name != {_WATCHED!r}:\n"
        "            return None\n"
        "        sys.meta_path.remove(self)\n"
        "        try:\n"  # hf-ada uninstalled or broken: never break the import
        "            import importlib.util as u\n"
        f"            s = u.spec_from_file_location('_hf_ada_startup', {os.path.abspath(__file__)!r})\n"
        "            m = u.module_from_spec(s)\n"
        "            s.loader.exec_module(m)\n"
        "            return m._Finder().find_spec(name, path, target)\n"
        "        except Exception:\n"
        "            return None\n"
        f"if {_WATCHED!r} not in sys.modules:\n"
        "    sys.meta_path.insert(0, _HfAdaStartupFinder())\n"
    )
    return f"import sys; exec({code!r}, {{}})\n"


def enable(site_dir: "str | os.PathLike[str] | None" = None) -> Path:
    """Install the start-up hook into ``site_dir`` (default: this interpreter's site-packages) and return
    the ``.pth`` file's path. Idempotent; undo with :func:`disable`."""
    folder = _site_dir(site_dir)
    path = folder / PTH_NAME
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValueError(f"{path} exists and is not a regular file: remove it first")
    tmp = folder / f".{PTH_NAME}.{os.getpid()}.tmp"
    tmp.write_text(_pth_line(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def disable(site_dir: "str | os.PathLike[str] | None" = None) -> bool:
    """Remove the start-up hook from ``site_dir`` (default: this interpreter's site-packages). Returns
    whether there was one."""
    path = _site_dir(site_dir) / PTH_NAME
    if not path.is_file() or path.is_symlink():
        return False
    path.unlink()
    return True


def is_enabled(site_dir: "str | os.PathLike[str] | None" = None) -> bool:
    """Whether :func:`enable` installed the hook in ``site_dir``."""
    return (_site_dir(site_dir) / PTH_NAME).is_file()


# -- what runs in every process once enabled (standard library only) -----------------------------------------


def add_adan_member(enum_cls: Any) -> None:
    """Add ``ADAN = "adan"`` to transformers' ``OptimizerNames`` (idempotent; Python has no public API for
    adding a member), pickled as the plain string ``"adan"`` so that a run's ``training_args.bin`` loads in
    a process that never imported hf_ada."""
    if ADAN not in enum_cls._value2member_map_:
        member = str.__new__(enum_cls, ADAN)
        member._name_ = "ADAN"
        member._value_ = ADAN
        member.__objclass__ = enum_cls
        if hasattr(member, "_sort_order_"):
            member._sort_order_ = len(enum_cls._member_names_)
        enum_cls._member_map_["ADAN"] = member
        enum_cls._value2member_map_[ADAN] = member
        enum_cls._member_names_.append("ADAN")
        type.__setattr__(enum_cls, "ADAN", member)
    reduce_ex = enum_cls.__reduce_ex__
    if getattr(reduce_ex, "__hf_ada_wrapped__", False):
        return

    def __reduce_ex__(self: Any, protocol: Any) -> Any:
        if self._value_ == ADAN:
            return (str, (ADAN,))
        return reduce_ex(self, protocol)

    __reduce_ex__.__hf_ada_wrapped__ = True  # type: ignore[attr-defined]
    type.__setattr__(enum_cls, "__reduce_ex__", __reduce_ex__)


def _prepare(training_args: Any) -> None:
    """Right after ``transformers.training_args`` is imported: the enum member now, the rest of hf-ada's
    registration at the first ``TrainingArguments.__post_init__`` (registering in the middle of
    transformers' own imports could see half-initialised modules)."""
    add_adan_member(training_args.OptimizerNames)
    cls = training_args.TrainingArguments
    original = cls.__post_init__

    def __post_init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if cls.__post_init__ is not __post_init__:  # hf_ada was imported meanwhile and wrapped this: be transparent
            return original(self, *args, **kwargs)
        cls.__post_init__ = original
        # absolute: this file runs outside its package here (loaded by path); registering wraps __post_init__
        # with its checks and fills the Trainer's table
        from hf_ada.optim import integration

        integration.register()
        return cls.__post_init__(self, *args, **kwargs)

    cls.__post_init__ = __post_init__


class _Loader:
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        try:
            _prepare(module)
        except Exception as err:  # a transformers layout this hook does not know: say so, never break the import
            print(f"hf-ada: start-up hook could not register --optim adan ({err!r}); `import hf_ada` in the "
                  "script or `hf-ada run` does; `hf-ada disable` removes the hook", file=sys.stderr)  # fmt: skip

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """Finds ``transformers.training_args`` through the other finders and wraps its loader (once)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != _WATCHED:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader)
        return spec
