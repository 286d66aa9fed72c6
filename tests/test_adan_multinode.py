"""Adan across two "machines" (two accelerate launchers on 127.0.0.1, one process each, gloo on CPU).

`accelerate launch --num_machines 2 --machine_rank R --main_process_ip 127.0.0.1 --num_processes 2` is
started twice, once per machine rank, exactly as a user starts it on two nodes; the two launchers meet
at the rendezvous and form one world of size 2. Checked: DDP through the Trainer and torch FSDP2 with
in-optimizer clipping give the one-process result (the tolerances of tests/test_adan_multiprocess.py),
and a checkpoint written under one machine count resumes under the other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_adan_multiprocess import ASSETS, SCRIPT, TRAIN_ARGS, _env, _free_port, _max_diff, _single, _world

pytestmark = pytest.mark.multiprocess

# 6 steps of batch 8 in total; a checkpoint at step 3 (the run's scheduler state and optimizer state)
COMMON = [*TRAIN_ARGS, "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3"]


def _two_machines(*args: str, script: Path = SCRIPT, via_hf_ada_run: bool = True, timeout: float = 240) -> None:
    """Start machine rank 0 and 1 (one launcher each) and wait for both; kill both process groups on failure."""
    port = str(_free_port())
    target = ["-m", "hf_ada.run", str(script)] if via_hf_ada_run else [str(script)]
    procs = []
    for rank in (0, 1):
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
            "--main_process_port", port, "--mixed_precision", "no", "--dynamo_backend", "no",
            *target, *args,
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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


def _run_single(*args: str, timeout: float = 180) -> None:
    proc = subprocess.run(_single(*args), env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-5000:]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The reference: one process, batch 8, 6 steps, a checkpoint at step 3."""
    out = tmp_path_factory.mktemp("one_process")
    _run_single("--output_dir", str(out), "--per_device_train_batch_size", "8", *COMMON)
    assert _world(out)["world_size"] == 1
    return out


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory) -> Path:
    """Two machines x one process x batch 4, 6 steps, a checkpoint at step 3."""
    out = tmp_path_factory.mktemp("two_machines")
    _two_machines("--output_dir", str(out), "--per_device_train_batch_size", "4", *COMMON)
    return out


def test_ddp_on_two_machines_equals_one_process(one_process, two_machines):
    world = _world(two_machines)
    assert world["world_size"] == 2 and world["wrapped_model"] == "DistributedDataParallel"
    assert world["optimizer"] == _world(one_process)["optimizer"] == "Adan"
    assert world["param_groups"][0]["max_grad_norm"] == 0.5  # in-optimizer clipping is on
    assert _max_diff(two_machines, one_process) < 1e-5
    initial, final = load_file(one_process / "initial.safetensors"), load_file(one_process / "final.safetensors")
    assert max((initial[k] - final[k]).abs().max().item() for k in final) > 1e-3  # it did train


def test_two_machine_checkpoint_resumes_in_one_process(tmp_path, one_process, two_machines):
    checkpoint = two_machines / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "rng_state_1.pth").is_file()
    _run_single(
        "--output_dir", str(tmp_path), "--per_device_train_batch_size", "8", *TRAIN_ARGS, "--max_steps", "6",
        "--save_strategy", "no", "--resume_from_checkpoint", str(checkpoint),
    )  # fmt: skip
    assert _world(tmp_path)["world_size"] == 1
    assert _max_diff(tmp_path, one_process) < 1e-5
    # the resumed half did train: step 3's weights differ from the final ones
    at_step_3, final = load_file(checkpoint / "model.safetensors"), load_file(tmp_path / "final.safetensors")
    assert max((final[k] - at_step_3[k]).abs().max().item() for k in at_step_3) > 1e-4


def test_one_process_checkpoint_resumes_on_two_machines(tmp_path, one_process):
    checkpoint = one_process / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").is_file()
    _two_machines(
        "--output_dir", str(tmp_path), "--per_device_train_batch_size", "4", *TRAIN_ARGS, "--max_steps", "6",
        "--save_strategy", "no", "--resume_from_checkpoint", str(checkpoint),
    )  # fmt: skip
    assert _world(tmp_path)["world_size"] == 2
    assert _max_diff(tmp_path, one_process) < 1e-5


def test_fsdp2_on_two_machines_with_in_optimizer_clipping_matches_one_process(tmp_path):
    """FSDP2 (`fully_shard`, DTensor shards) across two machines; the clip norm must be the global one."""
    script = ASSETS / "fsdp2_adan.py"
    _two_machines(str(tmp_path / "fsdp.safetensors"), "0.05", script=script, via_hf_ada_run=False)
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.safetensors"), "0.05"], env=_env(), check=True,
                   timeout=120)  # fmt: skip
    fsdp, one = load_file(tmp_path / "fsdp.safetensors"), load_file(tmp_path / "one.safetensors")
    assert fsdp.pop("world_size").item() == 2 and one.pop("world_size").item() == 1
    for key in one:
        assert (fsdp[key] - one[key]).abs().max().item() < 1e-6, key
