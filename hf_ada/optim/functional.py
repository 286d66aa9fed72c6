"""Functional Adan: :func:`adan` updates parameters and state lists in place through one of three
implementations, as ``torch.optim`` does for its optimizers:

* ``_single_tensor_adan``: in-place tensor ops, one parameter at a time;
* ``_multi_tensor_adan``: ``torch._foreach_*`` ops over all parameters of a device / dtype at once;
* ``_fused_adan``: one pass over each element: float32 tensors on the CPU through the native kernel
  (:mod:`hf_ada.optim._native`, one call for every tensor of a group), the others through the
  ``torch.compile`` kernel (:mod:`hf_ada.optim._kernel`: one call per large parameter and one per contiguous
  run of small ones; with the flat state layout of :func:`flat_state`, every state buffer of a parameter
  group in one contiguous block, a run's moments are read in place).

Use :class:`hf_ada.optim.Adan` unless you manage the state yourself.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

from . import _kernel, _native

__all__ = ["adan", "AdanHyperparameters", "flat_state", "STATE_KEYS"]

#: The per-parameter state tensors, in the order of :func:`adan`'s arguments and of a flat block's rows.
STATE_KEYS = ("exp_avg", "exp_avg_diff", "exp_avg_sq", "prev_grad")

#: Parameters with fewer elements than this are gathered into one kernel call per contiguous run (a compiled
#: call has a fixed Python / guard overhead that dominates for biases and norms).
FUSED_SMALL_NUMEL = 1 << 14


class AdanHyperparameters(NamedTuple):
    """One parameter group's hyperparameters, as the implementations take them."""

    beta1: float
    beta2: float
    beta3: float
    lr: float
    weight_decay: float
    eps: float
    no_prox: bool
    clip_coef: Tensor | None  # global-norm clipping factor, or None


