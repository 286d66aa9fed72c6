"""`optim="adan"` in TrainingArguments / HfArgumentParser scripts, every Trainer flavour, and the launcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    HfArgumentParser,
    Seq2SeqTrainingArguments,
    Trainer,
    TrainingArguments,
)

import hf_ada
from hf_ada.optim.integration import is_registered
from hf_ada.optim.optim_args import OPTIM_ARGS, parse_adan_optim_args

ASSETS = Path(__file__).parent / "assets"
REPO = Path(__file__).resolve().parents[1]


def _args(tmp_path, **kwargs) -> TrainingArguments:
    kwargs.setdefault("report_to", "none")
    kwargs.setdefault("use_cpu", True)
    return TrainingArguments(str(tmp_path / "out"), optim="adan", **kwargs)


def _tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def test_registered_and_idempotent():
    hf_ada.register_adan()
    hf_ada.register_adan()
    assert is_registered()


def test_optimizer_built_from_training_args(tmp_path):
    args = _args(tmp_path, learning_rate=3e-4, adam_epsilon=1e-7, adam_beta1=0.5, adam_beta2=0.6)
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    assert cls is hf_ada.Adan
    # Adam's betas are not Adan's: Adan's own defaults apply unless --optim_args sets them
    assert kwargs == {"lr": 3e-4, "betas": (0.98, 0.92, 0.99), "eps": 1e-7}


def test_optim_args_set_adan_knobs(tmp_path):
    args = _args(
        tmp_path, optim_args="beta1=0.9, beta3=0.995,no_prox=true,max_grad_norm=0.5,foreach=false,eps=1e-6"
    )
    _, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    assert kwargs["betas"] == (0.9, 0.92, 0.995)
    assert kwargs["no_prox"] is True and kwargs["foreach"] is False
    assert kwargs["max_grad_norm"] == 0.5 and kwargs["eps"] == 1e-6


@pytest.mark.parametrize(
    "optim_args, match",
    [
        ("bogus=1", "allowed keys: beta1, beta2, beta3, eps"),
        ("beta1", "not key=value"),
        ("beta2=1.5", r"beta2=1.5 .* must be in \[0, 1\)"),
        ("no_prox=maybe", "no_prox='maybe'.*true/false"),
        ("max_grad_norm=-1", "max_grad_norm"),
        ("foreach=true,fused=true", "mutually exclusive"),
    ],
)
def test_bad_optim_args_fail_at_argument_time(tmp_path, optim_args, match):
    with pytest.raises(ValueError, match=match):
        _args(tmp_path, optim_args=optim_args)


def test_optim_args_keys_documented():
    # eps must be > 0 (issue 10), so it gets a valid value here
    parsed = parse_adan_optim_args("beta1=0,beta2=0,beta3=0,eps=1e-8")
    assert set(parsed) == {"beta1", "beta2", "beta3", "eps"} <= set(OPTIM_ARGS)


def test_optim_args_of_other_optimizers_untouched(tmp_path):
    args = TrainingArguments(str(tmp_path), optim="adamw_torch", optim_args="anything=goes", report_to="none")
    assert args.optim_args == "anything=goes"


def test_hf_argument_parser_accepts_and_lists_adan(tmp_path):
    parser = HfArgumentParser(TrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--optim", "adan", "--optim_args", "no_prox=true", "--report_to", "none"]
    )
    assert args.optim == "adan"
    assert "adan" in parser.format_help()
    with pytest.raises(ValueError, match="allowed keys"):
        parser.parse_args_into_dataclasses(
            ["--output_dir", str(tmp_path), "--optim", "adan", "--optim_args", "nope=1", "--report_to", "none"]
        )


def test_seq2seq_training_arguments_accept_adan(tmp_path):
    args = Seq2SeqTrainingArguments(str(tmp_path), optim="adan", report_to="none")
    assert Trainer.get_optimizer_cls_and_kwargs(args)[0] is hf_ada.Adan


def test_trainer_trains_with_adan_and_no_decay_groups(tmp_path):
    model = _tiny_bert()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 40, (16, 6), generator=gen)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": (ids[:, 0] % 2).tolist()})
    args = _args(tmp_path, max_steps=3, per_device_train_batch_size=8, learning_rate=1e-2, weight_decay=0.1,
                 save_strategy="no", disable_tqdm=True)  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    assert isinstance(optimizer, hf_ada.Adan)
    decays = {group["weight_decay"] for group in optimizer.param_groups}
    assert decays == {0.1, 0.0}  # the Trainer's no-decay group for biases and LayerNorm
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = [names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]]
    assert no_decay and all("bias" in n or "LayerNorm" in n for n in no_decay)
    assert all(optimizer.state[p]["step"].item() == 3 for g in optimizer.param_groups for p in g["params"])
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_sentence_transformer_trainer_uses_adan(tmp_path):
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, losses
    from sentence_transformers.models import Pooling, Transformer
    from sentence_transformers.training_args import SentenceTransformerTrainingArguments

    from hf_ada.demo.pretrained import minilm_path

    bert_dir = tmp_path / "tiny-bert"
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    BertModel(
        BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    ).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    transformer = Transformer(str(bert_dir), max_seq_length=16)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_word_embedding_dimension())])
    pairs = Dataset.from_dict(
        {"anchor": [f"query number {i}" for i in range(8)], "positive": [f"document about {i}" for i in range(8)]}
    )
    args = SentenceTransformerTrainingArguments(
        str(tmp_path / "st"), optim="adan", optim_args="no_prox=true", max_steps=2, per_device_train_batch_size=4,
        report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=pairs, loss=losses.MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    assert isinstance(optimizer, hf_ada.Adan)
    assert all(g["no_prox"] for g in optimizer.param_groups)
    # sentence-transformers writes its own card (not transformers'): it gets the Adan section too (issue 9)
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "st" / "README.md")  # written when training ended
    assert "sentence-transformers" in card.data.tags and "hf-ada" in card.data.tags
    assert card.data.to_dict()["hf_ada"]["optimizer"]["no_prox"] is True
    assert card.data.to_dict()["hf_ada"]["run"]["global_step"] == 2
    assert card.text.count("## Optimizer: Adan") == 1 and "SentenceTransformer" in card.text
    trainer.create_model_card()  # explicit call (what push_to_hub does) re-renders, never duplicates
    assert (tmp_path / "st" / "README.md").read_text().count("## Optimizer: Adan") == 1
    trainer.save_model(str(tmp_path / "st-final"))  # the model's own save writes a card: Adan section too
    assert (tmp_path / "st-final" / "README.md").read_text().count("## Optimizer: Adan") == 1


def _launch(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)


SCRIPT_ARGS = ["--optim", "adan", "--max_steps", "2", "--per_device_train_batch_size", "8", "--report_to", "none",
               "--save_strategy", "no", "--use_cpu", "--disable_tqdm", "true"]  # fmt: skip


def test_launcher_runs_unmodified_script_with_adan(tmp_path):
    """``hf-ada run`` (the console script); its module door ``python -m hf_ada.run`` (what ``accelerate launch -m``
    and ``torchrun -m`` start) trains in tests/test_adan_multiprocess.py and tests/test_cli_loss_processes.py."""
    out = tmp_path / "out"
    prefix = [str(Path(sys.executable).parent / "hf-ada"), "run"]
    proc = _launch([*prefix, str(ASSETS / "plain_trainer_script.py"), "--output_dir", str(out), *SCRIPT_ARGS], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert '"optimizer": "Adan"' in (out / "world.json").read_text()


def test_unmodified_script_rejects_adan_without_launcher(tmp_path):
    """The control: the same script, run plainly, does not know `--optim adan`."""
    proc = _launch([sys.executable, str(ASSETS / "plain_trainer_script.py"), "--output_dir", str(tmp_path / "o"),
                    *SCRIPT_ARGS], tmp_path)  # fmt: skip
    assert proc.returncode != 0
    assert "adan" in proc.stderr


def test_launcher_usage_and_missing_script(tmp_path, monkeypatch, capsys):
    proc = _launch([sys.executable, "-m", "hf_ada.run", "--help"], tmp_path)
    assert proc.returncode == 0 and "SCRIPT.py" in proc.stdout
    from hf_ada.run import main

    monkeypatch.chdir(tmp_path)
    assert main(["does_not_exist.py"]) == 2
    err = capsys.readouterr().err
    assert "no such" in err and "does_not_exist.py" in err


def test_text_classification_script_with_adan(tmp_path, monkeypatch):
    """scripts/run_text_classification.py on a local csv, a tiny BERT from a config, `--optim adan`: its ``main``
    in this process (the script as its own processes: tests/test_cli_loss_processes.py, under torchrun)."""
    import json

    from hf_ada.demo.pretrained import minilm_path
    from hf_ada.scripts.run_text_classification import main

    rows = ["text,label"] + [f"good thing number {i},pos" if i % 2 else f"bad thing number {i},neg" for i in range(24)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "clf"
    monkeypatch.setenv("TQDM_DISABLE", "1")
    main(["--config_name", "bert",
          "--config_overrides", "hidden_size=16,num_hidden_layers=1,num_attention_heads=2,intermediate_size=32",
          "--tokenizer_name", str(minilm_path()), "--train_file", str(tmp_path / "train.csv"),
          "--validation_file", str(tmp_path / "train.csv"), "--output_dir", str(out), "--do_train",
          "--learning_rate", "1e-3", "--optim_args", "no_prox=true", *SCRIPT_ARGS])  # fmt: skip
    metrics = json.loads((out / "all_results.json").read_text())
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and metrics["train_loss"] > 0
    assert (out / "model.safetensors").is_file()


def test_clm_script_with_adan(tmp_path, monkeypatch):
    """scripts/run_clm.py's ``main`` in this process (a script run on its own imports hf_ada as its first hf-ada
    import, which registers `--optim adan`: tests/test_scripts_cli.py runs one under `hf-ada run`)."""
    import json

    from hf_ada.demo.pretrained import minilm_path
    from hf_ada.scripts.run_clm import main

    (tmp_path / "corpus.txt").write_text("\n".join(f"line {i} of a tiny corpus about packages" for i in range(200)))
    out = tmp_path / "lm"
    monkeypatch.setenv("TQDM_DISABLE", "1")
    main(["--config_name", "gpt2", "--config_overrides", "n_embd=16,n_layer=1,n_head=2,n_positions=64",
          "--tokenizer_name", str(minilm_path()), "--train_file", str(tmp_path / "corpus.txt"),
          "--validation_split_percentage", "10", "--block_size", "32", "--output_dir", str(out), "--do_train",
          "--do_eval", *SCRIPT_ARGS])  # fmt: skip
    metrics = json.loads((out / "all_results.json").read_text())
    assert metrics["perplexity"] > 1.0
    assert (out / "model.safetensors").is_file()
