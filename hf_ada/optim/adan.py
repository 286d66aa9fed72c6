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
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

from ._notice import notice

logger = logging.getLogger(__name__)

__all__ = ["Adan", "adan", "NONFINITE_POLICIES"]

_STATE_KEYS = ("exp_avg", "exp_avg_diff", "exp_avg_sq", "prev_grad")

#: What :class:`Adan` does when a gradient holds ``inf`` or ``nan`` (``nonfinite_grads=``).
NONFINITE_POLICIES = ("skip", "raise", "off")

#: Options that act on the whole optimizer (the global gradient norm, the skip decision): stored in every
#: parameter group like torch's own options, but they must agree across groups.
_GLOBAL_OPTIONS = ("max_grad_norm", "nonfinite_grads")


class Adan(Optimizer):
    """Adan optimizer.

    Args:
        params: iterable of parameters (or ``(name, parameter)`` pairs) or dicts defining parameter groups.
        lr: learning rate (default ``1e-3``); finite and ``>= 0``.
        betas: ``(beta1, beta2, beta3)`` for the gradient, gradient-difference and squared-Nesterov-gradient
            moments (default ``(0.98, 0.92, 0.99)``, the reference repository's).
        eps: added to the denominator (default ``1e-8``); finite and ``> 0``.
        weight_decay: decoupled weight decay (default ``0``).
        max_grad_norm: clip the global gradient norm (over every group) to this value inside the optimizer;
            ``0`` turns it off (default). The norm is over the gradients *this process holds*: with sharded
            parameters (FSDP, DeepSpeed ZeRO) that is a per-shard norm, so leave this at 0 there and use the
            Trainer's / accelerate's ``max_grad_norm``, which computes the true global norm.
        no_prox: use the multiplicative weight-decay form ``theta *= 1 - lr*wd`` before the update instead
            of the proximal ``theta /= 1 + lr*wd`` after it (default ``False``).
        nonfinite_grads: what a step does when any gradient holds ``inf`` / ``nan``:

            * ``"skip"`` (default): the whole step is skipped, like ``torch.amp.GradScaler`` does: no
              parameter, moment or step count changes; the step is counted in :attr:`skipped_steps` (saved in
              ``state_dict``) and a warning names the first offending parameter;
            * ``"raise"``: ``FloatingPointError`` naming the parameter, before anything is modified;
            * ``"off"``: no check (the reference's behaviour: a ``nan`` then spreads into the moments).

            With ``max_grad_norm > 0`` the check reads the global norm that clipping computes anyway (free);
            without it, the check is one extra 2-norm pass over the gradients (measured on 1 CPU thread at
            25M parameters: +7% on a single-tensor step, +22% on a fused step;
            ``benchmarks/results/adan_overheads.md``): use ``"off"`` where that matters. On CUDA the decision is a host sync per step. Under
            sharded parameters every process decides on its own shard: keep the Trainer's ``max_grad_norm``
            on there (its global norm turns a ``nan`` anywhere into ``nan`` gradients on every rank, so all
            ranks skip together).
        foreach: use the multi-tensor (``torch._foreach_*``) path. ``None`` picks it when every parameter
            is on CUDA, where it is faster; on CPU the single-tensor path measured faster.
        fused: use the ``torch.compile``-fused kernel. ``None`` (default) picks it for a parameter group of at
            least :data:`FUSED_AUTO_MIN_NUMEL` (10M) elements on CPU or CUDA, unless ``foreach=True`` or the
            parameters are sharded DTensors: compiling costs ~10 s on CPU once (~3 s with a warm Inductor
            cache), which a 25M-parameter GPT-2 earns back in ~120 steps and a 100M one in ~25, while a 1M one
            would need ~6,000 (``benchmarks/results/adan_step.md``). The compilation is logged (a warning
            line before and after, with the size's break-even). Where compiling fails, the first step
            warns and falls back to the single-tensor path.
        fp32_state: keep the moments in float32 for bf16 / fp16 parameters and do the update in float32
            (the parameter is written back in its own dtype). Default: state in the parameter's dtype.
            Kept through ``state_dict`` / ``load_state_dict`` (torch would cast the moments to the parameter's
            dtype): a resumed run equals the uninterrupted one bit for bit.

    Every option lives in ``defaults`` and in each parameter group (like ``torch.optim`` optimizers), so
    ``copy.deepcopy``, ``pickle`` and ``torch.save`` of the optimizer work. ``load_state_dict`` refuses, with
    a message, a state dict of another optimizer or with state shapes that do not match the parameters.

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
        params: Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        max_grad_norm: float = 0.0,
        no_prox: bool = False,
        *,
        nonfinite_grads: str = "skip",
        foreach: bool | None = None,
        fused: bool | None = None,
        fp32_state: bool = False,
    ) -> None:
        if foreach and fused:
            raise ValueError("foreach=True and fused=True are mutually exclusive: pick one execution path")
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, (tuple, list)) else betas,
            eps=eps,
            weight_decay=weight_decay,
            max_grad_norm=max_grad_norm,
            no_prox=bool(no_prox),
            nonfinite_grads=nonfinite_grads,
            foreach=foreach,
            fused=fused,
            fp32_state=bool(fp32_state),
        )
        _validate_group(defaults, where="")
        defaults["max_grad_norm"] = float(max_grad_norm)
        self.skipped_steps = 0
        super().__init__(params, defaults)

    # -- options stored per group --------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group (torch's semantics); its options are validated, and the optimizer-wide ones
        (``max_grad_norm``, ``nonfinite_grads``) must equal the other groups'."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if isinstance(group["betas"], list):
            group["betas"] = tuple(group["betas"])
        _validate_group(group, where=f" in parameter group {len(self.param_groups) - 1}")
        for key in _GLOBAL_OPTIONS:
            if group[key] != self.param_groups[0][key]:
                raise ValueError(
                    f"{key} acts on the whole optimizer (the global gradient norm / the skip decision) and must be "
                    f"the same in every parameter group: group 0 has {self.param_groups[0][key]!r}, group "
                    f"{len(self.param_groups) - 1} has {group[key]!r}"
                )

    @property
    def max_grad_norm(self) -> float:
        """In-optimizer global gradient-norm clipping (``0``: off); stored in every parameter group."""
        groups = self.__dict__.get("param_groups") or [self.defaults]
        return float(groups[0].get("max_grad_norm", 0.0))

    @max_grad_norm.setter
    def max_grad_norm(self, value: float) -> None:
        _validate_max_grad_norm(value)
        self.defaults["max_grad_norm"] = float(value)
        for group in self.param_groups:
            group["max_grad_norm"] = float(value)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["skipped_steps"] = self.skipped_steps
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        skipped = state.pop("skipped_steps", 0)
        legacy_max_grad_norm = state.pop("max_grad_norm", None)  # pickles of hf-ada <= 0.1 kept it as attribute
        super().__setstate__(state)
        self.skipped_steps = int(skipped)
        _fill_group_defaults(self.param_groups, legacy_max_grad_norm)
        self.defaults.setdefault("max_grad_norm", self.max_grad_norm)
        self.defaults.setdefault("nonfinite_grads", "skip")

    # -- checkpoints ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, plus ``max_grad_norm`` at the top level (read by hf-ada 0.1) and
        ``skipped_steps``."""
        sd = super().state_dict()
        sd["max_grad_norm"] = self.max_grad_norm
        sd["skipped_steps"] = self.skipped_steps
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by :meth:`state_dict` (of this or an earlier hf-ada version).

        Checked before anything is replaced: it must be an Adan state dict (three betas, Adan's four state
        buffers) whose state shapes match this optimizer's parameters. Unlike torch's default, moments saved
        in float32 for ``fp32_state=True`` groups stay float32 (torch would cast them to the parameter's
        dtype), so a resumed bf16 run continues bit for bit; ``step`` stays a CPU float32 scalar.
        """
        state_dict = dict(state_dict)
        legacy_max_grad_norm = state_dict.pop("max_grad_norm", None)
        skipped = state_dict.pop("skipped_steps", 0)
        if "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError("not an optimizer state dict: expected the keys 'state' and 'param_groups'")
        saved_groups = [dict(g) for g in state_dict["param_groups"]]
        _fill_group_defaults(saved_groups, legacy_max_grad_norm, fallback=self.param_groups)
        state_dict["param_groups"] = saved_groups
        self._check_loadable(state_dict)
        saved_state = state_dict["state"]
        super().load_state_dict(state_dict)
        self.skipped_steps = int(skipped)
        # torch cast every floating state tensor to the parameter's dtype: redo it from the saved tensors
        params_by_id = {
            pid: p
            for saved, group in zip(saved_groups, self.param_groups)
            for pid, p in zip(saved["params"], group["params"])
        }
        group_of = {id(p): g for g in self.param_groups for p in g["params"]}
        for pid, saved in saved_state.items():
            param = params_by_id[pid]
            group = group_of[id(param)]
            target = _state_dtype(param, group)
            restored = self.state[param]
            for key in _STATE_KEYS:
                if key in saved:
                    restored[key] = saved[key].to(device=param.device, dtype=target, copy=True)
            if "step" in saved:
                step = saved["step"]
                restored["step"] = (step.detach().to("cpu", torch.float32, copy=True) if isinstance(step, Tensor)
                                    else torch.tensor(float(step), dtype=torch.float32))  # fmt: skip

    def _check_loadable(self, state_dict: dict[str, Any]) -> None:
        saved_groups = state_dict["param_groups"]
        foreign = []
        for i, group in enumerate(saved_groups):
            betas = group.get("betas")
            if not (isinstance(betas, (tuple, list)) and len(betas) == 3):
                foreign.append(f"param group {i} has betas={betas!r} (Adan has three)")
        for pid, entry in state_dict["state"].items():
            missing = [k for k in (*_STATE_KEYS, "step") if k not in entry]
            if missing:
                foreign.append(f"state of parameter {pid} lacks {', '.join(missing)} (has {', '.join(map(str, entry))})")
            if len(foreign) > 3:
                break
        if foreign:
            raise ValueError(
                "cannot load this state dict into Adan: it was not saved by Adan (another optimizer's "
                "checkpoint?): " + "; ".join(foreign[:4])
            )
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"cannot load this Adan state dict: it has {len(saved_groups)} parameter group(s), this optimizer "
                f"{len(self.param_groups)} (the model or its no-decay grouping differs from the saved run)"
            )
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"cannot load this Adan state dict: parameter group {gi} has {len(saved['params'])} parameters "
                    f"in the checkpoint and {len(group['params'])} here"
                )
            _validate_group(saved, where=f" in the saved parameter group {gi}")
            for index, (pid, param) in enumerate(zip(saved["params"], group["params"])):
                entry = state_dict["state"].get(pid)
                if entry is None:
                    continue
                for key in _STATE_KEYS:
                    shape = tuple(getattr(entry[key], "shape", ()))
                    if shape != tuple(param.shape):
                        raise ValueError(
                            f"cannot load this Adan state dict: state {key!r} of {_param_label(group, index, gi)} has "
                            f"shape {list(shape)} in the checkpoint but the parameter has shape {list(param.shape)}"
                        )

    @torch.no_grad()
    def restart_opt(self) -> None:
        """Forget every moment and step count (the reference's ``restart_opt``): the next step is a first step."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state.pop(p, None)

    # -- the step ------------------------------------------------------------------------------------------

    def _init_group(self, group: dict[str, Any], clip_coef: Tensor | None) -> dict[str, list[Tensor]]:
        lists: dict[str, list[Tensor]] = {k: [] for k in ("params", "grads", "steps", *_STATE_KEYS)}
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ValueError("Adan does not support sparse gradients; use dense gradients (e.g. sparse=False)")
            if torch.is_complex(p):
                raise ValueError("Adan does not support complex parameters")
            state = self.state[p]
            if len(state) == 0:
                dtype = _state_dtype(p, group)
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

    def _grads(self) -> list[Tensor]:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if any(g.is_sparse for g in grads):
            raise ValueError("Adan does not support sparse gradients; use dense gradients (e.g. sparse=False)")
        return grads

    def _clip_coefficient_and_check(self) -> tuple[Tensor | None, bool]:
        """(clip coefficient or None, whether every gradient is finite). One pass over the gradients at most:
        the clipping norm when clipping is on, else a 2-norm per gradient; a non-finite norm is then confirmed
        by an exact per-tensor check (squares of huge finite values can overflow)."""
        policy = self.param_groups[0]["nonfinite_grads"]
        max_grad_norm = self.max_grad_norm
        grads = self._grads()
        if not grads:
            return None, True
        clip_coef = None
        finite = True
        if max_grad_norm > 0:
            norms = torch._foreach_norm(grads, 2.0)
            dtype = functools.reduce(torch.promote_types, (n.dtype for n in norms), torch.float32)
            total = torch.linalg.vector_norm(torch.stack([n.to(dtype) for n in norms]), 2.0)
            eps = self.param_groups[-1]["eps"]  # the reference divides by (norm + eps of the last group)
            clip_coef = torch.clamp(max_grad_norm / (total + eps), max=1.0)
            if policy != "off" and not bool(torch.isfinite(total)):
                finite = not self._nonfinite_parameters()  # inf can also be an overflow of finite squares
        elif policy != "off":
            # the 2-norm: one vectorised pass (the inf-norm measured 8x slower on CPU); an inf from squares of
            # huge finite values is told apart by the exact per-tensor check
            norms = torch._foreach_norm(grads, 2.0)
            if not bool(torch.isfinite(torch.stack([n.float() for n in norms])).all()):
                finite = not self._nonfinite_parameters()
        return clip_coef, finite

    def _nonfinite_parameters(self, limit: int = 3) -> list[str]:
        found = []
        for gi, group in enumerate(self.param_groups):
            for index, p in enumerate(group["params"]):
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    found.append(_param_label(group, index, gi))
                    if len(found) >= limit:
                        return found
        return found

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Perform a single optimization step. ``closure`` re-evaluates the model and returns the loss.

        With a non-finite gradient the step is skipped (``nonfinite_grads="skip"``), raises (``"raise"``) or
        proceeds (``"off"``); see the class docstring.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        clip_coef, finite = self._clip_coefficient_and_check()
        if not finite:
            culprits = ", ".join(self._nonfinite_parameters())
            if self.param_groups[0]["nonfinite_grads"] == "raise":
                raise FloatingPointError(
                    f"Adan: non-finite gradient (inf/nan) in {culprits}; nothing was updated "
                    "(nonfinite_grads='skip' skips such steps instead)"
                )
            self.skipped_steps += 1
            notice(
                logger,
                "Adan: step skipped, non-finite gradient (inf/nan) in %s; parameters and moments unchanged "
                "(%d step(s) skipped so far)", culprits, self.skipped_steps,
            )  # fmt: skip
            return loss
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


def _state_dtype(param: Tensor, group: dict[str, Any]) -> torch.dtype:
    """float32 for low-precision floating parameters of an ``fp32_state`` group, else the parameter's dtype."""
    if group.get("fp32_state") and param.is_floating_point() and param.dtype.itemsize < 4:
        return torch.float32
    return param.dtype


def _param_label(group: dict[str, Any], index: int, group_index: int) -> str:
    names = group.get("param_names")
    param = group["params"][index]
    where = f"param_groups[{group_index}]['params'][{index}] (shape {list(param.shape)}, {param.dtype})"
    if names and index < len(names):
        return f"parameter {names[index]!r} ({where})"
    return f"parameter {where}"


def _fill_group_defaults(
    groups: list[dict[str, Any]], legacy_max_grad_norm: float | None, fallback: list[dict[str, Any]] | None = None
) -> None:
    """Give groups saved by earlier hf-ada versions the options they lack (in place)."""
    for i, group in enumerate(groups):
        previous = fallback[i] if fallback and i < len(fallback) else {}
        if "max_grad_norm" not in group:
            group["max_grad_norm"] = float(
                legacy_max_grad_norm if legacy_max_grad_norm is not None else previous.get("max_grad_norm", 0.0)
            )
        group.setdefault("nonfinite_grads", previous.get("nonfinite_grads", "skip"))
        for key, default in (("no_prox", False), ("foreach", None), ("fused", None), ("fp32_state", False)):
            group.setdefault(key, previous.get(key, default))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_max_grad_norm(value: Any) -> None:
    if not (_is_real(value) and math.isfinite(value) and value >= 0.0):
        raise ValueError(f"Invalid max_grad_norm: {value!r} (must be a finite float >= 0; 0 disables clipping)")


def _validate_group(group: dict[str, Any], where: str = "") -> None:
    """Raise ``ValueError`` naming the first invalid option of a parameter group (or of the defaults)."""
    lr = group["lr"]
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"Tensor lr must be 1-element{where}")
        lr_value = float(lr)
    else:
        lr_value = lr
    if not (_is_real(lr_value) and math.isfinite(lr_value) and lr_value >= 0.0):
        raise ValueError(f"Invalid learning rate: {lr!r}{where} (must be finite and >= 0)")
    eps = group["eps"]
    if not (_is_real(eps) and math.isfinite(eps) and eps > 0.0):
        raise ValueError(f"Invalid epsilon value: {eps!r}{where} (must be finite and > 0: it keeps the denominator away from 0)")
    weight_decay = group["weight_decay"]
    if not (_is_real(weight_decay) and math.isfinite(weight_decay) and weight_decay >= 0.0):
        raise ValueError(f"Invalid weight_decay value: {weight_decay!r}{where} (must be finite and >= 0)")
    betas = group["betas"]
    if not (isinstance(betas, (tuple, list)) and len(betas) == 3):
        raise ValueError(f"Invalid betas: {betas!r}{where} (Adan takes three: (beta1, beta2, beta3))")
    for i, beta in enumerate(betas):
        if not (_is_real(beta) and 0.0 <= beta < 1.0):
            raise ValueError(f"Invalid beta parameter at index {i}: {beta!r}{where} (must be in [0, 1))")
    _validate_max_grad_norm(group.get("max_grad_norm", 0.0))
    policy = group.get("nonfinite_grads", "skip")
    if policy not in NONFINITE_POLICIES:
        raise ValueError(f"Invalid nonfinite_grads: {policy!r}{where} (one of {', '.join(NONFINITE_POLICIES)})")
    if group.get("foreach") and group.get("fused"):
        raise ValueError(f"foreach=True and fused=True are mutually exclusive{where}")


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


