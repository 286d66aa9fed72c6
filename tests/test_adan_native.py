"""Adan's native CPU kernel (hf_ada/optim/_adan_cpu.c through _native.py): the update against the literal
reference transcription across thread splits, the non-finite check, and its on-disk build cache."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_ada import Adan
from hf_ada.optim import _native

from adan_reference import run_reference

# sizes whose elements split over 2 and 3 threads inside tensors and across their boundaries
# (the kernel gives each thread at least 65,536 elements)
BIG_SHAPES = [(70001,), (5,), (401, 325)]


def _problem(seed: int):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in BIG_SHAPES]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) * (1 + step) for s in BIG_SHAPES] for step in range(4)]
    return params, grads


def _run(params, grads, threads: int, **kwargs):
    torch_params = [torch.nn.Parameter(p.float().clone()) for p in params]
    opt = Adan(torch_params, fused=True, **kwargs)
    calls = []
    real = _native.update
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _native.update = lambda *a: calls.append(1) or real(*a)  # count the calls, run the real kernel
        for step_grads in grads:
            for p, g in zip(torch_params, step_grads):
                p.grad = g.float()
            opt.step()
    finally:
        _native.update = real
        torch.set_num_threads(previous)
    assert len(calls) == len(grads)  # one call per step for the whole group
    return [p.detach().numpy().copy() for p in torch_params]


@pytest.mark.parametrize("no_prox", [False, True])
def test_native_kernel_matches_reference_on_any_thread_split(no_prox):
    params, grads = _problem(3)
    kwargs = dict(lr=2e-2, weight_decay=0.05, no_prox=no_prox, max_grad_norm=50.0)
    spec = [dict(idx=[0, 1, 2], lr=2e-2, weight_decay=0.05, no_prox=no_prox)]
    ref = run_reference(params, grads, spec, max_grad_norm=50.0)
    runs = {threads: _run(params, grads, threads, **kwargs) for threads in (1, 2, 3)}
    for ours, expected, start in zip(runs[1], ref, params):
        np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=2e-6)
        assert not np.allclose(ours, start.numpy())  # it moved
    for threads in (2, 3):  # each element's update is independent of how the elements are split
        for a, b in zip(runs[1], runs[threads]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_all_finite_finds_every_kind_of_nonfinite_value(threads):
    assert _native.library() is not None
    tensors = [torch.randn(s) for s in BIG_SHAPES] + [torch.randn(2_200_001)]  # the scan splits from 2**21 on
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert _native.all_finite(tensors) is True
        assert _native.all_finite([t * 1e37 for t in tensors] + [torch.full((3,), 3.4e38)]) is True  # huge, finite
        for index, position, value in [(2, -1, float("nan")), (0, 65536, float("inf")), (2, 60000, float("-inf")),
                                       (1, 0, float("nan")), (3, 1_200_000, float("inf")), (3, -1, float("nan"))]:  # fmt: skip
            bad = [t.clone() for t in tensors]
            bad[index].view(-1)[position] = value
            assert _native.all_finite(bad) is False, (index, position, value)
    finally:
        torch.set_num_threads(previous)
    assert _native.all_finite([torch.randn(4, dtype=torch.float64)]) is None  # not float32: torch checks it
    assert _native.all_finite([torch.randn(4, 4).t()]) is None  # not contiguous


def test_native_check_skips_a_nonfinite_step_and_changes_nothing():
    params = [torch.nn.Parameter(torch.randn(s)) for s in BIG_SHAPES]
    opt = Adan(params, lr=1e-2, fused=True)
    for p in params:
        p.grad = torch.randn(p.shape)
    opt.step()  # loads the kernel: the next step's check runs through it
    before = [p.detach().clone() for p in params]
    state = {k: v.clone() for k, v in opt.state[params[2]].items()}
    for p in params:
        p.grad = torch.randn(p.shape)
    params[2].grad[-1, -1] = float("nan")
    opt.step()
    assert opt.skipped_steps == 1
    for a, b in zip(params, before):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
    for key, value in opt.state[params[2]].items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


_BUILD_AND_STEP = (
    "import torch\n"
    "from hf_ada import Adan\n"
    "from hf_ada.optim import _native\n"
    "p = torch.nn.Parameter(torch.ones(3)); opt = Adan([p], lr=0.1, fused=True)\n"
    "p.grad = torch.ones(3); opt.step()\n"
    "assert _native._library is not None, _native._failed\n"
    "print('updated', p.detach().tolist())\n"
)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})  # fmt: skip


def _fresh_build(monkeypatch, caplog, cache: Path) -> str:
    """Load the kernel as a new process would (nothing loaded yet) with ``cache`` as the cache; the log."""
    monkeypatch.setenv("HF_ADA_CACHE", str(cache))
    monkeypatch.setattr(_native, "_library", None)
    monkeypatch.setattr(_native, "_failed", None)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hf_ada.optim.adan"):
        assert _native.library() is not None, _native._failed
    return caplog.text


def test_build_is_cached_per_machine_and_never_loads_a_link(tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    log = _fresh_build(monkeypatch, caplog, cache)
    assert "building the native CPU kernel" in log and "native CPU kernel built in" in log
    libraries = list((cache / "kernels").iterdir())
    assert len(libraries) == 1 and libraries[0].suffix == ".so" and not libraries[0].name.startswith(".")
    p = torch.nn.Parameter(torch.ones(3))
    opt = Adan([p], lr=0.1, fused=True)
    p.grad = torch.ones(3)
    opt.step()
    # another process on this machine loads the cached library and computes the same step
    second = _python(_BUILD_AND_STEP, HF_ADA_CACHE=str(cache))
    assert second.returncode == 0 and "building" not in second.stderr, second.stderr[-2000:]  # reused from the cache
    assert second.stdout.strip() == f"updated {p.detach().tolist()}"

    # a link planted where the library goes is not loaded: the build replaces the link, not its target
    outside = tmp_path / "outside.so"
    outside.write_bytes(b"not a library")
    libraries[0].unlink()
    libraries[0].symlink_to(outside)
    log = _fresh_build(monkeypatch, caplog, cache)
    assert "building the native CPU kernel" in log
    assert not libraries[0].is_symlink() and outside.read_bytes() == b"not a library"


def test_a_failing_compiler_leaves_adan_on_its_other_paths(tmp_path):
    compiler = tmp_path / "cc"
    compiler.write_text("#!/bin/sh\necho 'cc: error: no such thing' >&2\nexit 1\n")
    compiler.chmod(0o755)
    code = (
        "import logging, torch\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from hf_ada.optim import _native\n"
        "from hf_ada.optim.adan import _fused_eligible\n"
        "assert _native.library() is None\n"
        "assert not _native.available() and not _native.is_built()\n"
        "print('eligible', _fused_eligible([torch.nn.Parameter(torch.ones(3))]))\n"
        "from hf_ada import Adan\n"
        "p = torch.nn.Parameter(torch.ones(3)); opt = Adan([p], lr=0.1)\n"
        "p.grad = torch.ones(3); opt.step()\n"
        "print('path', opt.param_groups[0]['chosen_path'])\n"
    )
    proc = _python(code, HF_ADA_CACHE=str(tmp_path / "cache"), CC=str(compiler))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "native CPU kernel unavailable" in proc.stderr and "no such thing" in proc.stderr
    assert "eligible True" in proc.stdout  # the torch.compile kernel is still there
    assert "path single" in proc.stdout  # fused=None: a tiny group is not worth compiling
    assert not list(Path(tmp_path / "cache" / "kernels").glob("*"))  # no half-built file left behind


def test_a_small_group_rides_on_the_large_groups_native_build(monkeypatch):
    """fused=None on a machine without the built kernel: the usual decay / no-decay pair, where only the
    large group's timed step pays for a build; the small group then takes the fused path too (its build is
    free), while on its own it would stay eager. Times are fixed here: the decision, not the clock, is tested."""
    import importlib

    adan_module = importlib.import_module("hf_ada.optim.adan")
    from hf_ada.optim import _kernel

    monkeypatch.setattr(_native, "is_built", lambda: False)  # as on a machine that never built it
    monkeypatch.setattr(_kernel, "is_compiled", lambda key: False)

    def run(groups, seconds):
        times = iter(seconds)
        monkeypatch.setattr(adan_module, "_timed", lambda fn, device: (fn(), next(times))[1])
        opt = Adan(groups, lr=1e-2)
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = torch.randn(p.shape, dtype=p.dtype)
        opt.step()
        return [g["chosen_path"] for g in opt.param_groups]

    big, small = torch.nn.Parameter(torch.randn(1000)), torch.nn.Parameter(torch.randn(10))
    assert run([{"params": [big]}, {"params": [small], "weight_decay": 0.0}], [1.0, 1e-6]) == ["fused", "fused"]
    assert run([{"params": [torch.nn.Parameter(torch.randn(10))]}], [1e-6]) == ["single"]
    low = torch.nn.Parameter(torch.randn(10, dtype=torch.bfloat16))  # the compiled kernel's: no free ride
    assert run([{"params": [torch.nn.Parameter(torch.randn(1000))]}, {"params": [low]}], [1.0, 1e-6]) == ["fused", "single"]
