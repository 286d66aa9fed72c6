"""The compiled Adan kernel: one ``torch.compile``-generated update of flat tensors (fused C++/OpenMP loops
on CPU, Triton on CUDA), its per-process cache, the notices around its first compilation, and the cost
model that ``fused=None`` uses to decide whether compiling pays off.

Measured compile times and per-step savings are in ``benchmarks/results/adan_step.md`` and
``benchmarks/results/adan_overheads.md``.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import Any

import torch
from torch import Tensor

from ._notice import notice

logger = logging.getLogger("hf_ada.optim.adan")  # one logger for every Adan notice

__all__ = ["adan_kernel", "compiled_kernel", "call_kernel", "compile_failed", "is_compiled", "break_even_steps"]

#: The ``scalars`` vector's entries, in order.
SCALARS = ("beta1", "beta2", "beta3", "step_size", "step_size_diff", "inv_bc3_sqrt", "eps", "pre_decay",
           "inv_post_decay", "clip")  # fmt: skip


def adan_kernel(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_diff: Tensor,
    exp_avg_sq: Tensor,
    prev_grad: Tensor,
    scalars: Tensor,
) -> None:
    """One Adan update of 1-D tensors of equal length, written for ``torch.compile``.

    Every hyperparameter is an entry of ``scalars`` (see :data:`SCALARS`), so changing step sizes never
    recompiles. The arithmetic runs in ``promote(state dtype, float32)``; every buffer is read once and
    written once.
    """
    compute = torch.promote_types(exp_avg.dtype, torch.float32)
    beta1, beta2, beta3, step_size, step_size_diff, inv_bc3_sqrt, eps, pre_decay, inv_post_decay, clip = (
        scalars.to(compute).unbind()
    )
    g = grad.to(compute) * clip
    diff = g - prev_grad.to(compute)
    m = exp_avg.to(compute) * beta1 + g * (1 - beta1)
    v = exp_avg_diff.to(compute) * beta2 + diff * (1 - beta2)
    nesterov = diff * beta2 + g
    n = exp_avg_sq.to(compute) * beta3 + nesterov * nesterov * (1 - beta3)
    inv_denom = 1.0 / (n.sqrt() * inv_bc3_sqrt + eps)
    p = (param.to(compute) * pre_decay - (step_size * m + step_size_diff * v) * inv_denom) * inv_post_decay
    param.copy_(p.to(param.dtype))
    exp_avg.copy_(m.to(exp_avg.dtype))
    exp_avg_diff.copy_(v.to(exp_avg_diff.dtype))
    exp_avg_sq.copy_(n.to(exp_avg_sq.dtype))
    prev_grad.copy_(g.to(prev_grad.dtype))


@functools.cache
def compiled_kernel() -> Any:
    """:func:`adan_kernel` through ``torch.compile`` (dynamic shapes: one compilation per dtype combination)."""
    return torch.compile(adan_kernel, dynamic=True, fullgraph=True)


KernelKey = tuple[str, torch.dtype, torch.dtype, torch.dtype]

_COMPILED: set[KernelKey] = set()  # (device type, param, grad, state dtype) compiled in this process
_FAILED = False  # compiling failed once in this process: the fused path falls back from then on

#: Cost model of ``fused=None`` (see ``benchmarks/results/adan_step.md`` / ``adan_overheads.md`` for the
#: measurements behind it): a cold compilation's cost, the fraction of an eager step the kernel saves at
#: best, and the number of steps within which compiling must pay for itself.
COLD_COMPILE_S = 15.0
FUSED_SAVING = 0.25
PAYOFF_STEPS = 1000


def compile_failed() -> bool:
    """Whether compiling the kernel failed earlier in this process."""
    return _FAILED


def is_compiled(key: KernelKey) -> bool:
    """Whether the kernel for ``key`` was already compiled in this process (calling it costs no compile)."""
    return key in _COMPILED


def kernel_key(param: Tensor, grad: Tensor, state: Tensor) -> KernelKey:
    return (param.device.type, param.dtype, grad.dtype, state.dtype)


def break_even_steps(eager_step_s: float, compile_s: float = COLD_COMPILE_S, saving: float = FUSED_SAVING) -> int:
    """Steps after which building a kernel that costs ``compile_s`` seconds and saves the fraction ``saving``
    of an eager step pays for itself, given one eager step's time in seconds."""
    return math.ceil(compile_s / max(eager_step_s * saving, 1e-12))


def compile_pays_off(eager_step_s: float, compile_s: float = COLD_COMPILE_S, saving: float = FUSED_SAVING) -> bool:
    """Whether a group whose eager step took ``eager_step_s`` earns the build back within
    :data:`PAYOFF_STEPS` steps."""
    return break_even_steps(eager_step_s, compile_s, saving) <= PAYOFF_STEPS


def _key_text(key: KernelKey) -> str:
    device, param_dtype, _grad_dtype, state_dtype = key
    return f"{device}, params {str(param_dtype).removeprefix('torch.')}, state {str(state_dtype).removeprefix('torch.')}"


def _inductor_cache_dir() -> str:
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        return cache_dir()
    except Exception:  # private API moved: the message then just omits the folder
        return "(Inductor's default cache folder)"


def call_kernel(buffers: list[Tensor], scalars: Tensor, numel: int, announce: bool) -> None:
    """Call the compiled kernel on ``buffers`` (param, grad, exp_avg, exp_avg_diff, exp_avg_sq, prev_grad).

    The first call for a dtype combination compiles; it is announced before (what, why, how to avoid it)
    and after (time, whether Inductor's on-disk cache served it). ``announce`` marks the first call of a
    step, where a reuse of an earlier compilation is announced once. Raises what compiling raised; the
    caller then falls back (see :func:`mark_failed`).
    """
    kernel = compiled_kernel()
    key = kernel_key(buffers[0], buffers[1], buffers[2])
    if key in _COMPILED:
        if announce:
            notice(logger, "Adan: reusing the fused kernel compiled earlier in this process (%s; no compile)",
                   _key_text(key))  # fmt: skip
        kernel(*buffers, scalars)
        return
    from torch._dynamo.utils import counters

    notice(
        logger,
        "Adan: compiling the fused kernel (torch.compile, %s) for %.1fM parameters at the first step; a warm "
        "Inductor cache in %s makes it faster; it pays off after some hundred steps at best, depending on "
        "the CPU (benchmarks/results/adan_step.md; fused=False skips it)",
        _key_text(key), numel / 1e6, _inductor_cache_dir(),
    )  # fmt: skip
    hits = counters["inductor"]["fxgraph_cache_hit"]
    start = time.perf_counter()
    kernel(*buffers, scalars)
    elapsed = time.perf_counter() - start
    cached = counters["inductor"]["fxgraph_cache_hit"] > hits
    _COMPILED.add(key)
    notice(
        logger,
        "Adan: fused kernel ready in %.1f s (%s); later steps and later Adan instances in this process reuse it",
        elapsed, "warm Inductor cache" if cached else "compiled from scratch, now cached on disk",
    )  # fmt: skip


def mark_failed(err: Exception) -> None:
    """Record that compiling failed (toolchain missing, unsupported backend, ...): warn once."""
    global _FAILED
    _FAILED = True
    logger.warning("Adan fused (torch.compile) path unavailable (%s); falling back to single-tensor.", err)