#: (device type, param dtype, grad dtype, state dtype) combinations compiled in this process.
_COMPILED: set[tuple[str, torch.dtype, torch.dtype, torch.dtype]] = set()

#: Measured on 2 CPU cores (benchmarks/results/adan_step.md, adan_overheads.md): compiling takes ~10-13 s with a
#: cold Inductor cache (~3-6 s warm), and the fused kernel saved ~2.8 ns per parameter element and step over the
#: single-tensor path on an AMD EPYC; on an Intel Xeon with a 480 MiB L3 (which holds a 25M model's whole
#: state, so the single-tensor path's extra passes are cheap) it saved ~0 at 25M and ~2% at 100M, so the
#: estimate below is a best case for how soon the compile pays off.
_COLD_COMPILE_S = 10.0
_SAVED_S_PER_ELEMENT = 2.8e-9


def _key_text(key: tuple[str, torch.dtype, torch.dtype, torch.dtype]) -> str:
    device, param_dtype, grad_dtype, state_dtype = key
    return f"{device}, params {str(param_dtype).removeprefix('torch.')}, state {str(state_dtype).removeprefix('torch.')}"


def break_even_steps(numel: int, compile_s: float = _COLD_COMPILE_S) -> int:
    """Steps after which the fused path's one-time compilation has paid for itself on CPU, at best (rule from
    the CPU where it saved most: ``compile_s / (2.8 ns x numel)``; e.g. ~140 steps at 25M elements, ~3,600 at
    1M with a cold cache; on a CPU whose cache holds the optimizer state the saving can be ~0)."""
    return math.ceil(compile_s / (_SAVED_S_PER_ELEMENT * max(numel, 1)))


