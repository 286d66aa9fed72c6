"""Adan's arithmetic against a literal transcription of the reference algorithm, on every execution path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_ada import Adan

from adan_reference import CASES, SHAPES, make_problem, run_reference


def _run_hf_ada(params, grads, group_specs, max_grad_norm=0.0, **path):
    torch_params = [torch.nn.Parameter(p.clone()) for p in params]
    groups = [dict(spec, params=[torch_params[i] for i in spec["idx"]]) for spec in group_specs]
    for g in groups:
        g.pop("idx")
    opt = Adan(groups, max_grad_norm=max_grad_norm, **path)
    for step_grads in grads:
        for p, g in zip(torch_params, step_grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach().numpy() for p in torch_params]


PATHS = {"single": dict(foreach=False), "foreach": dict(foreach=True)}

@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference_transcription(path, case):
    specs, max_grad_norm = CASES[case]
    params, grads = make_problem(seed=hash(case) % 1000)
    ours = _run_hf_ada(params, grads, specs, max_grad_norm, **PATHS[path])
    ref = run_reference(params, grads, specs, max_grad_norm)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # and the update actually moved the parameters
    assert any(not np.allclose(a, p.numpy()) for a, p in zip(ours, params))


def test_single_and_foreach_are_bitwise_identical_float32():
    params, grads = make_problem(3, dtype=torch.float32)
    specs = CASES["groups"][0]
    a = _run_hf_ada(params, grads, specs, 1.0, foreach=False)
    b = _run_hf_ada(params, grads, specs, 1.0, foreach=True)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kernel", ["native", "compiled"])
def test_fused_matches_reference(kernel, monkeypatch):
    """Both fused kernels agree with the reference to float32 rounding: the native CPU kernel and the
    torch.compile one (compiled once per process, tens of seconds on CPU; HF_ADA_NATIVE_KERNEL=0 routes
    float32 CPU tensors to it)."""
    from hf_ada.optim import _native

    calls = []
    real_update = _native.update
    monkeypatch.setattr(_native, "update", lambda *a: calls.append(1) or real_update(*a))
    if kernel == "compiled":
        monkeypatch.setenv("HF_ADA_NATIVE_KERNEL", "0")
    params, grads = make_problem(4, dtype=torch.float32)
    specs = [dict(idx=[0, 1, 2], lr=1e-2, weight_decay=0.1)]
    ours = _run_hf_ada(params, grads, specs, 0.5, fused=True)
    ref = run_reference([p.double() for p in params], [[g.double() for g in s] for s in grads], specs, 0.5)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert len(calls) == (len(grads) if kernel == "native" else 0)  # one native call per step, all tensors


def test_first_step_difference_is_zero():
    """On the first step g_prev = g, so exp_avg_diff stays 0 and the update is the Adam-like part only."""
    p = torch.nn.Parameter(torch.ones(4))
    opt = Adan([p], lr=0.1)
    p.grad = torch.tensor([1.0, -2.0, 3.0, 0.5])
    opt.step()
    state = opt.state[p]
    assert torch.count_nonzero(state["exp_avg_diff"]) == 0
    torch.testing.assert_close(state["prev_grad"], p.grad)
    # with bias correction, step 1 is lr * sign(g) (up to eps)
    torch.testing.assert_close(p.detach(), 1 - 0.1 * torch.sign(p.grad), rtol=0, atol=1e-6)


def test_grad_not_modified_by_clipping():
    p = torch.nn.Parameter(torch.ones(3))
    opt = Adan([p], max_grad_norm=0.1)
    grad = torch.tensor([3.0, 4.0, 0.0])
    p.grad = grad.clone()
    opt.step()
    torch.testing.assert_close(p.grad, grad)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("fp32_state", [False, True])
def test_low_precision_params(dtype, fp32_state):
    params, grads = make_problem(5, dtype=torch.float32)
    specs = [dict(idx=[0, 1, 2], lr=1e-2, weight_decay=0.01)]
    ref = run_reference([p.double() for p in params], [[g.double() for g in s] for s in grads], specs)
    torch_params = [torch.nn.Parameter(p.to(dtype)) for p in params]
    opt = Adan(torch_params, lr=1e-2, weight_decay=0.01, fp32_state=fp32_state)
    for step_grads in grads:
        for p, g in zip(torch_params, step_grads):
            p.grad = g.to(dtype)
        opt.step()
    expected_state_dtype = torch.float32 if fp32_state else dtype
    for p, r in zip(torch_params, ref):
        assert p.dtype == dtype
        assert opt.state[p]["exp_avg_sq"].dtype == expected_state_dtype
        np.testing.assert_allclose(p.detach().double().numpy(), r, atol=0.05, rtol=0.02)


def test_fp32_state_is_closer_than_low_precision_state():
    params, grads = make_problem(6, dtype=torch.float32)
    specs = [dict(idx=[0, 1, 2], lr=1e-2)]
    ref = run_reference([p.double() for p in params], [[g.double() for g in s] for s in grads], specs)
    errors = {}
    for fp32_state in (False, True):
        torch_params = [torch.nn.Parameter(p.to(torch.bfloat16)) for p in params]
        opt = Adan(torch_params, lr=1e-2, fp32_state=fp32_state)
        for step_grads in grads:
            for p, g in zip(torch_params, step_grads):
                p.grad = g.to(torch.bfloat16)
            opt.step()
        errors[fp32_state] = max(float(np.abs(p.detach().double().numpy() - r).max()) for p, r in zip(torch_params, ref))
    assert errors[True] <= errors[False]


def test_state_dict_resume_is_exact():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    data = [torch.randn(4, 6) for _ in range(8)]

    def train(model, opt, batches):
        for x in batches:
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()

    import copy

    straight = copy.deepcopy(model)
    opt = Adan(straight.parameters(), lr=1e-2, weight_decay=0.02, max_grad_norm=1.0)
    train(straight, opt, data)

    first = copy.deepcopy(model)
    opt1 = Adan(first.parameters(), lr=1e-2, weight_decay=0.02, max_grad_norm=1.0)
    train(first, opt1, data[:4])
    saved_model, saved_opt = copy.deepcopy(first.state_dict()), copy.deepcopy(opt1.state_dict())

    resumed = copy.deepcopy(model)
    resumed.load_state_dict(saved_model)
    opt2 = Adan(resumed.parameters(), lr=1e-2, weight_decay=0.02)  # max_grad_norm comes back from the state
    opt2.load_state_dict(saved_opt)
    assert opt2.max_grad_norm == 1.0
    train(resumed, opt2, data[4:])
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_restart_opt_resets_moments():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = Adan([p], lr=0.1)
    for g in ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]):
        p.grad = torch.tensor(g)
        opt.step()
    opt.restart_opt()
    before = p.detach().clone()
    p.grad = torch.tensor([1.0, -1.0, 1.0])
    opt.step()
    assert opt.state[p]["step"].item() == 1
    torch.testing.assert_close(p.detach(), before - 0.1 * torch.sign(p.grad), rtol=0, atol=1e-6)


def test_late_parameter_gets_its_own_bias_correction():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = Adan([a, b], lr=0.1)
    for _ in range(3):
        a.grad = torch.ones(2)
        opt.step()
    b.grad = torch.ones(2)
    a.grad = torch.ones(2)
    opt.step()
    assert opt.state[a]["step"].item() == 4 and opt.state[b]["step"].item() == 1
    torch.testing.assert_close(b.detach(), torch.full((2,), -0.1), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=-1.0), "learning rate"),
        (dict(eps=-1e-8), "epsilon"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(betas=(0.9, 0.9)), "three"),
        (dict(betas=(0.9, 1.0, 0.9)), "index 1"),
        (dict(max_grad_norm=-1.0), "max_grad_norm"),
        (dict(foreach=True, fused=True), "mutually exclusive"),
    ],
)
def test_invalid_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adan([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_invalid_group_hyperparameters():
    p, q = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="index 2"):
        Adan([{"params": [p]}, {"params": [q], "betas": (0.9, 0.9, 1.5)}])


def test_sparse_gradients_rejected_with_torch_error_type():
    """torch's Adam / AdamW raise RuntimeError for sparse gradients; peer optimizer test suites expect it."""
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = Adan(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


def test_closure_returns_loss():
    p = torch.nn.Parameter(torch.ones(2))
    opt = Adan([p])

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(2.0)


@pytest.mark.parametrize("kernel", ["native", "compiled"])
def test_fused_buckets_small_large_noncontiguous_and_late_parameters(kernel, monkeypatch):
    """The compiled kernel concatenates small tensors per (step, dtype) bucket, is called per large tensor
    and falls back for non-contiguous ones; the native one calls once per step count; every route must
    agree with the single-tensor path."""
    if kernel == "compiled":
        monkeypatch.setenv("HF_ADA_NATIVE_KERNEL", "0")
    gen = torch.Generator().manual_seed(9)

    def make():
        return [
            torch.nn.Parameter(torch.randn(300, 250, generator=torch.Generator().manual_seed(1))),  # large
            torch.nn.Parameter(torch.randn(17, generator=torch.Generator().manual_seed(2))),  # small
            torch.nn.Parameter(torch.randn(5, 3, generator=torch.Generator().manual_seed(3))),  # small
            torch.nn.Parameter(torch.randn(6, 8, generator=torch.Generator().manual_seed(4)).t()),  # non-contiguous
            torch.nn.Parameter(torch.randn(4, generator=torch.Generator().manual_seed(5))),  # gets grads late
        ]

    grads = [[torch.randn(p.shape, generator=gen) for p in make()] for _ in range(5)]
    results = {}
    for path in (dict(foreach=False), dict(fused=True)):
        params = make()
        opt = Adan(params, lr=1e-2, weight_decay=0.05, max_grad_norm=5.0, **path)
        for step, step_grads in enumerate(grads):
            for i, (p, g) in enumerate(zip(params, step_grads)):
                p.grad = None if (i == 4 and step < 2) else g.clone()
            opt.step()
        results[str(path)] = params
    for a, b in zip(*results.values()):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_flat_fused_path_matches_reference(case):
    """The compiled kernel over the flat state layout, every reference case (float32: the kernel compiles
    once per dtype), to float32 rounding."""
    specs, max_grad_norm = CASES[case]
    params, grads = make_problem(seed=hash(case) % 1000, dtype=torch.float32)
    ours = _run_hf_ada(params, grads, specs, max_grad_norm, fused=True)
    ref = run_reference([p.double() for p in params], [[g.double() for g in s] for s in grads], specs, max_grad_norm)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert any(not np.allclose(a, p.numpy()) for a, p in zip(ours, params))


def test_flat_state_is_one_block_of_per_parameter_views():
    """fused=True keeps a group's four state buffers in one contiguous block; state_dict stays per parameter."""
    params = [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
    opt = Adan(params, lr=1e-2, fused=True)
    for p in params:
        p.grad = torch.randn(p.shape)
    opt.step()
    bases = {opt.state[p][key]._base.data_ptr() for p in params for key in ("exp_avg", "exp_avg_diff", "exp_avg_sq", "prev_grad")}
    assert len(bases) == 1
    sd = opt.state_dict()
    assert [tuple(sd["state"][i]["exp_avg"].shape) for i in range(3)] == SHAPES
    eager = Adan([torch.nn.Parameter(p.detach().clone()) for p in params], foreach=False)
    eager.load_state_dict(sd)  # the flat path's checkpoint loads into an eager optimizer, and back
    for i in range(3):
        torch.testing.assert_close(eager.state_dict()["state"][i]["exp_avg"], sd["state"][i]["exp_avg"], rtol=0, atol=0)


def test_fused_none_measures_once_and_records_the_choice(monkeypatch):
    """fused=None takes the fused path where its kernel is ready, else times the first (eager) step; the
    choice is recorded in the group and the state dict; a tiny group never compiles; tensor subclasses
    (FSDP2 DTensors) never take the compiled path."""
    from hf_ada.optim import _kernel, _native
    from hf_ada.optim.adan import _fused_eligible

    def chosen():
        p = torch.nn.Parameter(torch.randn(10))
        opt = Adan([p])
        p.grad = torch.randn(10)
        opt.step()
        assert opt.state_dict()["param_groups"][0]["chosen_path"] == opt.param_groups[0]["chosen_path"]
        return opt.param_groups[0]["chosen_path"]

    assert _native.library() is not None  # built (or already cached) here: the native kernel is ready...
    assert chosen() == "fused"  # ...so a group it updates takes it without measuring
    monkeypatch.setenv("HF_ADA_NATIVE_KERNEL", "0")  # without it, a tiny group is measured and not compiled
    compiled = _kernel.is_compiled(("cpu", torch.float32, torch.float32, torch.float32))
    assert chosen() == ("fused" if compiled else "single")
    assert _kernel.compile_pays_off(10.0) and not _kernel.compile_pays_off(1e-4)
    assert _kernel.compile_pays_off(0.05, _native.BUILD_S, _native.SAVING)  # a 50 ms step earns a build back

    class Subclass(torch.Tensor):
        pass

    assert not _fused_eligible([torch.empty(10).as_subclass(Subclass)])
    assert not _fused_eligible([torch.nn.Parameter(torch.empty(10, device="meta"))])


def test_complex_parameters_match_two_real_parameters():
    """Complex parameters are updated as (real, imag) pairs, as torch's Adam does (view_as_real)."""
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(4, 3, dtype=torch.complex64, generator=gen)
    grads = [torch.randn(4, 3, dtype=torch.complex64, generator=gen) for _ in range(4)]
    for path in (dict(foreach=False), dict(foreach=True), dict(fused=True)):
        pc = torch.nn.Parameter(z.clone())
        pr = torch.nn.Parameter(torch.view_as_real(z).clone())
        oc = Adan([pc], lr=1e-2, weight_decay=0.1, max_grad_norm=1.0, **path)
        orr = Adan([pr], lr=1e-2, weight_decay=0.1, max_grad_norm=1.0, foreach=False)
        for g in grads:
            pc.grad, pr.grad = g.clone(), torch.view_as_real(g).clone()
            oc.step()
            orr.step()
        assert pc.dtype == torch.complex64 and oc.state[pc]["exp_avg"].dtype == torch.complex64
        torch.testing.assert_close(torch.view_as_real(pc.detach()), pr.detach(), rtol=2e-5, atol=2e-6)
