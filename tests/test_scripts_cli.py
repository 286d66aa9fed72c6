"""Every script and every ``hf-ada`` subcommand answers ``--help``; the Trainer scripts never report success
without doing their job; ``hf-ada bench`` never writes over the committed results by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_ada import cli
from hf_ada.commands import bench, commands

REPO = Path(__file__).resolve().parents[1]
SCRIPT_MODULES = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))
SUBCOMMANDS = [[name] for name in commands()] + [["index", a] for a in ("build", "search", "push")] + [
    ["bench", name] for name in ("adanns", "adanpc")]


def _help_output(main, argv: list[str], capsys) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse / HfArgumentParser exit after printing --help
        code = exc.code
    assert code in (0, None), argv
    return capsys.readouterr().out


def test_the_scripts_are_the_five_documented_ones():
    assert SCRIPT_MODULES == ["adapt_adanpc", "build_adanns_index", "run_clm", "run_text_classification",
                              "train_matryoshka"]


@pytest.mark.parametrize("name", SCRIPT_MODULES)
def test_every_script_has_help_and_a_whole_docstring(name, capsys):
    """``python -m hf_ada.scripts.NAME`` is the file ``scripts/NAME.py``; its docstring ends in a full stop."""
    module = __import__(f"hf_ada.scripts.{name}", fromlist=["main"])
    assert Path(module.__file__).resolve() == (REPO / "scripts" / f"{name}.py").resolve()
    assert module.__doc__.strip().endswith(".") and len(module.__doc__.split()) > 60
    out = _help_output(module.main, ["--help"], capsys)
    assert "usage:" in out
    if name in ("run_text_classification", "run_clm", "train_matryoshka"):
        assert "adan" in out  # --optim adan is among the choices


def test_bench_lists_every_benchmark_of_the_checkout(capsys):
    out = _help_output(cli.main, ["bench", "--help"], capsys)
    names = sorted(p.stem[len("bench_"):].replace("_", "-") for p in (REPO / "benchmarks").glob("bench_*.py"))
    assert names and sorted(bench.benchmarks()) == names
    for name in names:
        assert f"\n  {name} " in out


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    out = _help_output(cli.main, [*command, "--help"], capsys)
    assert "usage" in out.lower()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_launcher_passes_help_to_the_script(tmp_path):
    """`hf-ada run SCRIPT --help`: the script's own help (with --optim adan), not a crash of the launcher."""
    proc = _run([sys.executable, "-m", "hf_ada.cli", "run", str(REPO / "scripts" / "run_text_classification.py"),
                 "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--optim" in proc.stdout and "adan" in proc.stdout and "--text_column" in proc.stdout


def _classification_args(tmp_path: Path, *extra: str) -> list[str]:
    from hf_ada.demo.pretrained import minilm_path

    rows = ["text,label"] + [f"good thing number {i},pos" if i % 2 else f"bad thing number {i},neg" for i in range(16)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    return ["--config_name", "bert",
            "--config_overrides", "hidden_size=16,num_hidden_layers=1,num_attention_heads=2,intermediate_size=32",
            "--tokenizer_name", str(minilm_path()), "--train_file", str(tmp_path / "train.csv"),
            "--output_dir", str(tmp_path / "out"), "--optim", "adan", "--per_device_train_batch_size", "8",
            "--num_train_epochs", "1", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true", *extra]


def test_eval_strategy_without_do_train_still_trains(tmp_path):
    """transformers turns do_eval on for any --eval_strategy: that must not turn the script into a no-op."""
    import hf_ada.scripts.run_text_classification as run_text_classification

    metrics = run_text_classification.main(_classification_args(
        tmp_path, "--validation_file", str(tmp_path / "train.csv"), "--eval_strategy", "steps", "--eval_steps", "1"))
    assert metrics["epoch"] == pytest.approx(1.0) and metrics["train_loss"] > 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert "eval_accuracy" in json.loads((tmp_path / "out" / "all_results.json").read_text())


def test_eval_only_without_eval_data_is_an_error(tmp_path):
    import hf_ada.scripts.run_text_classification as run_text_classification

    with pytest.raises(SystemExit, match="nothing to do"):
        run_text_classification.main(_classification_args(tmp_path, "--do_eval"))
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_zero_training_steps_is_an_error(tmp_path):
    import hf_ada.scripts.run_text_classification as run_text_classification

    with pytest.raises(RuntimeError, match="without a single optimizer step"):
        run_text_classification.main(_classification_args(tmp_path, "--max_steps", "0", "--num_train_epochs", "0"))


def test_bench_default_output_is_not_the_committed_results(tmp_path, monkeypatch):
    """`hf-ada bench NAME` adds --out ./hf-ada-bench/NAME unless the user gives --out."""
    seen: list[list[str]] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench.runpy, "run_path", lambda path, run_name: seen.append(list(sys.argv)))
    assert cli.main(["bench", "adanns", "--num-docs", "10"]) == 0
    assert seen[-1][-2:] == ["--out", str(tmp_path / "hf-ada-bench" / "adanns")]
    assert cli.main(["bench", "adanns", "--out", "mine"]) == 0
    assert seen[-1][1:] == ["--out", "mine"]


def test_bench_from_an_installed_package_says_why(monkeypatch, capsys):
    monkeypatch.setattr(bench, "_benchmarks_dir", lambda: None)
    assert cli.main(["bench", "adanpc"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_sample_data_is_shaped_like_user_data_and_never_overwrites(tmp_path):
    import pandas as pd

    from hf_ada.demo.sample_data import write_sample_data

    paths = write_sample_data(tmp_path / "data")
    train, stream = pd.read_csv(paths["train.csv"]), pd.read_csv(paths["stream.csv"])
    assert list(train.columns) == ["text", "label"] == list(stream.columns)
    assert set(stream["label"]) <= set(train["label"]) and len(set(train["label"])) == 6
    assert len(train) + len(pd.read_csv(paths["validation.csv"])) + len(stream) == len(
        pd.read_parquet(paths["packages.parquet"]))
    assert not set(train["text"]) & set(stream["text"])  # long descriptions vs one-line synopses
    (tmp_path / "data" / "stream.csv").write_text("mine")
    with pytest.raises(FileExistsError, match="already has"):
        write_sample_data(tmp_path / "data")
    assert (tmp_path / "data" / "stream.csv").read_text() == "mine"


def test_the_card_names_the_packaged_minilm_by_its_hub_name(tmp_path):
    from hf_ada.commands.trainer import base_model_name
    from hf_ada.demo.pretrained import MINILM_NAME, minilm_path

    assert base_model_name(str(minilm_path())) == MINILM_NAME == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model_name(str(tmp_path)) == str(tmp_path) and base_model_name("me/model") == "me/model"
    assert base_model_name(None) is None