def _inductor_cache_dir() -> str:
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        return cache_dir()
    except Exception:  # private API moved: the message then just omits the folder
        return "(Inductor's default cache folder)"


def _compile_and_call(kernel: Any, key: tuple, numel: int, buffers: list[Tensor], scalars: Tensor) -> None:
    """First call of the compiled kernel for ``key``: logged before (what, why, how to avoid) and after (time,
    whether Inductor's on-disk cache served it), since it stalls the first step for seconds."""
    from torch._dynamo.utils import counters

    notice(
        logger,
        "Adan: compiling the fused kernel (torch.compile, %s) for %.1fM parameters at the first step: ~%.0f s "
        "with a cold cache, less with the warm Inductor cache in %s; pays off after ~%d steps at best (the "
        "per-step saving varies by CPU, from ~0 to 4x; fused=False skips it)",
        _key_text(key), numel / 1e6, _COLD_COMPILE_S, _inductor_cache_dir(), break_even_steps(numel),
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
    total_numel = sum(p.numel() for p in params)
    announced = False
    for n_call, (idx, concatenated) in enumerate(calls):
        flats = [[t.reshape(-1) for t in column] for column in zip(*(tensors[i] for i in idx))]
        if concatenated:
            buffers = [torch.cat(column) if len(column) > 1 else column[0] for column in flats]
        else:
            buffers = [column[0] for column in flats]
        try:
            step = steps[idx[0]].item()
            key = (buffers[0].device.type, buffers[0].dtype, buffers[1].dtype, buffers[2].dtype)
            if key in _COMPILED:
                if step == 1 and not announced:
                    notice(logger, "Adan: reusing the fused kernel compiled earlier in this process (%s; no compile)",
                           _key_text(key))  # fmt: skip
                    announced = True
                kernel(*buffers, scalars_for(step, buffers[0].device))
            else:
                _compile_and_call(kernel, key, total_numel, buffers, scalars_for(step, buffers[0].device))
                announced = True  # this step compiled: the later calls of the same step are no "reuse"
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
