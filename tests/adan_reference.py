"""The independent reference for Adan's arithmetic, shared by the Adan test files (not a test file itself).

* :class:`ReferenceAdan`: a literal numpy transcription of the paper's algorithm as written in sail-sg/Adan
  ``adan.py``;
* :func:`make_problem`: parameters of :data:`SHAPES` and six steps of gradients, from a seed;
* :func:`run_reference`: runs the transcription over such a problem for given parameter-group specs;
* :data:`CASES`: the group specs and clipping norms every execution path is checked on.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class ReferenceAdan:
    """Literal numpy transcription of sail-sg/Adan ``adan.py`` (``_single_tensor_adan`` + ``step``).

    Kept deliberately naive: one float64 array per buffer, the reference's own variable names
    (``neg_pre_grad``, group-level step, clipping by ``max_norm / (norm + eps)``).
    """

    def __init__(self, groups, max_grad_norm=0.0):
        # groups: list of dicts with "params" (list of np arrays) and hyperparameters
        self.groups = groups
        self.max_grad_norm = max_grad_norm
        self.state = {}

    def step(self, grads_per_group):
        if self.max_grad_norm > 0:
            total = 0.0
            for grads in grads_per_group:
                for g in grads:
                    total += float((g**2).sum())
            norm = math.sqrt(total)
            clip = min(self.max_grad_norm / (norm + self.groups[-1]["eps"]), 1.0)
        else:
            clip = 1.0
        for gi, (group, grads) in enumerate(zip(self.groups, grads_per_group)):
            beta1, beta2, beta3 = group["betas"]
            group["step"] = group.get("step", 0) + 1
            bias_correction1 = 1.0 - beta1 ** group["step"]
            bias_correction2 = 1.0 - beta2 ** group["step"]
            bias_correction3 = 1.0 - beta3 ** group["step"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            for pi, (param, grad) in enumerate(zip(group["params"], grads)):
                st = self.state.setdefault((gi, pi), {})
                if not st:
                    st["exp_avg"] = np.zeros_like(param)
                    st["exp_avg_sq"] = np.zeros_like(param)
                    st["exp_avg_diff"] = np.zeros_like(param)
                if "neg_pre_grad" not in st or group["step"] == 1:
                    st["neg_pre_grad"] = -clip * grad
                grad = grad * clip
                neg_grad_or_diff = st["neg_pre_grad"] + grad
                st["exp_avg"] = st["exp_avg"] * beta1 + (1 - beta1) * grad
                st["exp_avg_diff"] = st["exp_avg_diff"] * beta2 + (1 - beta2) * neg_grad_or_diff
                neg_grad_or_diff = neg_grad_or_diff * beta2 + grad
                st["exp_avg_sq"] = st["exp_avg_sq"] * beta3 + (1 - beta3) * neg_grad_or_diff * neg_grad_or_diff
                denom = np.sqrt(st["exp_avg_sq"]) / math.sqrt(bias_correction3) + eps
                step_size_diff = lr * beta2 / bias_correction2
                step_size = lr / bias_correction1
                if group["no_prox"]:
                    param *= 1 - lr * wd
                    param -= step_size * st["exp_avg"] / denom
                    param -= step_size_diff * st["exp_avg_diff"] / denom
                else:
                    param -= step_size * st["exp_avg"] / denom
                    param -= step_size_diff * st["exp_avg_diff"] / denom
                    param /= 1 + lr * wd
                st["neg_pre_grad"] = -grad


SHAPES = [(7, 5), (5,), (3, 4, 2)]


def make_problem(seed: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen, dtype=dtype) * (1 + step) for s in SHAPES] for step in range(6)]
    return params, grads


def run_reference(params, grads, group_specs, max_grad_norm=0.0):
    np_params = [p.numpy().copy() for p in params]
    groups = []
    for spec in group_specs:
        g = {k: v for k, v in spec.items() if k != "idx"}
        g.setdefault("betas", (0.98, 0.92, 0.99))
        g.setdefault("eps", 1e-8)
        g.setdefault("weight_decay", 0.0)
        g.setdefault("no_prox", False)
        g["params"] = [np_params[i] for i in spec["idx"]]
        groups.append(g)
    ref = ReferenceAdan(groups, max_grad_norm=max_grad_norm)
    for step_grads in grads:
        ref.step([[step_grads[i].numpy() for i in spec["idx"]] for spec in group_specs])
    return np_params


CASES = {
    "defaults": ([dict(idx=[0, 1, 2], lr=1e-3)], 0.0),
    "prox_wd": ([dict(idx=[0, 1, 2], lr=5e-2, weight_decay=0.1)], 0.0),
    "no_prox_wd": ([dict(idx=[0, 1, 2], lr=5e-2, weight_decay=0.1, no_prox=True)], 0.0),
    "clipping": ([dict(idx=[0, 1, 2], lr=1e-2, weight_decay=0.02)], 0.5),
    "groups": (
        [
            dict(idx=[0, 2], lr=3e-2, weight_decay=0.05, betas=(0.9, 0.9, 0.999)),
            dict(idx=[1], lr=1e-2, weight_decay=0.0, no_prox=True, eps=1e-6),
        ],
        1.0,
    ),
}


# -- a tiny training problem, run the same way on every Adan path ------------------------------------------

#: Adan's three implementations, as constructor options.
PATHS = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}


def tiny_model(dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).to(dtype)


def train(model, opt, batches):
    for x in batches:
        opt.zero_grad()
        model(x.to(next(model.parameters()).dtype)).float().pow(2).mean().backward()
        opt.step()


def batches(n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 6, generator=gen) for _ in range(n)]
