"""Adan: Adaptive Nesterov Momentum Algorithm (Xie et al., 2022, arXiv:2208.06677).

Arithmetic follows the paper's public reference implementation (sail-sg/Adan, ``adan.py``) step for step.
With ``g_k`` the (optionally clipped) gradient and ``g_{k-1}`` the previous one (equal to ``g_k`` on the
first step, so the first difference is 0)::

    m_k = beta1 * m_{k-1} + (1 - beta1) * g_k                          # gradient EMA        (exp_avg)
    v_k = beta2 * v_{k-1} + (1 - beta2) * (g_k - g_{k-1})               # difference EMA      (exp_avg_diff)
    n_k = beta3 * n_{k-1} + (1 - beta3) * (g_k + beta2 (g_k - g_{k-1}))^2  # Nesterov 2nd moment (exp_avg_sq)
    denom = sqrt(n_k) / sqrt(1 - beta3^k) + eps
    theta -= lr / (1 - beta1^k) * m_k / denom + lr * beta2 / (1 - beta2^k) * v_k / denom

Weight decay is decoupled. The default ("proximal") form divides the parameter by ``1 + lr * wd`` *after*
the update; ``no_prox=True`` multiplies it by ``1 - lr * wd`` *before* the update (as in the reference).
The betas are the reference repository's (``1 - beta`` of the paper's notation).

Deliberate differences from the reference, none of which changes the arithmetic of a step:

* the step count is kept per parameter (``state["step"]``, like ``torch.optim.AdamW``) rather than per
  group, so a parameter that first receives a gradient late starts its own bias correction at 1;
* ``p.grad`` is never modified in place by the in-optimizer clipping (the reference scales it);
* the previous gradient is stored as ``prev_grad`` (the reference stores its negation).

Execution paths, behind one class like ``torch.optim.AdamW``:

* ``_single_tensor_adan``: a loop of in-place tensor ops, one parameter at a time;
* ``_multi_tensor_adan``: ``torch._foreach_*`` ops over all parameters of a device/dtype at once;
* ``_fused_adan``: one ``torch.compile``-generated kernel per parameter (fused C++/OpenMP loops on CPU,
  Triton on CUDA), reading and writing every buffer once. The first call compiles (about 20 s on CPU).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

logger = logging.getLogger(__name__)

__all__ = ["Adan", "adan"]

_STATE_KEYS = ("exp_avg", "exp_avg_diff", "exp_avg_sq", "prev_grad")


class Adan(Optimizer):
    """Adan optimizer.

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: learning rate (default ``1e-3``).
        betas: ``(beta1, beta2, beta3)`` for the gradient, gradient-difference and squared-Nesterov-gradient
            moments (default ``(0.98, 0.92, 0.99)``, the reference repository's).
        eps: added to the denominator (default ``1e-8``).
        weight_decay: decoupled weight decay (default ``0``).
        max_grad_norm: clip the global gradient norm (over every group) to this value inside the optimizer;
            ``0`` turns it off (default). The norm is over the gradients *this process holds*: with sharded
            parameters (FSDP, DeepSpeed ZeRO) that is a per-shard norm, so leave this at 0 there and use the
            Trainer's / accelerate's ``max_grad_norm``, which computes the true global norm.
        no_prox: use the multiplicative weight-decay form ``theta *= 1 - lr*wd`` before the update instead
            of the proximal ``theta /= 1 + lr*wd`` after it (default ``False``).
        foreach: use the multi-tensor (``torch._foreach_*``) path. ``None`` picks it when every parameter
            is on CUDA, where it is faster; on CPU the single-tensor path measured faster.
        fused: use the ``torch.compile``-fused kernel. ``None`` (default) picks it for a parameter group of at
            least :data:`FUSED_AUTO_MIN_NUMEL` (10M) elements on CPU or CUDA, unless ``foreach=True`` or the
            parameters are sharded DTensors: compiling costs ~8-10 s on CPU once (2-5 s with a warm Inductor
            cache), which a 25M-parameter GPT-2 earns back in ~120 steps and a 100M one in ~25, while a 1M one
            would need ~6,000 (``benchmarks/results/adan_step.md``). Where compiling fails, the first step
            warns and falls back to the single-tensor path.
        fp32_state: keep the moments in float32 for bf16 / fp16 parameters and do the update in float32
            (the parameter is written back in its own dtype). Default: state in the parameter's dtype.

    Example::

        >>> import torch
        >>> from hf_ada import Adan
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = Adan(model.parameters(), lr=1e-2, weight_decay=0.02)
        >>> model(torch.randn(8, 4)).sum().backward()
        >>> opt.step()
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        max_grad_norm: float = 0.0,
        no_prox: bool = False,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
        fp32_state: bool = False,
    ) -> None:
        _validate_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if not (isinstance(max_grad_norm, (int, float)) and max_grad_norm >= 0.0):
            raise ValueError(f"Invalid max_grad_norm: {max_grad_norm!r} (must be a float >= 0; 0 disables clipping)")
        if foreach and fused:
            raise ValueError("foreach=True and fused=True are mutually exclusive: pick one execution path")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            no_prox=bool(no_prox),
            foreach=foreach,
            fused=fused,
            fp32_state=bool(fp32_state),
        )
        super().__init__(params, defaults)
        self.max_grad_norm = float(max_grad_norm)
        for group in self.param_groups:
            _validate_hyperparameters(
                lr=group["lr"], betas=group["betas"], eps=group["eps"], weight_decay=group["weight_decay"]
            )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("no_prox", False)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)
            group.setdefault("fp32_state", False)

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["max_grad_norm"] = self.max_grad_norm
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        max_grad_norm = state_dict.pop("max_grad_norm", None)
        super().load_state_dict(state_dict)
        if max_grad_norm is not None:
            self.max_grad_norm = float(max_grad_norm)

    @torch.no_grad()
    def restart_opt(self) -> None:
        """Forget every moment and step count (the reference's ``restart_opt``): the next step is a first step."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state.pop(p, None)

    def _init_group(self, group: dict[str, Any], clip_coef: Tensor | None) -> dict[str, list[Tensor]]:
        lists: dict[str, list[Tensor]] = {k: [] for k in ("params", "grads", "steps", *_STATE_KEYS)}
        state_dtype = torch.float32 if group["fp32_state"] else None
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ValueError("Adan does not support sparse gradients; use dense gradients (e.g. sparse=False)")
            if torch.is_complex(p):
                raise ValueError("Adan does not support complex parameters")
            state = self.state[p]
            if len(state) == 0:
                dtype = state_dtype or p.dtype
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                for key in ("exp_avg", "exp_avg_diff", "exp_avg_sq"):
                    state[key] = torch.zeros_like(p, dtype=dtype, memory_format=torch.contiguous_format)
                first_grad = p.grad.to(dtype=dtype, copy=True, memory_format=torch.contiguous_format)
                if clip_coef is not None:
                    first_grad.mul_(clip_coef)
                state["prev_grad"] = first_grad  # first step: difference g_1 - g_0 is 0
            lists["params"].append(p)
            lists["grads"].append(p.grad)
            lists["steps"].append(state["step"])
            for key in _STATE_KEYS:
                lists[key].append(state[key])
        return lists

    def _clip_coefficient(self) -> Tensor | None:
        if self.max_grad_norm <= 0:
            return None
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return None
        norms = torch._foreach_norm(grads, 2.0)
        dtype = functools.reduce(torch.promote_types, (n.dtype for n in norms), torch.float32)
        total = torch.linalg.vector_norm(torch.stack([n.to(dtype) for n in norms]), 2.0)
        eps = self.param_groups[-1]["eps"]  # the reference divides by (norm + eps of the last group)
        return torch.clamp(self.max_grad_norm / (total + eps), max=1.0)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Perform a single optimization step. ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        clip_coef = self._clip_coefficient()
        for group in self.param_groups:
            lists = self._init_group(group, clip_coef)
            if not lists["params"]:
                continue
            beta1, beta2, beta3 = group["betas"]
            adan(
                lists["params"],
                lists["grads"],
                lists["exp_avg"],
                lists["exp_avg_diff"],
                lists["exp_avg_sq"],
                lists["prev_grad"],
                lists["steps"],
                beta1=beta1,
                beta2=beta2,
                beta3=beta3,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                no_prox=group["no_prox"],
                clip_coef=clip_coef,
                foreach=group["foreach"],
                fused=group["fused"],
            )
        return loss


def _validate_hyperparameters(*, lr: Any, betas: Any, eps: Any, weight_decay: Any) -> None:
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        lr_value = float(lr)
    else:
        lr_value = lr
    if not (isinstance(lr_value, (int, float)) and lr_value >= 0.0):
        raise ValueError(f"Invalid learning rate: {lr!r} (must be >= 0)")
    if not (isinstance(eps, (int, float)) and eps >= 0.0):
        raise ValueError(f"Invalid epsilon value: {eps!r} (must be >= 0)")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0.0):
        raise ValueError(f"Invalid weight_decay value: {weight_decay!r} (must be >= 0)")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 3):
        raise ValueError(f"Invalid betas: {betas!r} (Adan takes three: (beta1, beta2, beta3))")
    for i, beta in enumerate(betas):
        if not (isinstance(beta, (int, float)) and 0.0 <= beta < 1.0):
            raise ValueError(f"Invalid beta parameter at index {i}: {beta!r} (must be in [0, 1))")


# --------------------------------------------------------------------------------------------------------
# Functional core
# --------------------------------------------------------------------------------------------------------


class AdanHyperparameters(NamedTuple):
    """One parameter group's hyperparameters, as the execution paths take them."""

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
    """Functional Adan: update ``params`` and the state lists in place (see :class:`Adan`).

    ``steps`` holds one float32 scalar tensor per parameter (incremented here); ``prev_grads`` holds the
    previous (clipped) gradient. ``clip_coef`` scales the gradients (global-norm clipping) when given.
    """
    if fused is None:
        fused = foreach is not True and _fused_pays_off(params)
    if foreach is None:
        foreach = not fused and all(p.is_cuda for p in params)
    if foreach and fused:
        raise ValueError("foreach=True and fused=True are mutually exclusive")
    if fused:
        impl = _fused_adan
    elif foreach:
        impl = _multi_tensor_adan
    else:
        impl = _single_tensor_adan
    hp = AdanHyperparameters(
        beta1, beta2, beta3, float(lr), weight_decay, eps, no_prox, clip_coef  # float(): a Tensor lr too
    )
    impl(params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads, steps, hp)


