"""One-line errors everywhere (issue 25 §4) and every argument checked before the work (issue 19 §6): each case
runs the real command on real files and asserts the exit status, that stderr is one line naming the
argument, and that nothing was written or computed first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from hf_ada import cli
from hf_ada.commands import run_main

REPO = Path(__file__).resolve().parents[1]


def _call(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> str:
    """The error line: the only line with ``error:``, the last one, no traceback (progress bars of the data
    loading may come before it)."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    return errors[0]


@pytest.fixture(scope="module")
def vector_index(tmp_path_factory):
    """A parquet of 300 random 32-d vectors and an index over it (no embedding model recorded)."""
    root = tmp_path_factory.mktemp("cli-errors")
    vectors = np.random.default_rng(0).standard_normal((300, 32)).astype(np.float32)
    Dataset.from_dict({"embeddings": vectors.tolist(), "name": [f"row{i}" for i in range(300)]}).to_parquet(
        str(root / "vectors.parquet"))
    other = np.random.default_rng(1).standard_normal((300, 32)).astype(np.float32)
    Dataset.from_dict({"embeddings": other.tolist()}).to_parquet(str(root / "other.parquet"))
    np.save(root / "queries.npy", vectors[:2])
    assert cli.main(["index", "build", "--dataset", str(root / "vectors.parquet"), "--output", str(root / "index"),
                     "--tune", "0", "--nlist", "4"]) == 0
    return root


