"""``Trainer`` + ``--optim adan`` + ``--push_to_hub`` against the local Hub double: the pushed card records
Adan and its hyperparameters, and the pushed model reloads with identical logits."""

from __future__ import annotations

import torch
from datasets import Dataset
from huggingface_hub import ModelCard
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

import hf_ada
from hf_ada.common.hub import resolve_folder
from hf_ada.optim.model_card import final_metrics

torch.set_num_threads(1)

OPTIM_ARGS = "beta1=0.97,beta2=0.9,beta3=0.985,eps=1e-7,no_prox=true,max_grad_norm=2.5"
STEPS = 4


def _tiny_model() -> BertForSequenceClassification:
    config = BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2,
    )
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def _data(n: int, seed: int) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, 64, (n, 8), generator=generator)
    labels = (input_ids[:, 0] % 2).tolist()  # learnable from the first token
    return Dataset.from_dict(
        {"input_ids": input_ids.tolist(), "attention_mask": [[1] * 8] * n, "labels": labels}
    )


def _args(output_dir, **overrides) -> TrainingArguments:
    values = dict(
        output_dir=str(output_dir), learning_rate=3e-3, weight_decay=0.02, max_steps=STEPS,
        per_device_train_batch_size=8, per_device_eval_batch_size=16, logging_steps=2, save_strategy="no",
        report_to="none", use_cpu=True, seed=7, dataloader_num_workers=0, disable_tqdm=True,
    )
    values.update(overrides)
    return TrainingArguments(**values)


def test_push_to_hub_with_adan_records_optimizer_and_reloads(local_hub, tmp_path, empty_cache):
    repo_id = local_hub.repo_id("tiny-bert-adan")
    args = _args(
        tmp_path / "run", optim="adan", optim_args=OPTIM_ARGS, push_to_hub=True, hub_model_id=repo_id,
        hub_token=local_hub.token,
    )
    trainer = Trainer(model=_tiny_model(), args=args, train_dataset=_data(32, 1), eval_dataset=_data(16, 2))
    trainer.train()
    eval_metrics = trainer.evaluate()
    trainer.push_to_hub(commit_message="End of Adan training")

    assert isinstance(getattr(trainer.optimizer, "optimizer", trainer.optimizer), hf_ada.Adan)
    assert local_hub.commit_titles(repo_id)[0] == "End of Adan training"

    folder = resolve_folder(repo_id, cache_dir=empty_cache)
    card = ModelCard.load(folder / "README.md")
    record = card.data.to_dict()["hf_ada"]
    assert record["optimizer"] == {
        "name": "adan", "class": "hf_ada.Adan", "lr": 3e-3, "betas": [0.97, 0.9, 0.985], "eps": 1e-7,
        "weight_decay": 0.02, "no_prox": True, "max_grad_norm": 2.5, "fp32_state": False, "optim_args": OPTIM_ARGS,
        "nonfinite_grads": "skip", "skipped_steps": 0, "from_adamw": None,
    }
    assert record["run"]["global_step"] == STEPS == trainer.state.global_step
    assert record["run"]["seed"] == 7
    assert record["final_metrics"]["eval_loss"] == eval_metrics["eval_loss"]
    train_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(train_losses) == STEPS // 2 and record["final_metrics"]["loss"] == train_losses[-1]
    assert {"adan", "hf-ada"} <= set(card.data.tags)

    text = card.text
    assert "## Optimizer: Adan" in text
    assert "| betas (beta1, beta2, beta3) | 0.97, 0.9, 0.985 |" in text
    assert "| no_prox | True |" in text
    assert "| in-optimizer gradient clipping (max_grad_norm) | 2.5 |" in text
    assert f"| optimizer steps | {STEPS} of {STEPS} |" in text
    assert f"| eval_loss | {eval_metrics['eval_loss']:.6g} | {STEPS} |" in text
    assert "### Training hyperparameters" in text and "### Framework versions" in text  # transformers' card kept
    assert "multiplicative form" in text  # no_prox=true
    # transformers' own lines no longer contradict the Adan section (issue 14)
    assert "OptimizerNames.ADAN" not in text and "No additional optimizer arguments" not in text
    assert "- optimizer: Adan (hf_ada.Adan, `--optim adan`) with betas=(0.97,0.9,0.985), eps=1e-07" in text
    assert "[](https://huggingface.co/)" not in text
    assert "built from its config (no base model was recorded)" in text
    assert text.count("## Optimizer: Adan") == 1  # the train-end card was re-rendered, not appended to
    assert "| non-finite gradients | skip (a step with an inf/nan gradient is skipped; 0 skipped in this run) |" in text

    reloaded = BertForSequenceClassification.from_pretrained(repo_id, cache_dir=empty_cache).eval()
    model = trainer.model.eval()
    batch = _data(16, 3)
    inputs = {
        "input_ids": torch.tensor(batch["input_ids"]),
        "attention_mask": torch.tensor(batch["attention_mask"]),
    }
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_adan_run_writes_its_card_locally_when_training_ends(tmp_path):
    args = _args(tmp_path / "local", optim="adan", optim_args="max_grad_norm=1.5")
    trainer = Trainer(model=_tiny_model(), args=args, train_dataset=_data(32, 1))
    assert not (tmp_path / "local" / "README.md").exists()
    trainer.train()
    card = ModelCard.load(tmp_path / "local" / "README.md")  # no push, no create_model_card call
    assert card.data.to_dict()["hf_ada"]["run"]["global_step"] == STEPS
    assert card.data.to_dict()["hf_ada"]["optimizer"]["max_grad_norm"] == 1.5
    assert "## Optimizer: Adan" in card.text and "OptimizerNames.ADAN" not in card.text


