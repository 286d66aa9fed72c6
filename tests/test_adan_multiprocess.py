"""Adan under real multi-process training on one machine (gloo on CPU): DDP through accelerate, and resume.

`accelerate launch --multi_gpu --num_processes 2` starts two gloo processes on a CPU-only machine
(`--cpu` would start only one here); every run asserts the world size it expected. Its checkpoint resumes
in two processes and in one. FSDP2 and DeepSpeed run
across two "machines" (tests/test_adan_multinode.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from launchers import TRAIN_ARGS, accelerate_2proc, max_diff, read_world, run_here, run_launcher

pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """``accelerate launch`` with two processes x batch 4, 6 steps, a checkpoint at step 3: the settings of the
    one-process reference (conftest's ``one_process_run``; saving changes nothing in the training)."""
    out = tmp_path_factory.mktemp("two_processes")
    run_launcher(accelerate_2proc("--output_dir", str(out), "--per_device_train_batch_size", "4", *TRAIN_ARGS,
                                  "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3"), out)
    return out


def test_two_processes_equal_one_process_with_double_batch(two_processes, one_process_run):
    ddp, single = two_processes, one_process_run  # one process: batch 8, 6 steps (and a checkpoint at step 3)
    assert read_world(ddp)["world_size"] == 2 and read_world(ddp)["wrapped_model"] == "DistributedDataParallel"
    assert read_world(single)["world_size"] == 1
    assert read_world(ddp)["optimizer"] == read_world(single)["optimizer"] == "Adan"
    assert read_world(ddp)["param_groups"][0]["max_grad_norm"] == 0.5  # in-optimizer clipping is on
    assert max_diff(ddp, single) < 1e-5
    # the runs did train: the comparison is not between two untouched models
    initial, final = load_file(single / "initial.safetensors"), load_file(single / "final.safetensors")
    assert max((initial[k] - final[k]).abs().max().item() for k in final) > 1e-3


def test_resume_from_checkpoint_reproduces_uninterrupted_run(tmp_path, two_processes):
    straight, resumed = two_processes, tmp_path / "resumed"
    checkpoint = straight / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "scheduler.pt").is_file()
    # a fresh launch resuming from the uninterrupted run's checkpoint (as after an interruption at step 3); the
    # checkpoint carries the scheduler's state, so the resumed steps see the uninterrupted run's learning rates
    run_launcher(
        accelerate_2proc(
            "--output_dir", str(resumed), "--per_device_train_batch_size", "4", *TRAIN_ARGS, "--max_steps", "6",
            "--save_strategy", "no", "--resume_from_checkpoint", str(checkpoint),
        ),
        tmp_path,
    )  # fmt: skip
    assert read_world(resumed)["world_size"] == 2
    assert read_world(straight)["steps_run"] == 6 and read_world(resumed)["steps_run"] == 3  # it did resume
    assert max_diff(straight, resumed) < 1e-6


def test_two_process_checkpoint_resumes_in_one_process(tmp_path, one_process_run, two_processes):
    """A checkpoint written by two ranks (one RNG state file per rank) resumes in one process with batch 8: the
    one-process run's weights."""
    checkpoint = two_processes / "checkpoint-3"
    assert (checkpoint / "rng_state_1.pth").is_file()
    run_here("--output_dir", str(tmp_path), "--per_device_train_batch_size", "8", *TRAIN_ARGS, "--max_steps", "6",
             "--save_strategy", "no", "--resume_from_checkpoint", str(checkpoint))  # fmt: skip
    assert read_world(tmp_path)["world_size"] == 1 and read_world(tmp_path)["steps_run"] == 3
    assert max_diff(tmp_path, one_process_run) < 1e-5
    # the resumed half did train: step 3's weights differ from the final ones
    at_step_3, final = load_file(checkpoint / "model.safetensors"), load_file(tmp_path / "final.safetensors")
    assert max((final[k] - at_step_3[k]).abs().max().item() for k in at_step_3) > 1e-4
