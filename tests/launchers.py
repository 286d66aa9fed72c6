"""Launching real multi-process runs from the tests (not a test file itself): the Trainer script and arguments
the Adan launcher tests share, the environment every launched process gets, a free rendezvous port, the
launchers (one process, ``accelerate launch`` with two processes, two "machines" on 127.0.0.1) and readers of
what a run wrote (``world.json``, the largest weight difference between two runs)."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hub_server import free_port  # stdlib-only; tests/ is on sys.path

ASSETS = Path(__file__).parent / "assets"
TRAINER_SCRIPT = ASSETS / "plain_trainer_script.py"

TRAIN_ARGS = [
    "--optim", "adan",
    "--optim_args", "max_grad_norm=0.5,no_prox=false",
    "--learning_rate", "1e-2",
    "--weight_decay", "0.01",
    "--report_to", "none",
    "--use_cpu",
    "--seed", "7",
    "--logging_steps", "1",
    "--disable_tqdm", "true",
    # BertForSequenceClassification accepts **kwargs but does not use num_items_in_batch, so transformers'
    # default token averaging would multiply its mean loss by the world size; turn it off to compare runs.
    "--average_tokens_across_devices", "false",
]  # fmt: skip


def launcher_env(python_path: Path | None = None) -> dict[str, str]:
    """This process's environment (the local Hub double, the temporary HF_HOME) for a launched process: one
    OpenMP thread per worker, unbuffered output; ``python_path`` first on ``PYTHONPATH`` if given."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(python_path), env.get("PYTHONPATH")) if p)
    return env


def run_launcher(cmd: list[str], cwd: Path, timeout: float = 180) -> None:
    """Run a launcher; on a timeout kill its whole process group (the workers too), then fail."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=launcher_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} timed out after {timeout} s:\n{stderr[-4000:]}")
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{stdout[-3000:]}\n{stderr[-6000:]}"


def accelerate_2proc(*args: str) -> list[str]:
    """The command line of ``accelerate launch --multi_gpu --num_processes 2`` (gloo on CPU) running the Trainer
    script through ``hf_ada.run`` with ``args``."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),  # not 0: see launch_two_machines
        "-m", "hf_ada.run", str(TRAINER_SCRIPT), *args,
    ]  # fmt: skip


def run_here(*args: str) -> None:
    """The Trainer script's one-process run in this process, with ``args`` (what ``python -m hf_ada.run SCRIPT
    ARGS`` runs, less a new interpreter's 8 s of imports; that door runs as its own process under the launchers):
    one torch thread, as the launched processes get; ``sys.argv`` and the thread count are restored after."""
    import hf_ada  # noqa: F401  (registers --optim adan, as hf_ada.run does)

    argv, threads = sys.argv, torch.get_num_threads()
    sys.argv = [str(TRAINER_SCRIPT), *args]
    torch.set_num_threads(1)
    try:
        runpy.run_path(str(TRAINER_SCRIPT), run_name="__main__")
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)


def max_diff(a: Path, b: Path, name: str = "final.safetensors") -> float:
    """The largest absolute difference between the weights two runs wrote to ``name`` (same keys asserted)."""
    wa, wb = load_file(a / name), load_file(b / name)
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def read_world(out: Path) -> dict:
    """What the Trainer script recorded about its run in ``out/world.json`` (world size, wrapped model, optimizer)."""
    return json.loads((out / "world.json").read_text())


def launch_two_machines(
    *args: str, script: Path = TRAINER_SCRIPT, via_hf_ada_run: bool = True,
    launcher: tuple[str, ...] = ("--multi_gpu",), timeout: float = 240, python_path: Path | None = None,
) -> list[tuple[str, str]]:
    """Start machine rank 0 and 1 (one launcher each) and wait for both; kill both process groups on failure.
    Returns each machine's ``(stdout, stderr)``; ``python_path`` goes first on the launched ``PYTHONPATH``."""
    port = str(free_port())  # a port chosen now: a port of 0 is not reliable for the rendezvous store
    target = ["-m", "hf_ada.run", str(script)] if via_hf_ada_run else [str(script)]
    procs = []
    for rank in (0, 1):
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", *launcher, "--num_processes", "2",
            "--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
            "--main_process_port", port, "--mixed_precision", "no", "--dynamo_backend", "no",
            *target, *args,
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, env=launcher_env(python_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout))
    except subprocess.TimeoutExpired:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"two-machine launch timed out after {timeout} s")
    for rank, (proc, (stdout, stderr)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"machine {rank} failed:\n{stdout[-2000:]}\n{stderr[-5000:]}"
    return outputs