def test_train_end_card_never_replaces_a_readme_it_did_not_write(tmp_path, caplog):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("# My notes\n\nkeep me\n")
    trainer = Trainer(model=_tiny_model(), args=_args(out, optim="adan"), train_dataset=_data(16, 1))
    with caplog.at_level("WARNING", logger="hf_ada.optim.integration"):
        trainer.train()
    assert (out / "README.md").read_text() == "# My notes\n\nkeep me\n"
    assert "was not generated by a Trainer" in caplog.text


def test_adamw_run_writes_no_card_at_train_end(tmp_path):
    trainer = Trainer(model=_tiny_model(), args=_args(tmp_path / "adamw", optim="adamw_torch"), train_dataset=_data(16, 1))
    trainer.train()
    assert not (tmp_path / "adamw" / "README.md").exists()  # transformers' behaviour is left alone


def test_cards_of_other_optimizers_are_left_to_transformers(tmp_path):
    args = _args(tmp_path / "adamw", optim="adamw_torch")
    trainer = Trainer(model=_tiny_model(), args=args, train_dataset=_data(8, 1))
    trainer.create_model_card(model_name="tiny")

    text = (tmp_path / "adamw" / "README.md").read_text()
    assert "### Training hyperparameters" in text
    assert "Optimizer: Adan" not in text and "hf_ada:" not in text


def test_card_of_an_untrained_adan_run_takes_hyperparameters_from_args(tmp_path):
    args = _args(tmp_path / "adan", optim="adan", optim_args="beta2=0.8", weight_decay=0.0)
    trainer = Trainer(model=_tiny_model(), args=args, train_dataset=_data(8, 1))
    trainer.create_model_card(model_name="tiny")  # no optimizer built yet

    card = ModelCard.load(tmp_path / "adan" / "README.md")
    optimizer = card.data.to_dict()["hf_ada"]["optimizer"]
    assert optimizer["betas"] == [0.98, 0.8, 0.99]  # Adan's defaults except the overridden beta2
    assert optimizer["eps"] == args.adam_epsilon and optimizer["no_prox"] is False
    assert "No metrics were logged during this run." in card.text
    assert "proximal form" in card.text


def test_hook_is_installed_once():
    hf_ada.register_adan()
    hf_ada.register_adan()
    hook = Trainer.create_model_card
    assert hook.__hf_ada_wrapped__
    assert not getattr(hook.__wrapped__, "__hf_ada_wrapped__", False)


def test_final_metrics_keeps_the_last_value_of_each_metric():
    history = [
        {"loss": 0.9, "grad_norm": 1.2, "learning_rate": 1e-3, "epoch": 0.5, "step": 2},
        {"loss": 0.7, "grad_norm": 1.1, "learning_rate": 5e-4, "epoch": 1.0, "step": 4},
        {"eval_loss": 0.65, "eval_accuracy": 0.75, "eval_runtime": 0.1, "eval_samples_per_second": 160.0, "step": 4},
        {"train_runtime": 1.0, "train_loss": 0.8, "total_flos": 10.0, "epoch": 1.0, "step": 4},
    ]
    assert final_metrics(history) == [
        {"name": "loss", "value": 0.7, "step": 4},
        {"name": "eval_loss", "value": 0.65, "step": 4},
        {"name": "eval_accuracy", "value": 0.75, "step": 4},
        {"name": "train_loss", "value": 0.8, "step": 4},
    ]