#: ``fused=None`` picks the compiled kernel for parameter groups of at least this many elements (measured
#: break-even of the one-time compile: ~120 steps at 25M parameters, ~6,000 at 1M; see the class docstring).
FUSED_AUTO_MIN_NUMEL = 10_000_000

_FUSED_FAILED = False  # set once compiling failed in this process: later steps use the single-tensor path


def _fused_pays_off(params: list[Tensor]) -> bool:
    """Whether ``fused=None`` should take the compiled path for these parameters."""
    if _FUSED_FAILED or not params:
        return False
    if any(type(p) is not torch.nn.Parameter and type(p) is not Tensor for p in params):
        return False  # DTensor (FSDP2 / tensor parallel) and other tensor subclasses: eager paths
    if any(p.device.type not in ("cpu", "cuda") for p in params):
        return False
    return sum(p.numel() for p in params) >= FUSED_AUTO_MIN_NUMEL


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
                [d_params[i] for i in idx],
                [d_grads[i] for i in idx],
                [d_avgs[i] for i in idx],
                [d_diffs[i] for i in idx],
                [d_sqs[i] for i in idx],
                [d_prev[i] for i in idx],
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


def _adan_kernel(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_diff: Tensor,
    exp_avg_sq: Tensor,
    prev_grad: Tensor,
    scalars: Tensor,
) -> None:
    """One Adan update of flat tensors, written for ``torch.compile`` (every hyperparameter is a tensor
    entry of ``scalars`` so that changing step sizes never triggers a recompilation)."""
    beta1, beta2, beta3, step_size, step_size_diff, bc3_sqrt, eps, pre_decay, post_decay, clip = scalars.unbind()
    state_dtype = exp_avg.dtype
    g = grad.to(torch.float32) * clip
    prev = prev_grad.to(torch.float32)
    diff = g - prev
    m = exp_avg.to(torch.float32) * beta1 + g * (1 - beta1)
    v = exp_avg_diff.to(torch.float32) * beta2 + diff * (1 - beta2)
    nesterov = diff * beta2 + g
    n = exp_avg_sq.to(torch.float32) * beta3 + nesterov * nesterov * (1 - beta3)
    denom = n.sqrt() / bc3_sqrt + eps
    p = param.to(torch.float32) * pre_decay
    p = p - step_size * (m / denom)
    p = p - step_size_diff * (v / denom)
    p = p / post_decay
    param.copy_(p.to(param.dtype))
    exp_avg.copy_(m.to(state_dtype))
    exp_avg_diff.copy_(v.to(state_dtype))
    exp_avg_sq.copy_(n.to(state_dtype))
    prev_grad.copy_(g.to(state_dtype))