def adan(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_diffs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_grads: list[Tensor],
    steps: list[Tensor],
    *,
    beta1: float,
    beta2: float,
    beta3: float,
    lr: float | Tensor,
    weight_decay: float,
    eps: float,
    no_prox: bool,
    clip_coef: Tensor | None = None,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> None:
    """Functional Adan: update ``params`` and the state lists in place (see :class:`~hf_ada.optim.Adan`).

    ``steps`` holds one float32 scalar tensor per parameter (incremented here); ``prev_grads`` holds the
    previous (clipped) gradient; ``clip_coef`` scales the gradients when given. Complex tensors are
    updated as pairs of reals (``torch.view_as_real``), as torch's Adam does. ``fused=None`` /
    ``foreach=None`` pick the multi-tensor path on CUDA and the single-tensor path elsewhere (the
    :class:`~hf_ada.optim.Adan` class decides about the compiled path by measuring).
    """
    if foreach and fused:
        raise ValueError("foreach=True and fused=True are mutually exclusive")
    if foreach is None and not fused:
        foreach = all(p.is_cuda for p in params)
    if fused:
        impl = _fused_adan
    elif foreach:
        impl = _multi_tensor_adan
    else:
        impl = _single_tensor_adan
    if any(torch.is_complex(p) for p in params):
        params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads = (
            [torch.view_as_real(t) if torch.is_complex(t) else t for t in column]
            for column in (params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads)
        )
    hp = AdanHyperparameters(beta1, beta2, beta3, float(lr), weight_decay, eps, no_prox, clip_coef)
    impl(params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads, steps, hp)


def flat_state(params: list[Tensor], dtypes: list[torch.dtype]) -> list[dict[str, Tensor]]:
    """Fresh zero state for ``params``: per (device, parameter dtype, state dtype), one ``[4, N]`` block
    whose rows hold the four state buffers of every parameter back to back (small parameters first, so
    they form one run). Returns, per parameter, its four state views (shaped like the parameter)."""
    out: list[dict[str, Tensor] | None] = [None] * len(params)
    blocks: dict[tuple, list[int]] = {}
    for i, (p, dtype) in enumerate(zip(params, dtypes)):
        blocks.setdefault((p.device, p.dtype, dtype), []).append(i)
    for (device, _param_dtype, dtype), idx in blocks.items():
        idx.sort(key=lambda i: params[i].numel() >= FUSED_SMALL_NUMEL)  # stable: small ones first
        total = sum(params[i].numel() for i in idx)
        block = torch.zeros(len(STATE_KEYS), total, dtype=dtype, device=device)
        offset = 0
        for i in idx:
            n = params[i].numel()
            out[i] = {key: block[row, offset : offset + n].view(params[i].shape) for row, key in enumerate(STATE_KEYS)}
            offset += n
    return out  # type: ignore[return-value]


def _step_sizes(step: float, hp: AdanHyperparameters) -> tuple[float, float, float]:
    """(lr / bc1, lr * beta2 / bc2, sqrt(bc3)) for the given 1-based step."""
    beta1, beta2, beta3, lr = hp.beta1, hp.beta2, hp.beta3, hp.lr
    bias_correction1 = 1.0 - beta1**step
    bias_correction2 = 1.0 - beta2**step
    bias_correction3_sqrt = math.sqrt(1.0 - beta3**step)
    return lr / bias_correction1, lr * beta2 / bias_correction2, bias_correction3_sqrt


def _single_tensor_adan(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_diffs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_grads: list[Tensor],
    steps: list[Tensor],
    hp: AdanHyperparameters,
) -> None:
    beta1, beta2, beta3, lr, weight_decay, eps, no_prox, clip_coef = hp
    for param, grad, exp_avg, exp_avg_diff, exp_avg_sq, prev_grad, step_t in zip(
        params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads, steps
    ):
        step_t += 1
        step_size, step_size_diff, bias_correction3_sqrt = _step_sizes(step_t.item(), hp)
        work_param = param if param.dtype == exp_avg.dtype else param.to(exp_avg.dtype)
        grad = grad.to(exp_avg.dtype)
        if clip_coef is not None:
            grad = grad * clip_coef
        diff = grad - prev_grad  # g_k - g_{k-1}
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_diff.mul_(beta2).add_(diff, alpha=1 - beta2)
        nesterov = diff.mul_(beta2).add_(grad)  # g_k + beta2 (g_k - g_{k-1})
        exp_avg_sq.mul_(beta3).addcmul_(nesterov, nesterov, value=1 - beta3)
        denom = exp_avg_sq.sqrt().div_(bias_correction3_sqrt).add_(eps)
        if no_prox:
            work_param.mul_(1 - lr * weight_decay)
        work_param.addcdiv_(exp_avg, denom, value=-step_size)
        work_param.addcdiv_(exp_avg_diff, denom, value=-step_size_diff)
        if not no_prox:
            work_param.div_(1 + lr * weight_decay)
        if work_param is not param:
            param.copy_(work_param)
        prev_grad.copy_(grad)


def _multi_tensor_adan(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_diffs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_grads: list[Tensor],
    steps: list[Tensor],
    hp: AdanHyperparameters,
) -> None:
    if not params:
        return
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        [params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads, steps]  # type: ignore[list-item]
    )
    for (_device, _dtype), (group_tensors, _) in grouped.items():
        d_params, d_grads, d_avgs, d_diffs, d_sqs, d_prev, d_steps = group_tensors
        # All tensors of a group share one step count only if they were created together; split otherwise.
        by_step: dict[float, list[int]] = {}
        torch._foreach_add_(d_steps, 1.0)
        for i, s in enumerate(d_steps):
            by_step.setdefault(s.item(), []).append(i)
        for step, idx in by_step.items():
            _multi_tensor_adan_same_step(
                *([column[i] for i in idx] for column in (d_params, d_grads, d_avgs, d_diffs, d_sqs, d_prev)),
                step,
                hp,
            )


