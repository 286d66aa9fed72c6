"""The same reported loss on 1 and on 2 processes (issue 25 §2).

transformers' ``average_tokens_across_devices=True`` multiplies the loss by the process count for models that
take ``**kwargs`` but ignore ``num_items_in_batch`` (BERT classifiers): hf-ada's scripts detect such a model
and let the Trainer average per process instead; ``hf-ada run`` warns once when a third-party script hits it.
Real processes: ``torchrun --nproc_per_node 2`` with ``--use_cpu`` (two gloo ranks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import free_port

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.multiprocess


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
            "HF_HUB_OFFLINE": "1"}


def _args(tmp_path: Path, out: str, batch: int) -> list[str]:
    from hf_ada.demo.pretrained import minilm_path

    if not (tmp_path / "train.csv").exists():
        words = ["good", "bad", "fine", "awful", "great", "poor", "nice", "sad"]
        rows = [f"{words[i % 8]} thing number {i} {words[(3 * i) % 8]},{('pos', 'neg')[i % 2]}" for i in range(64)]
        (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return ["--config_name", "bert", "--config_overrides",
            "hidden_size=16,num_hidden_layers=1,num_attention_heads=2,intermediate_size=32,"
            "hidden_dropout_prob=0,attention_probs_dropout_prob=0",
            "--tokenizer_name", str(minilm_path()), "--train_file", str(tmp_path / "train.csv"),
            "--validation_file", str(tmp_path / "train.csv"), "--max_seq_length", "16",
            "--output_dir", str(tmp_path / out), "--optim", "adan", "--optim_args", "fused=false", "--learning_rate", "3e-2",
            "--per_device_train_batch_size", str(batch), "--per_device_eval_batch_size", "16", "--max_steps", "8",
            "--logging_steps", "1", "--report_to", "none", "--use_cpu", "--seed", "3", "--disable_tqdm", "true"]


def test_scripts_report_the_same_loss_on_one_and_two_processes(tmp_path, monkeypatch):
    """The one-process reference runs in this process (the script's ``main``; the script as its own process is
    tests/test_adan_trainer.py's), the two ranks under torchrun."""
    from hf_ada.scripts.run_text_classification import main

    script = str(REPO / "scripts" / "run_text_classification.py")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    main(_args(tmp_path, "one", 8))
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(free_port()), script, *_args(tmp_path, "two", 4)],
                         capture_output=True, text=True, env=_env(), timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    r1 = json.loads((tmp_path / "one" / "all_results.json").read_text())
    r2 = json.loads((tmp_path / "two" / "all_results.json").read_text())
    # the 2-process run really was two ranks of one job: 2 x 4 rows per step, so 8 steps are one epoch
    assert r1["epoch"] == r2["epoch"] == pytest.approx(1.0)
    assert r1["train_loss"] == pytest.approx(r2["train_loss"], rel=2e-3), (r1, r2)
    assert r1["eval_loss"] == pytest.approx(r2["eval_loss"], rel=2e-3), (r1, r2)
    # the model card names the data and records the evaluation metrics; no checkpoint folders by default
    card = (tmp_path / "one" / "README.md").read_text()
    assert "on the train.csv" in card and "- Accuracy: " in card and "eval_accuracy: " in card, card
    assert not list((tmp_path / "one").glob("checkpoint-*"))


def test_the_launcher_warns_once_when_a_third_party_script_hits_the_case(tmp_path):
    """An unmodified script (no hf-ada import) with a BERT classifier on 2 processes: one warning, rank 0."""
    third_party = tmp_path / "train.py"
    third_party.write_text(
        "import torch\n"
        "from datasets import Dataset\n"
        "from transformers import BertConfig, BertForSequenceClassification, HfArgumentParser, Trainer, "
        "TrainingArguments\n"
        "(args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses()\n"
        "torch.manual_seed(0)\n"
        "model = BertForSequenceClassification(BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,\n"
        "    num_attention_heads=2, intermediate_size=32, max_position_embeddings=16, num_labels=2))\n"
        "ids = torch.randint(1, 32, (32, 8), generator=torch.Generator().manual_seed(1))\n"
        "data = Dataset.from_dict({'input_ids': ids.tolist(), 'labels': (ids[:, 0] % 2).tolist()})\n"
        "Trainer(model=model, args=args, train_dataset=data).train()\n")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), "-m", "hf_ada.run", str(third_party), "--output_dir", str(tmp_path / "o"),
                           "--optim", "adan", "--optim_args", "fused=false", "--max_steps", "2", "--per_device_train_batch_size", "4",
                           "--use_cpu", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true"],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("loss ignores num_items_in_batch") == 1, proc.stderr[-3000:]
    assert "--average_tokens_across_devices false" in proc.stderr
