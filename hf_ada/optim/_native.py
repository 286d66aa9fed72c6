"""Adan's native CPU kernel: ``_adan_cpu.c``, built once per machine with the system C compiler and loaded
with :mod:`ctypes`. One call updates every float32 tensor of a parameter group (each element read once from
the six arrays, written once to five), and one call checks a list of gradients for ``inf`` / ``nan``.

It needs no Python or torch headers, so a cold build is short next to ``torch.compile``'s (both measured in
``benchmarks/results/adan_step.md``); the library is cached under ``$HF_ADA_CACHE/kernels`` (default
``~/.cache/hf_ada/kernels``), keyed by the source, the compiler and the CPU. Set ``HF_ADA_NATIVE_KERNEL=0``
to turn it off (the fused path then compiles with ``torch.compile``).
"""

from __future__ import annotations

import array
import ctypes
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch
from torch import Tensor

from ._notice import notice

logger = logging.getLogger("hf_ada.optim.adan")  # one logger for every Adan notice

__all__ = ["available", "is_built", "library", "eligible", "update", "advance", "all_finite", "SCALARS", "BUILD_S", "SAVING"]

SOURCE = Path(__file__).with_name("_adan_cpu.c")

#: The ``scalars`` the kernel takes, in order.
SCALARS = ("beta1", "beta2", "beta3", "step_size", "step_size_diff", "inv_bc3_sqrt", "eps", "pre_decay",
           "inv_post_decay", "clip", "one_minus_beta1", "one_minus_beta2", "one_minus_beta3")  # fmt: skip

#: A cold build's cost in seconds as ``fused=None``'s cost model counts it (an upper bound of the measured
#: build time in ``benchmarks/results/adan_step.md``).
BUILD_S = 3.0

#: The fraction of an eager (single-tensor) step the kernel saves at least, as the cost model counts it.
SAVING = 0.5

_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared", "-pthread", "-std=c11")
_FALLBACK_FLAGS = ("-O3", "-fno-math-errno", "-fPIC", "-shared", "-pthread", "-std=c11")  # no -march=native

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_failed: str | None = None  # why the kernel is unavailable in this process


def _enabled() -> bool:
    return os.environ.get("HF_ADA_NATIVE_KERNEL", "1").strip().lower() not in ("0", "false", "no", "off")


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cache_dir() -> Path:
    root = os.environ.get("HF_ADA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "hf_ada"
    )
    return Path(root) / "kernels"


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    text = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    text += line
                if line.strip() == "":  # the first processor's block is enough
                    break
    except OSError:
        text = platform.processor()
    return text + platform.machine()


_key_cache: dict[str, str] = {}


def _library_path(compiler: str) -> Path:
    if compiler not in _key_cache:
        try:
            version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            version = ""
        digest = hashlib.sha256()
        for part in (SOURCE.read_bytes(), version.encode(), " ".join(_FLAGS).encode(), _cpu_signature().encode()):
            digest.update(part)
            digest.update(b"\0")
        _key_cache[compiler] = digest.hexdigest()[:20]
    return _cache_dir() / f"adan_cpu-{_key_cache[compiler]}.so"


