"""Adan across two "machines" (two accelerate launchers on 127.0.0.1, one process each, gloo on CPU).

`accelerate launch --num_machines 2 --machine_rank R --main_process_ip 127.0.0.1 --num_processes 2` is
started twice, once per machine rank, exactly as a user starts it on two nodes; the two launchers meet
at the rendezvous and form one world of size 2. Checked: torch FSDP2 without and with in-optimizer clipping
gives the one-process result, and DeepSpeed ZeRO-2 (CPU accelerator, over gloo) with Adan as the client
optimizer equals one process. DDP through the Trainer (the same Trainer path on one world of two processes,
whichever launcher formed it) and resuming its checkpoint are in tests/test_adan_multiprocess.py.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from safetensors.torch import load_file

from launchers import ASSETS, TRAIN_ARGS, launch_two_machines, max_diff, read_world, run_here

pytestmark = pytest.mark.multiprocess


def test_fsdp2_on_two_machines_matches_one_process_with_global_clipping(tmp_path):
    """torch FSDP2 (`fully_shard`, DTensor shards) across two machines gives the one-process weights without and
    with in-optimizer clipping (both settings in one launch each); with clipping on, the clip norm must be the
    global one, not a per-shard norm (a known trap of the reference implementation under sharding)."""
    script = ASSETS / "fsdp2_adan.py"
    launch_two_machines(str(tmp_path / "fsdp"), "0,0.05", script=script, via_hf_ada_run=False)
    train = runpy.run_path(str(script))["train"]  # its one-process run, here (no new interpreter's imports)
    for max_grad_norm in ("0", "0.05"):
        train(str(tmp_path / f"one-{max_grad_norm}.safetensors"), float(max_grad_norm), False, 0, 1)
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
    run_here("--output_dir", str(out), "--per_device_train_batch_size", "8", *ZERO_ARGS)
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
