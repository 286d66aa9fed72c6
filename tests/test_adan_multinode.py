"""Adan across two "machines" (two accelerate launchers on 127.0.0.1, one process each, gloo on CPU).

`accelerate launch --num_machines 2 --machine_rank R --main_process_ip 127.0.0.1 --num_processes 2` is
started twice, once per machine rank, exactly as a user starts it on two nodes; the two launchers meet
at the rendezvous and form one world of size 2. Checked: DDP through the Trainer, and torch FSDP2 without
and with in-optimizer clipping, give the one-process result (DDP: the tolerance of
tests/test_adan_multiprocess.py), a checkpoint written on two machines resumes in one process, and DeepSpeed
ZeRO-2 (CPU accelerator, over gloo) with Adan as the client optimizer equals one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from launchers import ASSETS, TRAIN_ARGS, launch_two_machines, max_diff, read_world, run_launcher, single_process

pytestmark = pytest.mark.multiprocess

# 6 steps of batch 8 in total; a checkpoint at step 3 (the run's scheduler state and optimizer state): the
# settings of the one-process reference, conftest's ``one_process_run``
COMMON = [*TRAIN_ARGS, "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3"]


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory) -> Path:
    """Two machines x one process x batch 4, 6 steps, a checkpoint at step 3."""
    out = tmp_path_factory.mktemp("two_machines")
    launch_two_machines("--output_dir", str(out), "--per_device_train_batch_size", "4", *COMMON)
    return out


def test_ddp_on_two_machines_equals_one_process(one_process_run, two_machines):
    world = read_world(two_machines)
    assert world["world_size"] == 2 and world["wrapped_model"] == "DistributedDataParallel"
    assert world["optimizer"] == read_world(one_process_run)["optimizer"] == "Adan"
    assert world["param_groups"][0]["max_grad_norm"] == 0.5  # in-optimizer clipping is on
    assert max_diff(two_machines, one_process_run) < 1e-5
    initial = load_file(one_process_run / "initial.safetensors")
    final = load_file(one_process_run / "final.safetensors")
    assert max((initial[k] - final[k]).abs().max().item() for k in final) > 1e-3  # it did train


def test_two_machine_checkpoint_resumes_in_one_process(tmp_path, one_process_run, two_machines):
    checkpoint = two_machines / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "rng_state_1.pth").is_file()
    run_launcher(single_process(
        "--output_dir", str(tmp_path), "--per_device_train_batch_size", "8", *TRAIN_ARGS, "--max_steps", "6",
        "--save_strategy", "no", "--resume_from_checkpoint", str(checkpoint),
    ), tmp_path)  # fmt: skip
    assert read_world(tmp_path)["world_size"] == 1
    assert max_diff(tmp_path, one_process_run) < 1e-5
    # the resumed half did train: step 3's weights differ from the final ones
    at_step_3, final = load_file(checkpoint / "model.safetensors"), load_file(tmp_path / "final.safetensors")
    assert max((final[k] - at_step_3[k]).abs().max().item() for k in at_step_3) > 1e-4


def test_fsdp2_on_two_machines_matches_one_process_with_global_clipping(tmp_path):
    """torch FSDP2 (`fully_shard`, DTensor shards) across two machines gives the one-process weights without and
    with in-optimizer clipping (both settings in one launch each); with clipping on, the clip norm must be the
    global one, not a per-shard norm (a known trap of the reference implementation under sharding)."""
    script = ASSETS / "fsdp2_adan.py"
    launch_two_machines(str(tmp_path / "fsdp"), "0,0.05", script=script, via_hf_ada_run=False)
    run_launcher([sys.executable, str(script), str(tmp_path / "one"), "0,0.05"], tmp_path, timeout=120)
    for max_grad_norm in ("0", "0.05"):
        fsdp = load_file(tmp_path / f"fsdp-{max_grad_norm}.safetensors")
        one = load_file(tmp_path / f"one-{max_grad_norm}.safetensors")
        assert fsdp.pop("world_size").item() == 2 and one.pop("world_size").item() == 1
        for key in one:
            assert (fsdp[key] - one[key]).abs().max().item() < 1e-6, (max_grad_norm, key)


# README's DeepSpeed config (accelerate's YAML): Adan is handed to DeepSpeed as a client optimizer; under
# ZeRO the optimizer sees only its partition, so Adan's own clipping is off and DeepSpeed clips globally.
DEEPSPEED_YAML = """\
compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
num_processes: 2
use_cpu: true
deepspeed_config:
  zero_stage: {stage}
  gradient_clipping: 0.5
  deepspeed_multinode_launcher: standard
"""
ZERO_ARGS = [a if a != "max_grad_norm=0.5,no_prox=false" else "no_prox=false" for a in TRAIN_ARGS]
ZERO_ARGS += ["--max_grad_norm", "0.5", "--max_steps", "6", "--save_strategy", "no"]


@pytest.fixture(scope="module")
def one_process_trainer_clipping(tmp_path_factory) -> Path:
    """One process, batch 8, Adan's clipping off and the Trainer's global clipping at 0.5 (what ZeRO runs do)."""
    out = tmp_path_factory.mktemp("one_process_trainer_clipping")
    run_launcher(single_process("--output_dir", str(out), "--per_device_train_batch_size", "8", *ZERO_ARGS), out)
    return out


def test_deepspeed_zero_on_two_machines_with_adan_equals_one_process(tmp_path, one_process_trainer_clipping):
    """DeepSpeed ZeRO-2 on CPU (DeepSpeed's CPU accelerator, gloo), Adan as the client optimizer. ZeRO-1 runs the
    same ``DeepSpeedZeroOptimizer`` (stage_1_and_2) without partitioning the gradients, and Adan sees the same
    flat fp32 partition in both; one launch of the superset keeps the suite's time."""
    config = tmp_path / "deepspeed.yaml"
    config.write_text(DEEPSPEED_YAML.format(stage=2))
    out = tmp_path / "out"
    outputs = launch_two_machines(
        "--output_dir", str(out), "--per_device_train_batch_size", "4", *ZERO_ARGS,
        launcher=("--config_file", str(config)), python_path=ASSETS / "deepspeed_gloo",
    )  # fmt: skip
    # the ranks reduced over gloo: DeepSpeed did not compile its shared-memory op (assets/deepspeed_gloo)
    assert not any("shm_comm" in stdout + stderr for stdout, stderr in outputs)
    world = read_world(out)
    assert world["world_size"] == 2
    assert world["wrapped_model"] == "DeepSpeedEngine" and world["optimizer"] == "DeepSpeedZeroOptimizer"
    # the partitioned optimizer DeepSpeed steps is Adan: its groups carry Adan's options, clipping off
    assert [g["betas"] for g in world["param_groups"]] == [[0.98, 0.92, 0.99]] * 2
    assert all(g["no_prox"] is False and g["max_grad_norm"] == 0.0 for g in world["param_groups"])
    assert max_diff(out, one_process_trainer_clipping) < 1e-5
