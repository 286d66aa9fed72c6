"""Adan checks every setting where it enters (issue 19, section 6) and resumes bit for bit across execution
paths (issue 23): a learning rate changed after construction, counters in a checkpoint, a state dict
validated as a whole before anything changes."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from hf_ada import Adan

from adan_reference import PATHS, batches as _batches, tiny_model as _tiny_model, train as _train  # tests/ is on sys.path


def _snapshot(model, opt):
    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


# -- learning rate changed after construction -----------------------------------------------------------------


@pytest.mark.parametrize("bad_lr", [float("nan"), float("inf"), -1e-3, torch.tensor(float("nan"))])
def test_bad_lr_set_after_construction_skips_the_step(bad_lr):
    model = _tiny_model()
    opt = Adan(model.parameters(), lr=1e-2)
    _train(model, opt, _batches(2))
    before = _snapshot(model, opt)
    opt.param_groups[0]["lr"] = bad_lr  # what a broken scheduler does
    _train(model, opt, _batches(1, seed=5))
    assert opt.skipped_steps == 1
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[0][key], rtol=0, atol=0)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    opt.param_groups[0]["lr"] = 1e-2  # a good lr again: training goes on
    _train(model, opt, _batches(1, seed=6))
    assert opt.skipped_steps == 1 and opt.state[next(model.parameters())]["step"].item() == 3


def test_bad_lr_raises_under_raise_policy_and_names_the_group():
    model = _tiny_model()
    opt = Adan([{"params": list(model[0].parameters())}, {"params": list(model[2].parameters())}], lr=1e-2,
               nonfinite_grads="raise")  # fmt: skip
    _train(model, opt, _batches(1))
    before = _snapshot(model, opt)
    opt.param_groups[1]["lr"] = -0.5
    with pytest.raises(ValueError, match=r"parameter group 1 has lr=-0.5.*nothing was updated"):
        _train(model, opt, _batches(1, seed=2))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[0][key], rtol=0, atol=0)


def test_lr_scheduler_driving_lr_to_nan_is_caught():
    model = _tiny_model()
    opt = Adan(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 if step < 2 else float("nan"))
    for x in _batches(4):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        sched.step()
    assert opt.skipped_steps == 2
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_bad_lr_off_policy_is_unchecked():
    p = torch.nn.Parameter(torch.ones(3))
    opt = Adan([p], lr=0.1, nonfinite_grads="off")
    opt.param_groups[0]["lr"] = float("nan")
    p.grad = torch.ones(3)
    opt.step()
    assert opt.skipped_steps == 0 and torch.isnan(p).all()  # documented: "off" checks nothing


# -- state dicts validated as a whole before anything changes -------------------------------------------------


def _trained():
    model = _tiny_model()
    opt = Adan(model.parameters(), lr=1e-2, max_grad_norm=1.0)
    _train(model, opt, _batches(3))
    return model, opt


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda sd: sd.__setitem__("skipped_steps", -1), "skipped_steps"),
        (lambda sd: sd.__setitem__("skipped_steps", "3"), "skipped_steps"),
        (lambda sd: sd.__setitem__("skipped_steps", float("nan")), "skipped_steps"),
        (lambda sd: sd.__setitem__("skipped_steps", 2.5), "skipped_steps"),
        (lambda sd: sd["state"][0].__setitem__("step", torch.tensor(float("nan"))), "step of parameter"),
        (lambda sd: sd["state"][3].__setitem__("step", torch.tensor(-2.0)), "step of parameter"),
        (lambda sd: sd["state"][1].__setitem__("step", float("inf")), "step of parameter"),
        (lambda sd: sd["state"][2].__setitem__("exp_avg", [0.0] * 8), "not a tensor"),
        (lambda sd: sd["param_groups"][0].__setitem__("chosen_path", "turbo"), "chosen_path"),
        (lambda sd: sd["param_groups"][0].__setitem__("betas", (0.9, 0.9, 2.0)), "index 2"),
    ],
)
def test_bad_state_dict_is_refused_and_the_optimizer_is_untouched(corrupt, match):
    model, opt = _trained()
    good = copy.deepcopy(opt.state_dict())
    other_model, other = _trained()
    _train(other_model, other, _batches(2, seed=9))  # a different state, to load over
    bad = copy.deepcopy(other.state_dict())
    corrupt(bad)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["skipped_steps"] == good["skipped_steps"] and after["param_groups"] == good["param_groups"]
    for i, entry in good["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(after["state"][i][key], value, rtol=0, atol=0)


def test_not_a_state_dict_is_refused():
    _model_, opt = _trained()
    with pytest.raises(ValueError, match="not an optimizer state dict"):
        opt.load_state_dict([1, 2, 3])  # type: ignore[arg-type]


# -- resume across execution paths -----------------------------------------------------------------------------


def _roundtrip(sd):
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("saved_on", list(PATHS))
@pytest.mark.parametrize("resumed_on", list(PATHS))
def test_checkpoint_of_any_path_resumes_bit_for_bit(saved_on, resumed_on):
    """A checkpoint written on one path and resumed on another equals the run that did its first part on the
    first path and the rest on the second without stopping (the state dict is the same per-parameter format
    whatever the memory layout, and loading restores it exactly)."""
    kwargs = dict(lr=1e-2, weight_decay=0.02, max_grad_norm=1.0)
    data = _batches(6)
    straight = _tiny_model()
    opt = Adan(straight.parameters(), **kwargs, **PATHS[saved_on])
    _train(straight, opt, data[:3])
    for group in opt.param_groups:  # switch paths in place, no checkpoint
        group.update({"foreach": None, "fused": None, **PATHS[resumed_on]})
    _train(straight, opt, data[3:])

    first = _tiny_model()
    opt1 = Adan(first.parameters(), **kwargs, **PATHS[saved_on])
    _train(first, opt1, data[:3])
    saved = _roundtrip({"model": first.state_dict(), "opt": opt1.state_dict()})
    resumed = _tiny_model()
    resumed.load_state_dict(saved["model"])
    opt2 = Adan(resumed.parameters(), lr=1e-2)
    opt2.load_state_dict(saved["opt"])
    for group in opt2.param_groups:
        group.update({"foreach": None, "fused": None, **PATHS[resumed_on]})
    _train(resumed, opt2, data[3:])
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fused_none_resumed_run_keeps_its_path():
    """The path fused=None chose is saved with the groups: a resumed run takes it without measuring again."""
    model, opt = _trained()
    chosen = opt.param_groups[0]["chosen_path"]
    assert chosen in ("single", "fused")
    sd = _roundtrip(opt.state_dict())
    other = "fused" if chosen == "single" else "single"
    sd["param_groups"][0]["chosen_path"] = other  # as if the first run had chosen the other path
    resumed = Adan(model.parameters(), lr=1e-2)
    resumed.load_state_dict(sd)
    _train(model, resumed, _batches(1))
    assert resumed.param_groups[0]["chosen_path"] == other
