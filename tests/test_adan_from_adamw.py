"""AdamW -> Adan translation: the rule, ``--optim_args from_adamw=true`` in TrainingArguments, its record in the
model card, and full validation of ``--optim_args`` when the arguments are created."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

import hf_ada  # noqa: F401  (registers --optim adan)
from hf_ada.optim import Adan, adan_from_adamw
from hf_ada.optim.optim_args import FROM_ADAMW_LR_MULTIPLIER


def _args(tmp_path, **kwargs) -> TrainingArguments:
    kwargs.setdefault("report_to", "none")
    kwargs.setdefault("use_cpu", True)
    return TrainingArguments(str(tmp_path / "out"), optim="adan", **kwargs)


# -- the rule ------------------------------------------------------------------------------------------------


def test_rule_on_a_typical_llm_adamw_recipe():
    t = adan_from_adamw(6e-4, weight_decay=0.1, warmup_steps=2000, betas=(0.9, 0.95), lr_multiplier=5)
    assert t.lr == pytest.approx(3e-3)
    assert t.weight_decay == pytest.approx(0.02)  # lr*wd kept: 0.1 at 5x gives the maintainers' 0.02
    assert t.lr * t.weight_decay == pytest.approx(6e-4 * 0.1)
    assert t.warmup_steps == 4000  # steps stay steps, doubled
    assert t.betas == (0.98, 0.92, 0.95)  # AdamW's beta2 < 0.99 becomes Adan's beta3
    assert t.adamw == {"lr": 6e-4, "weight_decay": 0.1, "warmup_steps": 2000.0, "betas": [0.9, 0.95], "eps": 1e-8}
    assert t.adan_kwargs() == {"lr": t.lr, "betas": (0.98, 0.92, 0.95), "eps": 1e-8, "weight_decay": t.weight_decay}
    Adan([torch.nn.Parameter(torch.zeros(2))], **t.adan_kwargs())  # valid Adan settings


@pytest.mark.parametrize(
    "warmup, expected",
    [(0.0, 0.05), (0.01, 0.05), (0.06, 0.12), (0.4, 0.5), (10, 20.0), (1, 2.0)],
)
def test_warmup_is_longer_and_never_zero(warmup, expected):
    assert adan_from_adamw(1e-3, warmup_steps=warmup).warmup_steps == pytest.approx(expected)


def test_default_multiplier_and_defaults():
    t = adan_from_adamw(1e-3)
    assert t.lr == pytest.approx(FROM_ADAMW_LR_MULTIPLIER * 1e-3)
    assert t.weight_decay == 0.0 and t.betas == (0.98, 0.92, 0.99)  # AdamW beta2 0.999 keeps Adan's 0.99
    assert "lr 0.001 -> " in t.describe() and "warm-up none -> 5% of the steps" in t.describe()


@pytest.mark.parametrize(
    "kwargs", [dict(learning_rate=float("nan")), dict(learning_rate=-1.0), dict(weight_decay=-0.1),
               dict(warmup_steps=-1), dict(lr_multiplier=0.0)],  # fmt: skip
)
def test_rule_rejects_invalid_inputs(kwargs):
    values = dict(learning_rate=1e-3, **kwargs) if "learning_rate" not in kwargs else kwargs
    with pytest.raises(ValueError, match="adan_from_adamw"):
        adan_from_adamw(**values)


# -- --optim_args from_adamw=true ---------------------------------------------------------------------------


def test_training_arguments_are_translated_once_and_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_ada.optim.integration"):
        args = _args(tmp_path, learning_rate=1e-3, weight_decay=0.1, warmup_steps=0.05, adam_beta2=0.95,
                     optim_args="from_adamw=true,lr_multiplier=4,no_prox=true")  # fmt: skip
    assert "from_adamw=true translated" in caplog.text and "lr 0.001 -> 0.004 (x4)" in caplog.text
    assert args.learning_rate == pytest.approx(4e-3)
    assert args.weight_decay == pytest.approx(0.025)
    assert args.warmup_steps == pytest.approx(0.1)
    assert "from_adamw=applied" in args.optim_args and "from_adamw_lr=0.001" in args.optim_args
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    assert cls is Adan
    assert kwargs == {"lr": pytest.approx(4e-3), "betas": (0.98, 0.92, 0.95), "eps": 1e-8, "no_prox": True}
    # re-creating the arguments from their dict (hyperparameter search, accelerate, ...) does not translate again
    again = TrainingArguments(**{k: v for k, v in args.to_dict().items() if k in TrainingArguments.__dataclass_fields__
                                 and TrainingArguments.__dataclass_fields__[k].init})  # fmt: skip
    assert again.learning_rate == args.learning_rate and again.weight_decay == args.weight_decay
    assert again.optim_args == args.optim_args


def test_explicit_betas_win_over_the_translation(tmp_path):
    args = _args(tmp_path, learning_rate=1e-3, adam_beta2=0.95, optim_args="from_adamw=true,beta3=0.999")
    _, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    assert kwargs["betas"] == (0.98, 0.92, 0.999)


def test_without_from_adamw_nothing_is_translated(tmp_path):
    args = _args(tmp_path, learning_rate=1e-3, weight_decay=0.1, optim_args="from_adamw=false")
    assert args.learning_rate == 1e-3 and args.weight_decay == 0.1 and args.warmup_steps == 0


def test_translation_is_recorded_in_the_model_card(tmp_path):
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)  # fmt: skip
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (16, 8), generator=gen)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": (ids[:, 0] % 2).tolist()})
    args = _args(tmp_path, learning_rate=5e-4, weight_decay=0.1, warmup_steps=1, max_steps=3,
                 per_device_train_batch_size=8, save_strategy="no", disable_tqdm=True,
                 optim_args="from_adamw=true,lr_multiplier=5")  # fmt: skip
    trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=data)
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # linear schedule reached 0 at the end
    assert max(g["initial_lr"] for g in optimizer.param_groups) == pytest.approx(2.5e-3)
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, pytest.approx(0.02)]
    assert trainer.lr_scheduler.lr_lambdas[0](1) < 1.0  # warm-up became 2 steps: step 1 is still warming up

    card = ModelCard.load(tmp_path / "out" / "README.md")  # written at train end
    record = card.data.to_dict()["hf_ada"]["optimizer"]
    assert record["from_adamw"] == {"adamw_lr": 5e-4, "adamw_weight_decay": 0.1, "adamw_warmup_steps": 1.0,
                                    "adamw_beta2": 0.999, "lr_multiplier": 5.0}  # fmt: skip
    assert record["lr"] == pytest.approx(2.5e-3) and record["weight_decay"] == pytest.approx(0.02)
    text = card.text
    assert "### Translated from AdamW settings" in text
    assert "| learning rate | 0.0005 | 0.0025 (x5.0) |" in text
    assert "| warm-up (`--warmup_steps`) | 1.0 | 2 |" in text
    assert "- learning_rate: 0.0025" in text  # transformers' own list shows the learning rate actually used
    assert '--optim_args "from_adamw=true,lr_multiplier=5.0"' in text


# -- --optim_args validated when the arguments are created --------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(optim_args="eps=-1"), "eps=-1.0 .* must be > 0"),
        (dict(optim_args="eps=nan"), "eps='nan'.*finite"),
        (dict(optim_args="max_grad_norm=nan"), "max_grad_norm='nan'.*finite"),
        (dict(optim_args="max_grad_norm=inf"), "max_grad_norm='inf'.*finite"),
        (dict(optim_args="beta1=nan"), "beta1='nan'"),
        (dict(optim_args="nonfinite_grads=maybe"), "nonfinite_grads='maybe'.*skip, raise, off"),
        (dict(optim_args="lr_multiplier=3"), "only applies with from_adamw=true"),
        (dict(optim_args="from_adamw=true,lr_multiplier=-2"), "lr_multiplier=-2.0 .* must be > 0"),
        (dict(optim_args="from_adamw_lr=0.1"), "written by from_adamw=true"),
        (dict(adam_epsilon=0.0), r"epsilon.*> 0.*--adam_epsilon"),
        (dict(learning_rate=float("inf")), "learning rate.*finite"),
    ],
)
def test_invalid_settings_fail_when_arguments_are_created(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _args(tmp_path, **kwargs)


def test_nonfinite_policy_reaches_the_optimizer(tmp_path):
    args = _args(tmp_path, optim_args="nonfinite_grads=raise")
    _, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    assert kwargs["nonfinite_grads"] == "raise"
    assert math.isfinite(kwargs["lr"])