@functools.cache
def _compiled_kernel():
    return torch.compile(_adan_kernel, dynamic=True, fullgraph=True)



#: Parameters with fewer elements than this are concatenated and updated by one kernel call per step (a
#: kernel call costs ~20 us of Python/guard overhead, which dominates for biases and norms).
FUSED_SMALL_NUMEL = 1 << 16


def _fused_scalars(step: float, device: torch.device, hp: AdanHyperparameters) -> Tensor:
    """The ``scalars`` vector of :func:`_adan_kernel` for one step on one device."""
    beta1, beta2, beta3, lr, weight_decay, eps, no_prox, clip_coef = hp
    step_size, step_size_diff, bc3_sqrt = _step_sizes(step, hp)
    pre_decay = 1 - lr * weight_decay if no_prox else 1.0
    post_decay = 1.0 if no_prox else 1 + lr * weight_decay
    values = [beta1, beta2, beta3, step_size, step_size_diff, bc3_sqrt, eps, pre_decay, post_decay, 1.0]
    scalars = torch.tensor(values, dtype=torch.float32, device=device)
    if clip_coef is not None:
        scalars[-1] = clip_coef.to(device)
    return scalars


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
    """Update with the compiled :func:`_adan_kernel`: one call per large parameter, one call per
    (step, device, dtypes) bucket of small parameters (concatenated, then copied back)."""
    global _FUSED_FAILED
    tensors = list(zip(params, grads, exp_avgs, exp_avg_diffs, exp_avg_sqs, prev_grads))
    if _FUSED_FAILED:
        _single_tensor_adan(*map(list, zip(*tensors)), steps, hp)
        return
    kernel = _compiled_kernel()
    torch._foreach_add_(steps, 1.0)
    buckets: dict[tuple, list[int]] = {}
    large: list[int] = []
    fallback: list[int] = []
    for i, (param, grad, exp_avg, *_rest) in enumerate(tensors):
        if not param.is_contiguous():
            fallback.append(i)
        elif param.numel() < FUSED_SMALL_NUMEL:
            key = (steps[i].item(), param.device, param.dtype, grad.dtype, exp_avg.dtype)
            buckets.setdefault(key, []).append(i)
        else:
            large.append(i)
    scalars_cache: dict[tuple[float, torch.device], Tensor] = {}

    def scalars_for(step: float, device: torch.device) -> Tensor:
        if (step, device) not in scalars_cache:
            scalars_cache[(step, device)] = _fused_scalars(step, device, hp)
        return scalars_cache[(step, device)]

    calls: list[tuple[list[int], bool]] = [([i], False) for i in large] + [(idx, True) for idx in buckets.values()]
    for n_call, (idx, concatenated) in enumerate(calls):
        flats = [[t.reshape(-1) for t in column] for column in zip(*(tensors[i] for i in idx))]
        if concatenated:
            buffers = [torch.cat(column) if len(column) > 1 else column[0] for column in flats]
        else:
            buffers = [column[0] for column in flats]
        try:
            kernel(*buffers, scalars_for(steps[idx[0]].item(), buffers[0].device))
        except Exception as err:  # compile toolchain missing, unsupported backend, ...
            if n_call > 0:
                raise
            logger.warning("Adan fused (torch.compile) path unavailable (%s); falling back to single-tensor.", err)
            _FUSED_FAILED = True
            torch._foreach_sub_(steps, 1.0)
            _single_tensor_adan(*map(list, zip(*tensors)), steps, hp)
            return
        if concatenated and len(idx) > 1:
            sizes = [t.numel() for t in flats[0]]
            for column, buffer in zip(flats, buffers):  # write back all but the gradient (column 1)
                if column is not flats[1]:
                    torch._foreach_copy_(column, list(torch.split(buffer, sizes)))
    if fallback:
        torch._foreach_sub_([steps[i] for i in fallback], 1.0)
        _single_tensor_adan(*map(list, zip(*(tensors[i] for i in fallback))), [steps[i] for i in fallback], hp)
