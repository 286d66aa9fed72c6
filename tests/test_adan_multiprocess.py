"""Adan under real multi-process training (gloo on CPU): DDP through accelerate, resume, FSDP2.

`accelerate launch --multi_gpu --num_processes 2` starts two gloo processes on a CPU-only machine
(`--cpu` would start only one here); every run asserts the world size it expected.
"""

from __future__ import annotations

import sys

import pytest
from safetensors.torch import load_file

from launchers import ASSETS, TRAIN_ARGS, accelerate_2proc, max_diff, read_world, run_launcher

pytestmark = pytest.mark.multiprocess

def test_two_processes_equal_one_process_with_double_batch(tmp_path, one_process_run):
    ddp, single = tmp_path / "ddp", one_process_run  # one process: batch 8, 6 steps (and a checkpoint at step 3)
    common = [*TRAIN_ARGS, "--max_steps", "6", "--save_strategy", "no"]
    run_launcher(accelerate_2proc("--output_dir", str(ddp), "--per_device_train_batch_size", "4", *common), tmp_path)
    assert read_world(ddp)["world_size"] == 2 and read_world(ddp)["wrapped_model"] == "DistributedDataParallel"
    assert read_world(single)["world_size"] == 1
    assert read_world(ddp)["optimizer"] == read_world(single)["optimizer"] == "Adan"
    assert max_diff(ddp, single) < 1e-5
    # the runs did train: the comparison is not between two untouched models
    initial, final = load_file(single / "initial.safetensors"), load_file(single / "final.safetensors")
    assert max((initial[k] - final[k]).abs().max().item() for k in final) > 1e-3


def test_resume_from_checkpoint_reproduces_uninterrupted_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # the uninterrupted run, which also saves a checkpoint at step 3 (saving changes nothing in the training);
    # a constant schedule, so that a run stopped there would have seen the same lr
    common = [*TRAIN_ARGS, "--per_device_train_batch_size", "4", "--lr_scheduler_type", "constant", "--max_steps", "6"]
    run_launcher(accelerate_2proc("--output_dir", str(straight), "--save_strategy", "steps", "--save_steps", "3",
                                  *common), tmp_path)
    checkpoint = straight / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").is_file()
    # a fresh launch resuming from that checkpoint (as after an interruption at step 3)
    run_launcher(
        accelerate_2proc(
            "--output_dir", str(resumed), "--save_strategy", "no", "--resume_from_checkpoint", str(checkpoint),
            *common,
        ),
        tmp_path,
    )  # fmt: skip
    assert read_world(resumed)["world_size"] == 2
    assert read_world(straight)["steps_run"] == 6 and read_world(resumed)["steps_run"] == 3  # it did resume
    assert max_diff(straight, resumed) < 1e-6


def test_fsdp2_sharded_parameters_match_single_process(tmp_path):
    """torch FSDP2 (`fully_shard`, DTensor parameters) on CPU/gloo: same weights as one process, without and
    with in-optimizer clipping (both settings in one launch each).

    With in-optimizer clipping on, this also checks that the clip norm is the global one, not a
    per-shard norm (a known trap of the reference implementation under sharding).
    """
    script = ASSETS / "fsdp2_adan.py"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run_launcher([*torchrun, str(script), str(tmp_path / "fsdp"), "0,0.05"], tmp_path)
    run_launcher([sys.executable, str(script), str(tmp_path / "one"), "0,0.05"], tmp_path)
    for max_grad_norm in ("0", "0.05"):
        fsdp = load_file(tmp_path / f"fsdp-{max_grad_norm}.safetensors")
        one = load_file(tmp_path / f"one-{max_grad_norm}.safetensors")
        assert fsdp.pop("world_size").item() == 2 and one.pop("world_size").item() == 1
        for key in one:
            assert (fsdp[key] - one[key]).abs().max().item() < 1e-6, (max_grad_norm, key)
