"""Adan: Adaptive Nesterov Momentum Algorithm (Xie et al., 2022, arXiv:2208.06677) as a
``torch.optim.Optimizer``.

Arithmetic follows the paper's reference implementation (sail-sg/Adan) step for step. With ``g_k`` the
(optionally clipped) gradient and ``g_{k-1}`` the previous one (``g_k`` itself on the first step)::

    m_k = beta1 * m_{k-1} + (1 - beta1) * g_k                              # exp_avg
    v_k = beta2 * v_{k-1} + (1 - beta2) * (g_k - g_{k-1})                   # exp_avg_diff
    n_k = beta3 * n_{k-1} + (1 - beta3) * (g_k + beta2 (g_k - g_{k-1}))^2   # exp_avg_sq
    denom = sqrt(n_k) / sqrt(1 - beta3^k) + eps
    theta -= lr / (1 - beta1^k) * m_k / denom + lr * beta2 / (1 - beta2^k) * v_k / denom

Weight decay is decoupled: proximal ``theta /= 1 + lr * wd`` after the update by default, ``theta *= 1 -
lr * wd`` before it with ``no_prox=True``. Unlike the reference, the step count is kept per parameter (as
in ``torch.optim.AdamW``), ``p.grad`` is never scaled in place, and the previous gradient is stored as
``prev_grad`` (the reference stores its negation).

Usage::

    from hf_ada import Adan
    opt = Adan(model.parameters(), lr=1e-3, weight_decay=0.02)

The update itself is :func:`hf_ada.optim.functional.adan`.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

from . import _kernel, _native
from ._notice import notice
from .functional import STATE_KEYS, adan, flat_state
from .optim_args import ADAN_DEFAULT_BETAS

logger = logging.getLogger(__name__)

__all__ = ["Adan", "NONFINITE_POLICIES"]

#: What :class:`Adan` does when a gradient holds ``inf`` or ``nan`` (``nonfinite_grads=``).
NONFINITE_POLICIES = ("skip", "raise", "off")

#: The execution paths a parameter group can run on (``chosen_path`` records ``fused=None``'s choice).
PATHS = ("single", "foreach", "fused")

#: Options that act on the whole optimizer (the global gradient norm, the skip decision): stored in every
#: parameter group like torch's own options, but they must agree across groups.
_GLOBAL_OPTIONS = ("max_grad_norm", "nonfinite_grads")


class Adan(Optimizer):
    """Adan optimizer.

    Args:
        params: iterable of parameters (or ``(name, parameter)`` pairs) or dicts defining parameter groups.
            Real floating and complex parameters (complex ones are updated as pairs of reals, as torch's
            Adam does); sparse gradients raise ``RuntimeError``.
        lr: learning rate (default ``1e-3``); finite and ``>= 0``, checked again at every step (a scheduler
            may change it) under the ``nonfinite_grads`` policy.
        betas: ``(beta1, beta2, beta3)`` for the gradient, gradient-difference and squared-Nesterov-gradient
            moments (default: the reference repository's, :data:`~hf_ada.optim.optim_args.ADAN_DEFAULT_BETAS`).
        eps: added to the denominator (default ``1e-8``); finite and ``> 0``.
        weight_decay: decoupled weight decay (default ``0``).
        max_grad_norm: clip the global gradient norm (over every group) to this value inside the optimizer;
            ``0`` turns it off (default). The norm is over the gradients *this process holds*: with sharded
            parameters (FSDP, DeepSpeed ZeRO) leave this at 0 and use the Trainer's / accelerate's
            ``max_grad_norm``, which computes the true global norm.
        no_prox: the multiplicative weight decay ``theta *= 1 - lr*wd`` before the update instead of the
            proximal ``theta /= 1 + lr*wd`` after it (default ``False``).
        nonfinite_grads: what a step does when a gradient holds ``inf`` / ``nan``, or a learning rate is
            not finite or negative:

            * ``"skip"`` (default): the whole step is skipped, like ``torch.amp.GradScaler`` does (nothing
              changes); it is counted in :attr:`skipped_steps` (saved in ``state_dict``) and a notice
              names the first offending parameter or group;
            * ``"raise"``: ``FloatingPointError`` (gradients) or ``ValueError`` (learning rate) naming it,
              before anything is modified;
            * ``"off"``: no check (the reference's behaviour).

            The check reads the gradient norm that clipping computes anyway, or costs one extra read of the
            gradients without clipping (``benchmarks/results/adan_overheads.md``). Under sharded
            parameters every process decides on its own shard: keep the Trainer's ``max_grad_norm`` on
            there, so that a ``nan`` anywhere reaches every rank.
        foreach: ``True``: the multi-tensor (``torch._foreach_*``) path; ``False``: the single-tensor path.
        fused: ``True``: a fused kernel over a flat state layout (one contiguous block per group, dtype
            and device): float32 parameters on the CPU through the native kernel (one call for the whole
            group; built once per machine with the C compiler and cached on disk: see
            :mod:`hf_ada.optim._native`), the others through ``torch.compile`` (the first step compiles
            and says so). ``False``: an eager path. ``None`` (default, with ``foreach=None``): the fused
            path where its kernel is ready (the native kernel built on this machine, or the compiled one
            in this process); otherwise the first step runs eagerly and is timed, and the group switches
            to the fused path only if building the kernel pays for itself within
            :data:`~hf_ada.optim._kernel.PAYOFF_STEPS` steps. The choice is stored in the group
            (``chosen_path``) and in ``state_dict``, so a resumed run keeps its path. Where building fails,
            the step warns and falls back to the single-tensor path.
        fp32_state: keep the moments in float32 for bf16 / fp16 parameters and do the update in float32
            (the parameter is written back in its own dtype). Kept through ``state_dict`` /
            ``load_state_dict``: a resumed run equals the uninterrupted one bit for bit.

    Every option lives in ``defaults`` and in each parameter group, so ``copy.deepcopy``, ``pickle`` and
    ``torch.save`` of the optimizer work. ``load_state_dict`` checks the whole state dict (another
    optimizer's, mismatched shapes, invalid settings or counters) before changing anything.

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
        betas: tuple[float, float, float] = ADAN_DEFAULT_BETAS,
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
            chosen_path=None,
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
        super().__setstate__(state)
        self.skipped_steps = int(skipped)

    # -- checkpoints ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict (one entry per parameter, whatever the path's memory layout), plus
        ``skipped_steps`` and ``max_grad_norm`` at the top level (as hf-ada 0.1 wrote it)."""
        sd = super().state_dict()
        sd["max_grad_norm"] = self.max_grad_norm
        sd["skipped_steps"] = self.skipped_steps
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by :meth:`state_dict` (of any execution path, or of hf-ada 0.1).

        The whole state dict is checked before anything is replaced: it must be an Adan state dict (three
        betas, Adan's four state buffers) whose shapes match this optimizer's parameters, whose settings are
        valid and whose counters (``step``, ``skipped_steps``) are finite whole numbers ``>= 0``. Unlike
        torch's default, moments saved in float32 for ``fp32_state=True`` groups stay float32, so a resumed
        bf16 run continues bit for bit; ``step`` stays a CPU float32 scalar.
        """
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError("not an optimizer state dict: expected a dict with the keys 'state' and 'param_groups'")
        state_dict = dict(state_dict)
        legacy_max_grad_norm = state_dict.pop("max_grad_norm", None)  # hf-ada 0.1 kept it only at the top level
        skipped = _checked_counter(state_dict.pop("skipped_steps", 0), "skipped_steps")
        saved_groups = [dict(g) for g in state_dict["param_groups"]]
        _fill_group_defaults(saved_groups, legacy_max_grad_norm, fallback=self.param_groups)
        state_dict["param_groups"] = saved_groups
        self._check_loadable(state_dict)
        saved_state = state_dict["state"]
        super().load_state_dict(state_dict)
        self.skipped_steps = skipped
        # torch cast every floating state tensor to the parameter's dtype: redo it from the saved tensors
        params_by_id = {
            pid: p
            for saved, group in zip(saved_groups, self.param_groups)
            for pid, p in zip(saved["params"], group["params"])
        }
        group_of = {id(p): g for g in self.param_groups for p in g["params"]}
        for pid, saved in saved_state.items():
            param = params_by_id[pid]
            target = _state_dtype(param, group_of[id(param)])
            restored = self.state[param]
            for key in STATE_KEYS:
                restored[key] = saved[key].to(device=param.device, dtype=target, copy=True)
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
        if not isinstance(state_dict["state"], dict):
            raise ValueError(f"cannot load this Adan state dict: 'state' is a {type(state_dict['state']).__name__}, not a dict")
        for pid, entry in state_dict["state"].items():
            missing = [k for k in (*STATE_KEYS, "step") if k not in entry]
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
                label = _param_label(group, index, gi)
                for key in STATE_KEYS:
                    if not isinstance(entry[key], Tensor):
                        raise ValueError(f"cannot load this Adan state dict: state {key!r} of {label} is a "
                                         f"{type(entry[key]).__name__}, not a tensor")  # fmt: skip
                    shape = tuple(entry[key].shape)
                    if shape != tuple(param.shape):
                        raise ValueError(
                            f"cannot load this Adan state dict: state {key!r} of {label} has "
                            f"shape {list(shape)} in the checkpoint but the parameter has shape {list(param.shape)}"
                        )
                _checked_counter(entry["step"], f"step of {label}")

    @torch.no_grad()
    def restart_opt(self) -> None:
        """Forget every moment and step count (the reference's ``restart_opt``): the next step is a first step."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state.pop(p, None)

    # -- the step ------------------------------------------------------------------------------------------

    def _path_of(self, group: dict[str, Any], params: list[Tensor]) -> str:
        """The group's execution path for this step: ``"single"``, ``"foreach"``, ``"fused"`` or ``"measure"``
        (run eagerly, time it, then record the choice)."""
        if group["fused"]:
            return "fused"
        if group["foreach"]:
            return "foreach"
        eager = "foreach" if group["foreach"] is None and all(p.is_cuda for p in params) else "single"
        if group["fused"] is False or group["foreach"] is False:
            return eager
        if group.get("chosen_path") in PATHS:
            return group["chosen_path"]
        if not _fused_eligible(params):
            group["chosen_path"] = eager
            return eager
        if _distributed():  # ranks must agree: they measure together instead of asking their own caches
            return "measure"
        if _native_group(params) and _native.is_built():
            group["chosen_path"] = "fused"
            return "fused"
        first = params[0]
        key = _kernel.kernel_key(first, first.grad, self.state[first]["exp_avg"])
        if _kernel.is_compiled(key):
            group["chosen_path"] = "fused"
            return "fused"
        return "measure"

    def _init_group(self, group: dict[str, Any], clip_coef: Tensor | None, flat: bool) -> dict[str, list[Tensor]]:
        lists: dict[str, list[Tensor]] = {k: [] for k in ("params", "grads", "steps", *STATE_KEYS)}
        fresh: list[Tensor] = []
        relayout: list[Tensor] = []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Adan does not support sparse gradients; use dense gradients (e.g. sparse=False)")
            state = self.state[p]
            if len(state) == 0:
                fresh.append(p)
            elif flat and not torch.is_complex(p) and _is_standalone(state["exp_avg"]):
                relayout.append(p)
            lists["params"].append(p)
        if fresh or relayout:
            self._allocate_state(group, fresh, relayout, clip_coef, flat)
        for p in lists["params"]:
            state = self.state[p]
            lists["grads"].append(p.grad)
            lists["steps"].append(state["step"])
            for key in STATE_KEYS:
                lists[key].append(state[key])
        return lists

    def _allocate_state(
        self, group: dict[str, Any], fresh: list[Tensor], relayout: list[Tensor], clip_coef: Tensor | None, flat: bool
    ) -> None:
        """Zero state for ``fresh`` parameters (``prev_grad`` = the first gradient, so the first difference is
        0); with ``flat``, fresh and ``relayout`` parameters (state loaded or made by another path) get their
        state in flat blocks, values kept."""
        blocked = [p for p in (*fresh, *relayout) if flat and not torch.is_complex(p)]
        views = dict(zip(map(id, blocked), flat_state(blocked, [_state_dtype(p, group) for p in blocked])))
        for p in relayout:
            for key in STATE_KEYS:
                views[id(p)][key].copy_(self.state[p][key])
                self.state[p][key] = views[id(p)][key]
        for p in fresh:
            dtype = _state_dtype(p, group)
            state = self.state[p]
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            if id(p) in views:
                state.update(views[id(p)])
                state["prev_grad"].copy_(p.grad)
            else:
                for key in ("exp_avg", "exp_avg_diff", "exp_avg_sq"):
                    state[key] = torch.zeros_like(p, dtype=dtype, memory_format=torch.contiguous_format)
                state["prev_grad"] = p.grad.to(dtype=dtype, copy=True, memory_format=torch.contiguous_format)
            if clip_coef is not None:
                state["prev_grad"].mul_(clip_coef)

    def _grads(self) -> list[Tensor]:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if any(g.is_sparse for g in grads):
            raise RuntimeError("Adan does not support sparse gradients; use dense gradients (e.g. sparse=False)")
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
            finite_now = _native.all_finite(grads)  # one read of the gradients, where the native kernel is loaded
            if finite_now is None:
                norms = torch._foreach_norm(grads, 2.0)
                finite_now = bool(torch.isfinite(torch.stack([n.float() for n in norms])).all())
            if not finite_now:
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

    def _bad_learning_rate(self) -> str | None:
        """The first parameter group whose ``lr`` is not finite or is negative (set after construction)."""
        for gi, group in enumerate(self.param_groups):
            lr = float(group["lr"])
            if not (math.isfinite(lr) and lr >= 0.0):
                return f"parameter group {gi} has lr={lr!r}"
        return None

    def _skip(self, what: str) -> None:
        self.skipped_steps += 1
        notice(logger, "Adan: step skipped, %s; parameters and moments unchanged (%d step(s) skipped so far)",
               what, self.skipped_steps)  # fmt: skip

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Perform a single optimization step. ``closure`` re-evaluates the model and returns the loss.

        With a non-finite gradient, or a learning rate that is not finite or negative, the step is skipped
        (``nonfinite_grads="skip"``), raises (``"raise"``) or proceeds (``"off"``); see the class docstring.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        policy = self.param_groups[0]["nonfinite_grads"]
        bad_lr = self._bad_learning_rate() if policy != "off" else None
        if bad_lr is not None:
            if policy == "raise":
                raise ValueError(f"Adan: {bad_lr} (must be finite and >= 0; a scheduler or a user set it after "
                                 "construction); nothing was updated")  # fmt: skip
            self._skip(f"{bad_lr} (must be finite and >= 0)")
            return loss
        clip_coef, finite = self._clip_coefficient_and_check()
        if not finite:
            culprits = ", ".join(self._nonfinite_parameters())
            if policy == "raise":
                raise FloatingPointError(
                    f"Adan: non-finite gradient (inf/nan) in {culprits}; nothing was updated "
                    "(nonfinite_grads='skip' skips such steps instead)"
                )
            self._skip(f"non-finite gradient (inf/nan) in {culprits}")
            return loss
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            flat = (group["fused"] is True or (
                group["fused"] is None and group["foreach"] is None and group.get("chosen_path") in (None, "fused")
            )) and _fused_eligible(params)  # fmt: skip
            lists = self._init_group(group, clip_coef, flat)
            path = self._path_of(group, lists["params"])
            if path == "measure":
                eager = "foreach" if all(p.is_cuda for p in params) else "single"
                elapsed = _agreed(_timed(lambda: self._update(group, lists, clip_coef, eager), params[0].device),
                                  params[0].device)  # fmt: skip
                cost = self._build_cost(group, params)
                group["chosen_path"] = "fused" if _kernel.compile_pays_off(elapsed, *cost) else eager
                logger.info("Adan: parameter group of %d tensors: eager step %.1f ms, so building the fused kernel "
                            "would pay off after ~%d steps by the cost model; chose the %s path", len(params),
                            elapsed * 1e3, _kernel.break_even_steps(elapsed, *cost), group["chosen_path"])  # fmt: skip
            else:
                self._update(group, lists, clip_coef, path)
        return loss

    def _build_cost(self, group: dict[str, Any], params: list[Tensor]) -> tuple[float, float]:
        """(seconds to build the group's fused kernel, fraction of an eager step it saves) for the cost model.
        A native group costs nothing to build where another group of this optimizer already takes the native
        kernel (the usual decay / no-decay pair: the small group rides on the large one's build). Depends only
        on what every rank shares (dtypes, devices, the groups' agreed choices), never on a local cache."""
        if not _native_group(params):
            return _kernel.COLD_COMPILE_S, _kernel.FUSED_SAVING
        for other in self.param_groups:
            if other is group or not (other["fused"] is True or other.get("chosen_path") == "fused"):
                continue
            trained = [p for p in other["params"] if p.grad is not None]
            if trained and _native_group(trained):
                return 0.0, _native.SAVING
        return _native.BUILD_S, _native.SAVING

    def _update(self, group: dict[str, Any], lists: dict[str, list[Tensor]], clip_coef: Tensor | None, path: str) -> None:
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
            foreach=path == "foreach",
            fused=path == "fused",
        )


def _timed(fn: Any, device: torch.device) -> float:
    """Seconds ``fn()`` took: on CPU the calling thread's CPU time (it works or waits at the other torch
    threads' barriers, but time the OS gave other processes is not counted, so the figure does not depend on
    the machine's load), elsewhere wall time after a device sync."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    clock = time.thread_time if device.type == "cpu" else time.perf_counter
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1


def _agreed(seconds: float, device: torch.device) -> float:
    """The slowest rank's time under torch.distributed (every rank then takes the same path, so data-parallel
    replicas apply bit-identical updates), else ``seconds``."""
    if not _distributed():
        return seconds
    backend = torch.distributed.get_backend()
    value = torch.tensor([seconds], dtype=torch.float64, device=device if backend == "nccl" else "cpu")
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return float(value)


def _fused_eligible(params: list[Tensor]) -> bool:
    """Whether a fused kernel can run these parameters: plain tensors on CPU or CUDA, with the native kernel
    (float32 on the CPU) or the ``torch.compile`` kernel working."""
    if not params:
        return False
    plain = (torch.nn.Parameter, Tensor)
    for p in params:  # a plain loop: this runs at every step
        if type(p) not in plain:
            return False  # DTensor (FSDP2 / tensor parallel) and other tensor subclasses: eager paths
        if not (p.is_cpu or p.is_cuda):
            return False
    # the torch.compile kernel runs any of them; only where it failed does the native kernel decide
    return not _kernel.compile_failed() or (_native.available() and _native_group(params))


def _native_group(params: list[Tensor]) -> bool:
    """Whether every parameter and gradient of the group is one the native CPU kernel updates."""
    return _native.eligible(*params, *(p.grad for p in params if p.grad is not None))


def _is_standalone(tensor: Tensor) -> bool:
    """Whether a state tensor is its own allocation rather than a view into a flat block."""
    base = tensor._base
    return base is None or base.dim() != 2 or base.shape[0] != len(STATE_KEYS)


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


def _checked_counter(value: Any, what: str) -> int:
    """A saved counter (``step``, ``skipped_steps``) as an int; ``ValueError`` unless a finite whole number >= 0."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
        number = float(value)
    elif _is_real(value):
        number = float(value)
    else:
        raise ValueError(f"cannot load this Adan state dict: {what} is {value!r} (must be a whole number >= 0)")
    if not (math.isfinite(number) and number >= 0 and number == int(number)):
        raise ValueError(f"cannot load this Adan state dict: {what} is {number!r} (must be a finite whole number >= 0)")
    return int(number)


def _fill_group_defaults(
    groups: list[dict[str, Any]], legacy_max_grad_norm: float | None, fallback: list[dict[str, Any]] | None = None
) -> None:
    """Give saved groups the options they lack (hf-ada 0.1 checkpoints, and ``chosen_path``), in place."""
    for i, group in enumerate(groups):
        previous = fallback[i] if fallback and i < len(fallback) else {}
        if "max_grad_norm" not in group:
            group["max_grad_norm"] = float(
                legacy_max_grad_norm if legacy_max_grad_norm is not None else previous.get("max_grad_norm", 0.0)
            )
        group.setdefault("nonfinite_grads", previous.get("nonfinite_grads", "skip"))
        for key, default in (("no_prox", False), ("foreach", None), ("fused", None), ("fp32_state", False)):
            group.setdefault(key, previous.get(key, default))
        group.setdefault("chosen_path", None)


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
    chosen = group.get("chosen_path")
    if chosen is not None and chosen not in PATHS:
        raise ValueError(f"Invalid chosen_path: {chosen!r}{where} (one of {', '.join(PATHS)}, or None)")
