"""Adan under real multi-process training (gloo on CPU): DDP through accelerate, resume, FSDP2.

`accelerate launch --multi_gpu --num_processes 2` starts two gloo processes on a CPU-only machine
(`--cpu` would start only one here); every run asserts the world size it expected.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.multiprocess

ASSETS = Path(__file__).parent / "assets"
SCRIPT = ASSETS / "plain_trainer_script.py"

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


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return env


def _run(cmd: list[str], cwd: Path, timeout: float = 180) -> None:
    """Run a launcher; on a timeout kill its whole process group (the workers too), then fail."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} timed out after {timeout} s:\n{stderr[-4000:]}")
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{stdout[-3000:]}\n{stderr[-6000:]}"


def _free_port() -> int:
    """A port that is free right now (a port of 0 is not reliable for the rendezvous store)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accelerate_2proc(*args: str) -> list[str]:
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
        "-m", "hf_ada.run", str(SCRIPT), *args,
    ]  # fmt: skip


def _single(*args: str) -> list[str]:
    return [sys.executable, "-m", "hf_ada.run", str(SCRIPT), *args]


def _max_diff(a: Path, b: Path, name: str = "final.safetensors") -> float:
    wa, wb = load_file(a / name), load_file(b / name)
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def _world(out: Path) -> dict:
    return json.loads((out / "world.json").read_text())


def test_two_processes_equal_one_process_with_double_batch(tmp_path):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    common = [*TRAIN_ARGS, "--max_steps", "6", "--save_strategy", "no"]
    _run(_accelerate_2proc("--output_dir", str(ddp), "--per_device_train_batch_size", "4", *common), tmp_path)
    _run(_single("--output_dir", str(single), "--per_device_train_batch_size", "8", *common), tmp_path)
    assert _world(ddp)["world_size"] == 2 and _world(ddp)["wrapped_model"] == "DistributedDataParallel"
    assert _world(single)["world_size"] == 1
    assert _world(ddp)["optimizer"] == _world(single)["optimizer"] == "Adan"
    assert _max_diff(ddp, single) < 1e-5
    # the runs did train: the comparison is not between two untouched models
    initial, final = load_file(single / "initial.safetensors"), load_file(single / "final.safetensors")
    assert max((initial[k] - final[k]).abs().max().item() for k in final) > 1e-3


def test_resume_from_checkpoint_reproduces_uninterrupted_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # a constant schedule, so that the interrupted run (max_steps 3) sees the same lr as the full one
    common = [*TRAIN_ARGS, "--per_device_train_batch_size", "4", "--lr_scheduler_type", "constant", "--max_steps", "6"]
    _run(_accelerate_2proc("--output_dir", str(straight), "--save_strategy", "no", *common), tmp_path)
    # first half, stopping at step 3 with a checkpoint, then a fresh launch resuming from it
    _run(
        _accelerate_2proc(
            "--output_dir", str(resumed), "--save_strategy", "steps", "--save_steps", "3",
            *[a if a != "6" else "3" for a in common],
        ),
        tmp_path,
    )  # fmt: skip
    checkpoint = resumed / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").is_file()
    _run(
        _accelerate_2proc(
            "--output_dir", str(resumed), "--save_strategy", "no", "--resume_from_checkpoint", str(checkpoint),
            *common,
        ),
        tmp_path,
    )  # fmt: skip
    assert _world(resumed)["world_size"] == 2
    assert _max_diff(straight, resumed) < 1e-6


@pytest.mark.parametrize("max_grad_norm", ["0", "0.05"])
def test_fsdp2_sharded_parameters_match_single_process(tmp_path, max_grad_norm):
    """torch FSDP2 (`fully_shard`, DTensor parameters) on CPU/gloo: same weights as one process.

    With in-optimizer clipping on, this also checks that the clip norm is the global one, not a
    per-shard norm (a known trap of the reference implementation under sharding).
    """
    script = ASSETS / "fsdp2_adan.py"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _run([*torchrun, str(script), str(tmp_path / "fsdp.safetensors"), max_grad_norm], tmp_path)
    _run([sys.executable, str(script), str(tmp_path / "one.safetensors"), max_grad_norm], tmp_path)
    fsdp, one = load_file(tmp_path / "fsdp.safetensors"), load_file(tmp_path / "one.safetensors")
    assert fsdp.pop("world_size").item() == 2 and one.pop("world_size").item() == 1
    for key in one:
        assert (fsdp[key] - one[key]).abs().max().item() < 1e-6, key
