"""`--optim adan` in a script that never imports hf_ada (issue 25, section 3), and a run's training_args.bin
loading without hf_ada (issue 19, section 6): real interpreters, a real virtual environment in tmp (the
real site-packages is never touched)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hf_ada  # noqa: F401  (registers --optim adan in this process)
from hf_ada.optim import startup

ASSETS = Path(__file__).parent / "assets"
ARGS = ["--optim", "adan", "--max_steps", "2", "--per_device_train_batch_size", "8", "--report_to", "none",
        "--use_cpu", "--disable_tqdm", "true"]  # fmt: skip

_LOAD_WITHOUT_HF_ADA = (
    "import sys, torch\n"
    "args = torch.load(sys.argv[1], weights_only=False)\n"
    "assert not any(m == 'hf_ada' or m.startswith('hf_ada.') for m in sys.modules), 'hf_ada was imported'\n"
    "print(type(args.optim).__name__, str(args.optim))\n"
)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=240)


def test_training_args_with_adan_pickle_as_plain_string(tmp_path):
    """The ADAN member pickles as "adan" (a fresh interpreter without hf_ada loads it: see the venv test
    below), and with hf_ada the plain string still selects Adan."""
    import pickle

    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(str(tmp_path / "out"), optim="adan", report_to="none", use_cpu=True)
    assert b"OptimizerNames" not in pickle.dumps(args.optim) and pickle.loads(pickle.dumps(args.optim)) == "adan"
    torch.save(args, tmp_path / "training_args.bin")
    loaded = torch.load(tmp_path / "training_args.bin", weights_only=False)
    assert type(loaded.optim) is str and Trainer.get_optimizer_cls_and_kwargs(loaded)[0] is hf_ada.Adan


def test_enable_and_disable_are_reversible(tmp_path):
    path = startup.enable(site_dir=tmp_path)
    assert path == tmp_path / startup.PTH_NAME and path.read_text().startswith("import sys; exec(")
    assert startup.enable(site_dir=tmp_path) == path and startup.is_enabled(tmp_path)  # idempotent
    assert startup.disable(site_dir=tmp_path) is True
    assert not path.exists() and startup.disable(site_dir=tmp_path) is False
    with pytest.raises(ValueError, match="site_dir"):
        startup.enable(site_dir=tmp_path / "missing")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A virtual environment that sees this interpreter's packages; its own site-packages is in tmp."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], check=True,
                   timeout=120)  # fmt: skip
    python = root / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    return python, Path(site)


def test_plain_script_with_optim_adan_after_enable(venv, tmp_path):
    python, site = venv
    script = str(ASSETS / "plain_trainer_script.py")
    startup.enable(site_dir=site)
    try:
        # the hook costs nothing at start-up: no hf_ada, torch or transformers module is imported
        probe = _run([str(python), "-c", "import json, sys; print(json.dumps(sorted(sys.modules)))"], tmp_path)
        assert probe.returncode == 0, probe.stderr
        loaded = json.loads(probe.stdout)
        assert not [m for m in loaded if m.split(".")[0] in ("hf_ada", "torch", "transformers")]

        out = tmp_path / "after"
        proc = _run([str(python), script, "--output_dir", str(out), *ARGS, "--save_strategy", "steps",
                     "--save_steps", "2"], tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert json.loads((out / "world.json").read_text())["optimizer"] == "Adan"
    finally:
        assert startup.disable(site_dir=site)
    # the run's own training_args.bin loads in a fresh interpreter without the hook and without hf_ada
    proc = _run([sys.executable, "-c", _LOAD_WITHOUT_HF_ADA, str(out / "checkpoint-2" / "training_args.bin")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["str", "adan"]
    assert not (site / startup.PTH_NAME).exists()