def _regular_file_we_own(path: Path) -> bool:
    """A cached library is loaded only if it is a regular file (no link) owned by this user."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (not hasattr(os, "getuid") or st.st_uid == os.getuid())


def is_built() -> bool:
    """Whether the kernel is loaded in this process or built for this machine already (no build needed)."""
    if _library is not None:
        return True
    return available() and _regular_file_we_own(_library_path(_compiler()))


def _build(compiler: str, target: Path) -> None:
    """Compile the source into ``target`` atomically (a temporary file in the same folder, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".adan_cpu-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        errors = ""
        for flags in (_FLAGS, _FALLBACK_FLAGS):
            result = subprocess.run([compiler, *flags, str(SOURCE), "-o", tmp, "-lm"], capture_output=True,
                                    text=True, timeout=300)  # fmt: skip
            if result.returncode == 0:
                os.replace(tmp, target)
                return
            errors = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise RuntimeError(f"{Path(compiler).name} failed: {errors}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.hf_ada_adan_update.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.hf_ada_adan_update.restype = ctypes.c_int
    lib.hf_ada_all_finite.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.hf_ada_all_finite.restype = ctypes.c_int
    lib.hf_ada_add_one.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    lib.hf_ada_add_one.restype = None
    lib.hf_ada_scalar_count.restype = ctypes.c_int
    if lib.hf_ada_scalar_count() != len(SCALARS):
        raise RuntimeError("the kernel library does not match this hf-ada version")
    return lib


def library(build: bool = True) -> ctypes.CDLL | None:
    """The loaded kernel library, building it first if needed (and ``build``); None where it is unavailable
    (turned off, no C compiler, the build failed: warned once per process)."""
    global _library, _failed
    if _library is not None or _failed is not None:
        return _library
    if not _enabled():
        return None
    with _lock:
        if _library is not None or _failed is not None:
            return _library
        if platform.system() == "Windows":
            _failed = "not built on Windows"
            return None
        compiler = _compiler()
        if compiler is None:
            _failed = "no C compiler (cc / gcc / clang) found"
            logger.warning("Adan: native CPU kernel unavailable (%s); the fused path uses torch.compile", _failed)
            return None
        path = _library_path(compiler)
        try:
            if not _regular_file_we_own(path):
                if not build:
                    return None
                notice(logger, "Adan: building the native CPU kernel with %s (once per machine; cached in %s)", Path(compiler).name, path.parent)  # fmt: skip
                start = time.perf_counter()
                try:
                    _build(compiler, path)
                except PermissionError:  # a read-only cache: build for this process only
                    path = Path(tempfile.mkdtemp(prefix="hf_ada_kernels-")) / path.name
                    _build(compiler, path)
                notice(logger, "Adan: native CPU kernel built in %.1f s", time.perf_counter() - start)
            _library = _load(path)
        except Exception as err:  # compiler error, missing libc headers, unloadable library, ...
            _failed = f"{type(err).__name__}: {err}"
            logger.warning("Adan: native CPU kernel unavailable (%s); the fused path uses torch.compile", _failed)
            return None
    return _library


def available() -> bool:
    """Whether the kernel can run here (built or buildable; a failed build counts as unavailable)."""
    return _enabled() and _failed is None and platform.system() != "Windows" and (
        _library is not None or _compiler() is not None
    )  # fmt: skip


def eligible(*tensors: Tensor) -> bool:
    """Whether the kernel can update these tensors: float32, contiguous, on the CPU."""
    float32 = torch.float32
    for t in tensors:  # a plain loop: this runs for every tensor at every step
        if t.dtype is not float32 or not t.is_cpu or not t.is_contiguous():
            return False
    return True


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _pointers(columns: list[list[Tensor]] | tuple[list[Tensor], ...]) -> tuple[array.array, array.array]:
    ptrs = array.array("Q")
    for column in columns:
        ptrs.extend([t.data_ptr() for t in column])
    numel = array.array("q", [t.numel() for t in columns[0]])
    return ptrs, numel


def update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_diffs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_grads: list[Tensor],
    scalars: list[float],
) -> None:
    """One Adan update of float32 CPU tensors sharing one step count, in place (see :data:`SCALARS`)."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"Adan's native CPU kernel is unavailable ({_failed or 'turned off'})")
    ptrs, numel = _pointers([params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads])
    values = array.array("f", scalars)
    lib.hf_ada_adan_update(len(params), ptrs.buffer_info()[0], numel.buffer_info()[0], values.buffer_info()[0],
                           _threads())  # fmt: skip


def advance(steps: list[Tensor]) -> list[float]:
    """Add 1 to every step count (0-d tensors) and return the new counts: one call for float32 CPU counts
    (the optimizer's own), ``torch._foreach_add_`` otherwise."""
    if _library is not None and eligible(*steps):
        ptrs = array.array("Q", [t.data_ptr() for t in steps])
        out = array.array("f", bytes(4 * len(steps)))
        _library.hf_ada_add_one(len(steps), ptrs.buffer_info()[0], out.buffer_info()[0])
        return out.tolist()
    torch._foreach_add_(steps, 1.0)
    return torch.stack(steps).tolist()


def all_finite(tensors: list[Tensor]) -> bool | None:
    """Whether no tensor holds an ``inf`` or ``nan`` (one read of each); None if the kernel is not loaded
    or a tensor is not float32 / contiguous / on the CPU (the caller then checks with torch)."""
    if _library is None or not tensors or not eligible(*tensors):
        return None
    ptrs, numel = _pointers([tensors])
    return bool(_library.hf_ada_all_finite(len(tensors), ptrs.buffer_info()[0], numel.buffer_info()[0], _threads()))
