"""Adan never corrupts a run silently: copies and checkpoints, fp32 state through resume, non-finite gradients,
invalid settings and foreign / mismatched state dicts (issue 10, section 3)."""

from __future__ import annotations

import copy
import io
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_ada import Adan

from adan_reference import PATHS, make_problem, run_reference
from adan_reference import batches as _batches, tiny_model as _tiny_model, train as _train

ASSETS = Path(__file__).parent / "assets"


# -- copies and checkpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_of_the_optimizer_keep_every_setting_and_step_identically(how):
    model = _tiny_model()
    opt = Adan(model.parameters(), lr=1e-2, weight_decay=0.02, max_grad_norm=0.5, no_prox=True, nonfinite_grads="raise")
    _train(model, opt, _batches(3))
    twin_model = copy.deepcopy(model)
    if how == "deepcopy":
        twin = copy.deepcopy(opt)
    elif how == "pickle":
        twin = pickle.loads(pickle.dumps(opt))
    else:
        buffer = io.BytesIO()
        torch.save(opt, buffer)
        buffer.seek(0)
        twin = torch.load(buffer, weights_only=False)
    assert twin.max_grad_norm == 0.5 and twin.param_groups[0]["nonfinite_grads"] == "raise"
    # rebind the copy to the copied model's parameters, as a deepcopy of (model, optimizer) together would
    mapping = dict(zip(model.parameters(), twin_model.parameters()))
    twin_params = [p for g in twin.param_groups for p in g["params"]]
    twin_map = dict(zip(twin_params, twin_model.parameters()))
    for group in twin.param_groups:
        group["params"] = [twin_map[p] for p in group["params"]]
    twin.state = type(twin.state)(dict, {twin_map[p]: s for p, s in twin.state.items()})
    assert len(mapping) == len(twin_map)
    batches = _batches(3, seed=2)
    _train(model, opt, batches)
    _train(twin_model, twin, batches)  # raised AttributeError: max_grad_norm before
    for a, b in zip(model.parameters(), twin_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_deepcopy_of_model_and_optimizer_together():
    model = _tiny_model()
    opt = Adan(model.parameters(), lr=1e-2, max_grad_norm=1.0)
    _train(model, opt, _batches(2))
    model2, opt2 = copy.deepcopy((model, opt))
    _train(model, opt, _batches(2, seed=3))
    _train(model2, opt2, _batches(2, seed=3))
    for a, b in zip(model.parameters(), model2.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# every path with fp32 moments; bf16 moments on the eager paths (one fused compile per dtype pair is enough)
_RESUME_CASES = [(path, True) for path in PATHS] + [(path, False) for path in PATHS if path != "fused"]


@pytest.mark.parametrize(("path", "fp32_state"), _RESUME_CASES)
def test_bf16_resume_equals_uninterrupted_bit_for_bit(path, fp32_state):
    """torch's load_state_dict casts state to the parameter dtype; fp32 moments must come back as fp32."""
    kwargs = dict(lr=1e-2, weight_decay=0.02, max_grad_norm=1.0, fp32_state=fp32_state, **PATHS[path])
    data = _batches(8)
    straight = _tiny_model(torch.bfloat16)
    _train(straight, Adan(straight.parameters(), **kwargs), data)

    first = _tiny_model(torch.bfloat16)
    opt1 = Adan(first.parameters(), **kwargs)
    _train(first, opt1, data[:4])
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt1.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # what the Trainer does on resume

    resumed = _tiny_model(torch.bfloat16)
    resumed.load_state_dict(saved["model"])
    opt2 = Adan(resumed.parameters(), lr=1e-2, **PATHS[path])  # every other option comes back from the checkpoint
    opt2.load_state_dict(saved["opt"])
    expected = torch.float32 if fp32_state else torch.bfloat16
    assert all(opt2.state[p]["exp_avg_sq"].dtype == expected for p in resumed.parameters())
    assert all(opt2.state[p]["step"].dtype == torch.float32 for p in resumed.parameters())
    assert opt2.max_grad_norm == 1.0 and opt2.param_groups[0]["fp32_state"] is fp32_state
    _train(resumed, opt2, data[4:])
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_state_dict_of_hf_ada_0_1_loads_and_resumes_exactly():
    """A checkpoint written by the previous release (max_grad_norm at the top level, not in the groups)."""
    saved = torch.load(ASSETS / "adan_state_v0_1.pt", weights_only=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).to(torch.bfloat16)
    model.load_state_dict(saved["model"])
    opt = Adan([{"params": [model[0].weight, model[1].weight], "weight_decay": 0.02},
                {"params": [model[0].bias, model[1].bias], "weight_decay": 0.0}], lr=1e-2)  # fmt: skip
    opt.load_state_dict(saved["optimizer"])
    assert opt.max_grad_norm == 0.75 and all(g["max_grad_norm"] == 0.75 for g in opt.param_groups)
    assert all(g["no_prox"] and g["fp32_state"] and g["nonfinite_grads"] == "skip" for g in opt.param_groups)
    assert opt.state[model[0].weight]["exp_avg"].dtype == torch.float32
    for x in saved["later_inputs"]:
        opt.zero_grad()
        model(x).float().pow(2).mean().backward()
        opt.step()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved["expected_model"][key], rtol=0, atol=0)
    # and what it writes now still carries the top-level key that hf-ada 0.1 reads
    assert opt.state_dict()["max_grad_norm"] == 0.75


# -- non-finite gradients -----------------------------------------------------------------------------------


def _run_with_bad_step(path, max_grad_norm, policy, bad_value, bad_step=2):
    params, grads = make_problem(11, dtype=torch.float32 if path == "fused" else torch.float64)
    torch_params = [torch.nn.Parameter(p.clone()) for p in params]
    opt = Adan([{"params": torch_params, "param_names": ["w", "b", "k"]}], lr=1e-2, weight_decay=0.02,
               max_grad_norm=max_grad_norm, nonfinite_grads=policy, **PATHS[path])  # fmt: skip
    for step, step_grads in enumerate(grads):
        for p, g in zip(torch_params, step_grads):
            p.grad = g.clone()
        if step == bad_step:
            torch_params[1].grad[2] = bad_value
        opt.step()
    return opt, torch_params, params, grads


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("max_grad_norm", [0.0, 2.0])
@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_nonfinite_step_is_skipped_and_the_run_equals_one_without_it(path, max_grad_norm, bad_value, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_ada.optim.adan"):
        opt, ours, params, grads = _run_with_bad_step(path, max_grad_norm, "skip", bad_value)
    assert opt.skipped_steps == 1
    assert "step skipped" in caplog.text and "parameter 'b'" in caplog.text
    assert all(opt.state[p]["step"].item() == len(grads) - 1 for p in ours)
    # the reference transcription, fed the same gradients minus the skipped step
    kept = [g for i, g in enumerate(grads) if i != 2]
    specs = [dict(idx=[0, 1, 2], lr=1e-2, weight_decay=0.02)]
    ref = run_reference([p.double() for p in params], [[g.double() for g in s] for s in kept], specs, max_grad_norm)
    tol = dict(rtol=2e-5, atol=2e-6) if path == "fused" else dict(rtol=1e-12, atol=1e-14)
    for a, b in zip(ours, ref):
        assert torch.isfinite(a).all()
        np.testing.assert_allclose(a.detach().double().numpy(), b, **tol)
    assert opt.state_dict()["skipped_steps"] == 1


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("max_grad_norm", [0.0, 2.0])
@pytest.mark.parametrize("named", [True, False])
def test_nonfinite_raise_names_the_parameter_and_changes_nothing(path, max_grad_norm, named):
    params, grads = make_problem(12, dtype=torch.float32)
    torch_params = [torch.nn.Parameter(p.clone()) for p in params]
    group = {"params": torch_params, "param_names": ["w", "b", "k"]} if named else {"params": torch_params}
    opt = Adan([group], lr=1e-2, max_grad_norm=max_grad_norm, nonfinite_grads="raise", **PATHS[path])
    for p, g in zip(torch_params, grads[0]):
        p.grad = g.clone()
    opt.step()
    before = [p.detach().clone() for p in torch_params]
    state_before = copy.deepcopy(opt.state_dict()["state"])
    for p, g in zip(torch_params, grads[1]):
        p.grad = g.clone()
    torch_params[2].grad[0, 1, 1] = float("-inf")
    # by its name, or without names by its place in the groups
    label = r"parameter 'k' .*" if named else r"parameter param_groups\[0\]\['params'\]\[2\] \("
    with pytest.raises(FloatingPointError, match=label + r"shape \[3, 4, 2\]"):
        opt.step()
    for a, b in zip(torch_params, before):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
    for i, entry in opt.state_dict()["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(value, state_before[i][key], rtol=0, atol=0)


def test_nonfinite_off_is_the_reference_behaviour():
    opt, ours, *_ = _run_with_bad_step("single", 0.0, "off", float("nan"))
    assert opt.skipped_steps == 0
    assert torch.isnan(ours[1]).any()  # documented: with the check off a nan spreads, as in the reference


@pytest.mark.parametrize("max_grad_norm", [0.0, 1.0])
def test_huge_but_finite_gradients_are_not_mistaken_for_nonfinite(max_grad_norm):
    """The float32 2-norm of 1e30 overflows to inf: the step must still run (the exact check finds every
    gradient finite), as the reference's would."""
    p = torch.nn.Parameter(torch.ones(4))
    opt = Adan([p], lr=0.1, max_grad_norm=max_grad_norm)
    p.grad = torch.full((4,), 1e30)
    opt.step()
    assert opt.skipped_steps == 0 and opt.state[p]["step"].item() == 1


def test_skip_before_the_first_step_leaves_no_state():
    p = torch.nn.Parameter(torch.ones(3))
    opt = Adan([p], lr=0.1)
    p.grad = torch.tensor([1.0, float("nan"), 0.0])
    opt.step()
    assert len(opt.state[p]) == 0 and opt.skipped_steps == 1
    p.grad = torch.tensor([1.0, -1.0, 1.0])
    opt.step()
    torch.testing.assert_close(p.detach(), 1 - 0.1 * torch.sign(p.grad), rtol=0, atol=1e-6)


# -- settings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eps=0.0), "epsilon.*> 0"),
        (dict(eps=float("nan")), "epsilon"),
        (dict(lr=float("inf")), "learning rate.*finite"),
        (dict(lr=float("nan")), "learning rate"),
        (dict(lr=torch.tensor(float("nan"))), "learning rate"),
        (dict(weight_decay=float("inf")), "weight_decay"),
        (dict(max_grad_norm=float("nan")), "max_grad_norm"),
        (dict(max_grad_norm=float("inf")), "max_grad_norm"),
        (dict(nonfinite_grads="ignore"), "nonfinite_grads"),
        (dict(betas=(0.9, float("nan"), 0.9)), "index 1"),
    ],
)
def test_invalid_settings_are_refused_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adan([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_optimizer_wide_options_must_agree_across_groups():
    p, q = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="max_grad_norm acts on the whole optimizer"):
        Adan([{"params": [p]}, {"params": [q], "max_grad_norm": 3.0}], max_grad_norm=1.0)
    opt = Adan([p], max_grad_norm=1.0)
    with pytest.raises(ValueError, match="eps"):
        opt.add_param_group({"params": [q], "eps": -1.0})
    opt.max_grad_norm = 2.0
    assert opt.defaults["max_grad_norm"] == 2.0 and opt.param_groups[0]["max_grad_norm"] == 2.0
    with pytest.raises(ValueError, match="max_grad_norm"):
        opt.max_grad_norm = float("nan")


# -- loading foreign or mismatched state dicts -----------------------------------------------------------


def test_load_state_dict_of_another_optimizer_is_refused_at_load():
    model = _tiny_model()
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _train(model, adamw, _batches(1))
    opt = Adan(model.parameters())
    with pytest.raises(ValueError, match=r"not saved by Adan.*betas=\(0.9, 0.999\).*lacks exp_avg_diff, prev_grad"):
        opt.load_state_dict(adamw.state_dict())
    assert len(opt.state) == 0  # nothing half-loaded


def test_load_state_dict_with_wrong_shapes_is_refused_at_load():
    small, big = torch.nn.Linear(4, 3), torch.nn.Linear(5, 3)
    opt_small = Adan(small.parameters())
    small(torch.randn(2, 4)).sum().backward()
    opt_small.step()
    opt_big = Adan(big.parameters())
    with pytest.raises(ValueError, match=r"exp_avg.*shape \[3, 4\] in the checkpoint but the parameter has shape \[3, 5\]"):
        opt_big.load_state_dict(opt_small.state_dict())
    with pytest.raises(ValueError, match="parameter group"):
        Adan([{"params": [big.weight]}, {"params": [big.bias]}]).load_state_dict(opt_small.state_dict())


def test_load_state_dict_with_invalid_saved_settings_is_refused():
    p = torch.nn.Parameter(torch.zeros(2))
    sd = Adan([p]).state_dict()
    sd["param_groups"][0]["eps"] = -1.0
    with pytest.raises(ValueError, match="epsilon.*saved parameter group 0"):
        Adan([p]).load_state_dict(sd)


def test_notices_reach_stderr_without_logging_configuration():
    """hf_ada installs a NullHandler: the compile / skip / translation notices must still be seen by a script
    that never configured logging (and only once where a handler exists)."""
    import subprocess
    import sys

    code = (
        "import torch, hf_ada\n"
        "from hf_ada import Adan\n"
        "p = torch.nn.Parameter(torch.ones(3)); opt = Adan([p], fused=True)\n"
        "p.grad = torch.ones(3); opt.step()\n"
        "opt2 = Adan([p], fused=True); opt2.step()\n"
        "p.grad = torch.tensor([1.0, float('nan'), 0.0]); opt.step()\n"
    )
    env = {**os.environ, "HF_ADA_NATIVE_KERNEL": "0"}  # the torch.compile kernel's notices
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("hf-ada: Adan:")]
    assert any("compiling the fused kernel" in line and "pays off after" in line for line in lines), proc.stderr
    assert any("fused kernel ready in" in line for line in lines)
    assert sum("reusing the fused kernel" in line for line in lines) == 1  # opt2's first step, not opt's
    assert sum("step skipped" in line for line in lines) == 1
