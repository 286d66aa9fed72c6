"""Adan on CUDA: the compiled kernel through Triton over the flat state layout, against the reference
transcription and the eager paths. Marked ``gpu``, which the default test run deselects (pyproject
``addopts``): run ``pytest -m gpu tests/test_adan_gpu.py`` on a machine with a CUDA device (without one,
``-m gpu`` skips them with that reason)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hf_ada import Adan

from adan_reference import CASES, make_problem, run_reference

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run `pytest -m gpu` on a GPU machine)"),
]

PATHS = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True), "auto": {}}


def _run_cuda(params, grads, specs, max_grad_norm, **path):
    torch_params = [torch.nn.Parameter(p.clone().cuda()) for p in params]
    groups = [dict({k: v for k, v in spec.items() if k != "idx"}, params=[torch_params[i] for i in spec["idx"]])
              for spec in specs]  # fmt: skip
    opt = Adan(groups, max_grad_norm=max_grad_norm, **path)
    for step_grads in grads:
        for p, g in zip(torch_params, step_grads):
            p.grad = g.clone().cuda()
        opt.step()
    return opt, [p.detach().cpu() for p in torch_params]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", list(CASES))
def test_cuda_paths_match_reference(path, case):
    specs, max_grad_norm = CASES[case]
    params, grads = make_problem(seed=hash(case) % 1000, dtype=torch.float32)
    _opt, ours = _run_cuda(params, grads, specs, max_grad_norm, **PATHS[path])
    ref = run_reference([p.double() for p in params], [[g.double() for g in s] for s in grads], specs, max_grad_norm)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.double().numpy(), b, rtol=2e-5, atol=2e-6)


def test_cuda_fused_flat_state_bf16_fp32_state_and_exact_resume():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(300, 257), torch.nn.Tanh(), torch.nn.Linear(257, 3)).cuda().bfloat16()
    data = [torch.randn(8, 300, device="cuda", dtype=torch.bfloat16) for _ in range(6)]

    def train(m, opt, batches):
        for x in batches:
            opt.zero_grad()
            m(x).float().pow(2).mean().backward()
            opt.step()

    kwargs = dict(lr=1e-2, weight_decay=0.02, max_grad_norm=1.0, fp32_state=True, fused=True)
    straight = copy.deepcopy(model)
    opt = Adan(straight.parameters(), **kwargs)
    train(straight, opt, data)
    state = opt.state[next(straight.parameters())]
    assert state["exp_avg"].dtype == torch.float32 and state["exp_avg"].is_cuda and state["exp_avg"]._base is not None

    first = copy.deepcopy(model)
    opt1 = Adan(first.parameters(), **kwargs)
    train(first, opt1, data[:3])
    saved = copy.deepcopy((first.state_dict(), opt1.state_dict()))
    resumed = copy.deepcopy(model)
    resumed.load_state_dict(saved[0])
    opt2 = Adan(resumed.parameters(), lr=1e-2, fused=True)
    opt2.load_state_dict(saved[1])
    train(resumed, opt2, data[3:])
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