def test_index_search_errors_are_one_line(vector_index, capsys):
    root = vector_index
    base = ["index", "search", "--dataset", str(root / "vectors.parquet")]
    code, _, err = _call(capsys, *base, "--index", str(root / "missing"), "--query-vectors", str(root / "queries.npy"))
    assert code == 2 and "--index" in _one_line(err) and "missing" in err
    code, _, err = _call(capsys, *base, "--index", str(root / "index"), "--query-vectors", str(root / "queries.npy"),
                         "--k", "0")
    assert code == 2 and "--k" in _one_line(err) and ">= 1" in err
    code, _, err = _call(capsys, "index", "search", "--dataset", str(root / "other.parquet"), "--index",
                         str(root / "index"), "--query-vectors", str(root / "queries.npy"))
    assert code == 2 and "other vectors" in _one_line(err)
    code, _, err = _call(capsys, *base, "--index", str(root / "index"), "--query-vectors", str(root / "queries.npy"),
                         "--show-column", "nope")
    assert code == 2 and "--show-column 'nope'" in _one_line(err) and "'name'" in err
    code, out, _ = _call(capsys, *base, "--index", str(root / "index"), "--query-vectors", str(root / "queries.npy"),
                         "--show-column", "name", "--k", "3", "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["hits"][0]["name"] == "row0"


def test_index_search_by_text_needs_the_model_that_made_the_vectors(vector_index, capsys):
    """An index without a recorded embedding model would be searched in a foreign vector space."""
    code, out, err = _call(capsys, "index", "search", "--dataset", str(vector_index / "vectors.parquet"),
                           "--index", str(vector_index / "index"), "--query", "anything")
    assert code == 2 and "--model" in _one_line(err) and "records no embedding model" in err and "query:" not in out


def test_an_index_in_an_older_format_says_how_to_rebuild(vector_index, tmp_path, capsys):
    old = tmp_path / "old-index"
    shutil.copytree(vector_index / "index", old)
    config = json.loads((old / "config.json").read_text())
    config.pop("hf_ada_artifact")  # what indexes saved before the artifact record look like
    (old / "config.json").write_text(json.dumps(config))
    code, _, err = _call(capsys, "index", "search", "--dataset", str(vector_index / "vectors.parquet"), "--index",
                         str(old), "--query-vectors", str(vector_index / "queries.npy"))
    line = _one_line(err)
    assert code == 1 and "older format" in line and f"hf-ada index build --dataset {vector_index / 'vectors.parquet'}" in line


def test_index_build_refuses_a_folder_with_a_user_readme_before_the_build(vector_index, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    code, _, err = _call(capsys, "index", "build", "--dataset", str(vector_index / "vectors.parquet"), "--output",
                         str(out))
    assert code == 2 and "README.md" in _one_line(err) and "--output" in err
    assert sorted(p.name for p in out.iterdir()) == ["README.md"] and (out / "README.md").read_text() == "my notes"
    # rebuilding over an index hf-ada saved (its own README.md included) is allowed
    shutil.copytree(vector_index / "index", tmp_path / "again")
    assert _call(capsys, "index", "build", "--dataset", str(vector_index / "vectors.parquet"), "--output",
                 str(tmp_path / "again"), "--tune", "0", "--nlist", "4")[0] == 0


def test_index_push_of_the_current_folder(vector_index, local_hub, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "docs-index"
    shutil.copytree(vector_index / "index", folder)
    monkeypatch.chdir(folder)
    repo_id = local_hub.repo_id("cli-dot")
    code, out, err = _call(capsys, "index", "push", ".", repo_id, "--token", local_hub.token)
    assert code == 0, err
    assert "adanns/docs-index/config.json" in local_hub.files(repo_id, repo_type="dataset")
    local_hub.set_down(True)
    try:
        code, _, err = _call(capsys, "index", "push", ".", local_hub.repo_id("cli-down"), "--token", local_hub.token)
    finally:
        local_hub.set_down(False)
    assert code == 1 and "failed" in _one_line(err) and "--debug" in err


def test_index_push_space_needs_the_ui_before_the_upload(vector_index, local_hub, capsys, monkeypatch):
    from hf_ada.commands import ui

    monkeypatch.setattr(ui.importlib.util, "find_spec", lambda name: None)
    repo_id = local_hub.repo_id("cli-space")
    code, _, err = _call(capsys, "index", "push", str(vector_index / "index"), repo_id, "--token", local_hub.token,
                         "--space", "me/space")
    assert code == 2 and "pip install 'hf-ada[ui]'" in _one_line(err)
    with pytest.raises(KeyError):  # refused before the upload: the repo was never created
        local_hub.files(repo_id, repo_type="dataset")


def _tiny_classifier(folder: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hf_ada.demo.pretrained import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2, id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1})).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_adapt_checks_outputs_and_inputs_before_the_memory_build(vector_index, tmp_path, capsys):
    _tiny_classifier(tmp_path / "model")
    rows = [{"text": t, "label": l} for t, l in [("good", "pos"), ("bad", "neg")]]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["adapt", "--model", str(tmp_path / "model"), "--train-dataset", str(tmp_path / "train.jsonl"),
            "--stream", str(tmp_path / "train.jsonl")]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    code, out, err = _call(capsys, *base, "--output-dir", str(mine))
    assert code == 2 and "--output-dir" in _one_line(err) and "README.md" in err and "memory_size" not in out
    code, out, err = _call(capsys, *base, "--output-dir", str(vector_index / "index"))
    assert code == 2 and "AdANNS index" in _one_line(err) and "memory_size" not in out
    code, _, err = _call(capsys, "adapt", "--model", str(tmp_path / "model"), "--train-dataset",
                         str(tmp_path / "nope" / "train.csv"), "--output-dir", str(tmp_path / "p"))
    assert code == 2 and "--train-dataset" in _one_line(err) and "no such file" in err
    code, _, err = _call(capsys, "adapt", "--model", str(tmp_path / "model"), "--train-dataset", "train.csv",
                         "--output-dir", str(tmp_path / "p"))
    assert code == 2 and "no such file" in _one_line(err)  # a data-file name is never looked up on the Hub
    assert not (tmp_path / "p").exists() and sorted(p.name for p in mine.iterdir()) == ["README.md"]


def test_a_bad_optim_args_key_is_one_line_in_scripts_and_under_the_launcher(tmp_path, capsys):
    import hf_ada.scripts.run_text_classification as script

    (tmp_path / "train.csv").write_text("text,label\ngood,pos\nbad,neg\n")
    args = ["--config_name", "bert", "--tokenizer_name", "unused", "--train_file", str(tmp_path / "train.csv"),
            "--output_dir", str(tmp_path / "out"), "--optim", "adan", "--optim_args", "beta4=0.5",
            "--report_to", "none", "--use_cpu"]
    assert run_main(script.main, args, prog="run_text_classification", strip_debug=False) == 2
    line = _one_line(capsys.readouterr().err)
    assert "beta4" in line and "allowed keys" in line
    third_party = tmp_path / "train.py"  # an unmodified script that never imports hf_ada
    third_party.write_text("from transformers import HfArgumentParser, TrainingArguments\n"
                           "HfArgumentParser(TrainingArguments).parse_args_into_dataclasses()\n")
    code, _, err = _call(capsys, "run", str(third_party), "--output_dir", str(tmp_path / "o"), "--optim", "adan",
                         "--optim_args", "beta4=0.5")
    assert code == 2 and "beta4" in _one_line(err)
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(vector_index, capsys, monkeypatch):
    argv = ["index", "search", "--dataset", str(vector_index / "vectors.parquet"), "--index",
            str(vector_index / "missing"), "--query-vectors", str(vector_index / "queries.npy")]
    monkeypatch.delenv("HF_ADA_DEBUG", raising=False)
    assert cli.main(argv) == 2 and "Traceback" not in capsys.readouterr().err
    for debug_argv in ([*argv, "--debug"], ["--debug", *argv]):
        with pytest.raises(FileNotFoundError, match="--index"):
            cli.main(debug_argv)
        assert "HF_ADA_DEBUG" not in os.environ  # the flag does not outlive the command
    monkeypatch.setenv("HF_ADA_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(argv)
    monkeypatch.setenv("HF_ADA_DEBUG", "0")
    assert cli.main(argv) == 2 and "--index" in _one_line(capsys.readouterr().err)


def test_the_console_entry_point_exits_with_the_status(vector_index):
    """The installed ``hf-ada`` (``python -m hf_ada.cli``): a real process, one line, status 2."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HF_ADA_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "hf_ada.cli", "index", "search", "--dataset",
                           str(vector_index / "vectors.parquet"), "--index", str(vector_index / "index"),
                           "--query-vectors", str(vector_index / "queries.npy"), "--k", "0"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "--k" in _one_line(proc.stderr)
