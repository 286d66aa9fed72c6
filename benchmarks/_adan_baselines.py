"""Load the third-party Adan implementations that the Adan benchmarks compare against.

None of their code lives in this repository:

* **timm** (``timm.optim.Adan``) must not be *installed* beside the CPU torch used here (it breaks the
  accelerate CLI), so its wheel is downloaded and unpacked into the git-ignored ``benchmarks/.cache/timm``::

      pip download --no-deps timm -d benchmarks/.cache/timm
      (cd benchmarks/.cache/timm && unzip -o timm-*.whl 'timm/optim/*')

  :func:`load_timm_adan` then loads ``timm/optim/adan.py`` and the one sibling it imports
  (``timm/optim/_helpers.py``, which imports only torch) as a stand-alone package, without running timm's
  ``__init__`` (so none of timm's model zoo, torchvision imports etc.).
* **pytorch-optimizer** (``pytorch_optimizer.Adan``) is an ordinary installed package.
* **the paper's reference** (sail-sg/Adan ``adan.py``) is loaded from a path the user gives
  (``--reference-adan PATH``), e.g. a clone of https://github.com/sail-sg/Adan.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_TIMM_CACHE = BENCH_DIR / ".cache" / "timm"
_TIMM_PACKAGE = "_bench_timm_optim"  # private name: never collides with a real ``timm``

TIMM_HOWTO = (
    "timm's Adan not found; to include it run:\n"
    "  pip download --no-deps timm -d benchmarks/.cache/timm\n"
    "  (cd benchmarks/.cache/timm && unzip -o timm-*.whl 'timm/optim/*')"
)


def _load_module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def find_timm_optim_dir(cache_dir: Path = DEFAULT_TIMM_CACHE) -> Path | None:
    """The unpacked ``timm/optim`` folder inside ``cache_dir``, or None."""
    candidate = Path(cache_dir) / "timm" / "optim"
    return candidate if (candidate / "adan.py").is_file() else None


def load_timm_adan(cache_dir: Path = DEFAULT_TIMM_CACHE) -> type | None:
    """``timm.optim.adan.Adan`` from the unpacked wheel, or None (with a hint on stderr) when absent."""
    optim_dir = find_timm_optim_dir(cache_dir)
    if optim_dir is None:
        print(TIMM_HOWTO, file=sys.stderr)
        return None
    if f"{_TIMM_PACKAGE}.adan" in sys.modules:
        return sys.modules[f"{_TIMM_PACKAGE}.adan"].Adan
    # A bare package whose __path__ is timm/optim: ``from ._helpers import ...`` inside adan.py resolves to
    # the real timm/optim/_helpers.py, and timm/optim/__init__.py (which imports all of timm) never runs.
    package = types.ModuleType(_TIMM_PACKAGE)
    package.__path__ = [str(optim_dir)]
    sys.modules[_TIMM_PACKAGE] = package
    module = _load_module(f"{_TIMM_PACKAGE}.adan", optim_dir / "adan.py")
    leaked = sorted(m for m in sys.modules if m == "timm" or m.startswith("timm."))
    if leaked:
        raise ImportError(f"loading timm's adan.py imported timm modules {leaked}; the loader needs a stub")
    return module.Adan


def load_reference_adan(path: str | Path) -> type:
    """``Adan`` from the sail-sg/Adan ``adan.py`` at ``path`` (its fused CUDA kernel is not used on CPU)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"--reference-adan: {path} is not a file (expected sail-sg/Adan's adan.py)")
    return _load_module("_bench_reference_adan", path).Adan


def load_pytorch_optimizer_adan() -> type | None:
    """``pytorch_optimizer.Adan``, or None when pytorch-optimizer is not installed."""
    try:
        from pytorch_optimizer import Adan
    except ImportError:
        print("pytorch-optimizer not installed (pip install pytorch-optimizer); skipping its Adan", file=sys.stderr)
        return None
    return Adan