def _multi_tensor_adan_same_step(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_diffs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_grads: list[Tensor],
    step: float,
    hp: AdanHyperparameters,
) -> None:
    beta1, beta2, beta3, lr, weight_decay, eps, no_prox, clip_coef = hp
    step_size, step_size_diff, bias_correction3_sqrt = _step_sizes(step, hp)
    state_dtype = exp_avgs[0].dtype
    low_precision_params = params[0].dtype != state_dtype
    work_params = [p.to(state_dtype) for p in params] if low_precision_params else params
    grads = [g.to(state_dtype) for g in grads] if grads[0].dtype != state_dtype else grads
    if clip_coef is not None:
        grads = torch._foreach_mul(grads, clip_coef.to(grads[0].device))
    diffs = torch._foreach_sub(grads, prev_grads)
    torch._foreach_mul_(exp_avgs, beta1)
    torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
    torch._foreach_mul_(exp_avg_diffs, beta2)
    torch._foreach_add_(exp_avg_diffs, diffs, alpha=1 - beta2)
    torch._foreach_mul_(diffs, beta2)
    torch._foreach_add_(diffs, grads)  # now the Nesterov gradient g + beta2 * diff
    torch._foreach_mul_(exp_avg_sqs, beta3)
    torch._foreach_addcmul_(exp_avg_sqs, diffs, diffs, value=1 - beta3)
    denom = diffs  # reuse the buffer
    torch._foreach_copy_(denom, exp_avg_sqs)
    torch._foreach_sqrt_(denom)
    torch._foreach_div_(denom, bias_correction3_sqrt)
    torch._foreach_add_(denom, eps)
    if no_prox:
        torch._foreach_mul_(work_params, 1 - lr * weight_decay)
    torch._foreach_addcdiv_(work_params, exp_avgs, denom, value=-step_size)
    torch._foreach_addcdiv_(work_params, exp_avg_diffs, denom, value=-step_size_diff)
    if not no_prox:
        torch._foreach_div_(work_params, 1 + lr * weight_decay)
    if low_precision_params:
        torch._foreach_copy_(params, work_params)
    torch._foreach_copy_(prev_grads, grads)


def _kernel_scalars(step: float, hp: AdanHyperparameters) -> list[float]:
    """The scalars both kernels take, without the clipping factor: beta1, beta2, beta3, step_size,
    step_size_diff, 1 / sqrt(bias_correction3), eps, pre_decay, 1 / post_decay."""
    beta1, beta2, beta3, lr, weight_decay, eps, no_prox, _clip_coef = hp
    step_size, step_size_diff, bc3_sqrt = _step_sizes(step, hp)
    pre_decay = 1 - lr * weight_decay if no_prox else 1.0
    post_decay = 1.0 if no_prox else 1 + lr * weight_decay
    return [beta1, beta2, beta3, step_size, step_size_diff, 1.0 / bc3_sqrt, eps, pre_decay, 1.0 / post_decay]


def _fused_scalars(step: float, device: torch.device, hp: AdanHyperparameters) -> Tensor:
    """The ``scalars`` vector of :func:`hf_ada.optim._kernel.adan_kernel` for one step on one device (the
    clipping factor stays a tensor: no host sync)."""
    scalars = torch.tensor([*_kernel_scalars(step, hp), 1.0], dtype=torch.float64, device=device)
    if hp.clip_coef is not None:
        scalars[-1] = hp.clip_coef.to(device)
    return scalars


def _contiguous_run(tensors: list[Tensor]) -> Tensor | None:
    """A 1-D view over ``tensors`` if they lie back to back in one storage (a flat-state run), else None."""
    first = tensors[0]
    if not first.is_contiguous():
        return None
    storage = first.untyped_storage().data_ptr()
    itemsize = first.element_size()
    expected = first.data_ptr()
    for t in tensors:
        if t.data_ptr() != expected or not t.is_contiguous() or t.untyped_storage().data_ptr() != storage:
            return None
        expected += t.numel() * itemsize
    total = sum(t.numel() for t in tensors)
    return first.as_strided((total,), (1,), first.storage_offset())


def _fused_adan(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_diffs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_grads: list[Tensor],
    steps: list[Tensor],
    hp: AdanHyperparameters,
) -> None:
    """Update with a fused kernel: float32 CPU tensors through the native kernel (one call per step count
    for all of them), the others (CUDA, low precision, or where the native kernel is unavailable) through
    the ``torch.compile`` kernel."""
    if not params:
        return
    columns = (params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads)
    if _native.available() and _native.eligible(*params, *grads, *exp_avgs, *exp_avg_diffs, *exp_avg_sqs, *prev_grads):
        if _native.library() is not None:  # the common case: every tensor of the group in one call
            _native_adan(*columns, steps, hp)
            return
    tensors = list(zip(*columns))
    native = [i for i, t in enumerate(tensors) if _native.eligible(*t)] if _native.available() else []
    if native and _native.library() is not None:
        _native_adan(*([column[i] for i in native] for column in (*zip(*tensors), steps)), hp)  # type: ignore[arg-type]
        if len(native) == len(tensors):
            return
        taken = set(native)
        rest = [i for i in range(len(tensors)) if i not in taken]
        tensors = [tensors[i] for i in rest]
        steps = [steps[i] for i in rest]
    _compiled_adan(*map(list, zip(*tensors)), steps, hp)  # type: ignore[call-arg]


def _native_scalars(step: float, hp: AdanHyperparameters) -> list[float]:
    """The native kernel's scalars (:data:`hf_ada.optim._native.SCALARS`) for one step."""
    clip = 1.0 if hp.clip_coef is None else float(hp.clip_coef)
    return [*_kernel_scalars(step, hp), clip, 1 - hp.beta1, 1 - hp.beta2, 1 - hp.beta3]


def _native_adan(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_diffs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_grads: list[Tensor],
    steps: list[Tensor],
    hp: AdanHyperparameters,
) -> None:
    """Update float32 CPU tensors with the native kernel: one call per step count (one call in all unless
    parameters joined the group late)."""
    by_step: dict[float, list[int]] = {}
    for i, s in enumerate(_native.advance(steps)):
        by_step.setdefault(s, []).append(i)
    columns = (params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads)
    for step, idx in by_step.items():
        if len(idx) == len(params):
            _native.update(*columns, _native_scalars(step, hp))
        else:
            _native.update(*([column[i] for i in idx] for column in columns), _native_scalars(step, hp))


def _compiled_adan(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_diffs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    prev_grads: list[Tensor],
    steps: list[Tensor],
    hp: AdanHyperparameters,
) -> None:
    """Update with the compiled kernel: one call per large parameter (its tensors read in place) and one call
    per (step, device, dtypes) bucket of small parameters: their parameters and gradients gathered, their
    state read in place when it is one contiguous run (the flat layout), else gathered too."""
    if not params:
        return
    tensors = list(zip(params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads))
    if _kernel.compile_failed():
        _single_tensor_adan(*map(list, zip(*tensors)), steps, hp)
        return
    torch._foreach_add_(steps, 1.0)
    step_values = [s.item() for s in steps]
    buckets: dict[tuple, list[int]] = {}
    large: list[int] = []
    fallback: list[int] = []
    for i, (param, grad, exp_avg, *_rest) in enumerate(tensors):
        if not (param.is_contiguous() and grad.is_contiguous() and all(t.is_contiguous() for t in _rest)):
            fallback.append(i)
        elif param.numel() < FUSED_SMALL_NUMEL:
            buckets.setdefault((step_values[i], param.device, param.dtype, grad.dtype, exp_avg.dtype), []).append(i)
        else:
            large.append(i)
    scalars_cache: dict[tuple[float, torch.device], Tensor] = {}

    def scalars_for(step: float, device: torch.device) -> Tensor:
        if (step, device) not in scalars_cache:
            scalars_cache[(step, device)] = _fused_scalars(step, device, hp)
        return scalars_cache[(step, device)]

    total_numel = sum(p.numel() for p in params)
    calls = [[i] for i in large] + list(buckets.values())
    for n_call, idx in enumerate(calls):
        columns = [[t.view(-1) for t in column] for column in zip(*(tensors[i] for i in idx))]
        write_back: list[int] = []  # columns gathered by cat, to be split back after the call
        buffers = []
        for c, column in enumerate(columns):
            if len(column) == 1:
                buffers.append(column[0])
                continue
            run = _contiguous_run(column) if c >= 2 else None
            if run is None:
                buffers.append(torch.cat(column))
                if c != 1:
                    write_back.append(c)
            else:
                buffers.append(run)
        try:
            _kernel.call_kernel(buffers, scalars_for(step_values[idx[0]], buffers[0].device), total_numel,
                                announce=n_call == 0 and step_values[idx[0]] == 1)  # fmt: skip
        except Exception as err:  # compile toolchain missing, unsupported backend, ...
            if n_call > 0:
                raise
            _kernel.mark_failed(err)
            torch._foreach_sub_(steps, 1.0)
            _single_tensor_adan(*map(list, zip(*tensors)), steps, hp)
            return
        if write_back:
            sizes = [t.numel() for t in columns[0]]
            for c in write_back:
                torch._foreach_copy_(columns[c], list(torch.split(buffers[c], sizes)))
    if fallback:
        torch._foreach_sub_([steps[i] for i in fallback], 1.0)
        _single_tensor_adan(*map(list, zip(*(tensors[i] for i in fallback))), [steps[i] for i in fallback], hp)
