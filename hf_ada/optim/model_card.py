"""Model cards of models trained with ``--optim adan``.

When a :class:`transformers.Trainer` writes its model card (``trainer.create_model_card()``, which
``trainer.push_to_hub()`` and ``--push_to_hub`` call), the card of a run with ``optim="adan"`` is re-rendered
from the ``adan_model`` template (:func:`hf_ada.common.cards.render_model_card`): transformers' own card (title,
results, hyperparameters, framework versions) followed by an *Optimizer: Adan* section with the optimizer's
hyperparameters, the run's steps and its final metrics. Every value comes from the run itself: the
``TrainingArguments``, the optimizer the Trainer built and the ``TrainerState``; nothing is typed by hand.
The same values are stored, machine-readable, in the card's YAML metadata under ``hf_ada``.

transformers' own part of the card is corrected where it is wrong for an Adan run: its hyperparameter line
``optimizer: Use OptimizerNames.ADAN and the args are: No additional optimizer arguments`` becomes the
optimizer actually built, and ``fine-tuned version of [](https://huggingface.co/)`` (a model built from a
config has an empty ``_name_or_path``) says that no base model was recorded. A run whose settings were
translated from AdamW (``--optim_args from_adamw=true``) gets both sides of the translation.

Rendering only: :func:`hf_ada.optim.integration.register` installs the ``Trainer.create_model_card`` hook
that calls :func:`render_adan_model_card`.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..common.cards import render_model_card
from .adan import Adan
from .optim_args import ADAN_OPTIM_NAME, adan_kwargs_from_training_args, from_adamw_record

logger = logging.getLogger(__name__)

__all__ = [
    "ADAN_CARD_TEMPLATE",
    "ADAN_CARD_TAGS",
    "adan_optimizer_record",
    "adan_run_record",
    "final_metrics",
    "fix_trainer_card_text",
    "is_generated_card",
    "render_adan_model_card",
]

ADAN_CARD_TEMPLATE = "adan_model"
ADAN_CARD_TAGS = ("adan", "hf-ada")

#: Logged values that describe throughput or bookkeeping rather than the model's quality.
_NOT_METRICS = ("epoch", "step", "total_flos", "learning_rate", "grad_norm")
_NOT_METRIC_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second", "_flos")



def _adan_defaults() -> dict[str, Any]:
    signature = inspect.signature(Adan.__init__)
    return {
        name: param.default
        for name, param in signature.parameters.items()
        if param.default is not inspect.Parameter.empty
    }


def adan_optimizer_record(args: Any, optimizer: Any = None) -> dict[str, Any]:
    """Adan's hyperparameters for a run with ``TrainingArguments`` ``args``.

    Taken from ``optimizer`` (the :class:`~hf_ada.Adan` the Trainer built, possibly wrapped by accelerate)
    when given, else from ``args`` as the Trainer would build it. ``lr`` is the peak (``--learning_rate``):
    the optimizer's current one is the scheduled value.
    """
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the real one
    skipped = None
    if isinstance(inner, Adan):
        defaults = dict(inner.defaults)
        max_grad_norm = inner.max_grad_norm
        weight_decay = max((group.get("weight_decay", 0.0) for group in inner.param_groups), default=0.0)
        skipped = int(inner.skipped_steps)
    else:
        defaults = {**_adan_defaults(), **adan_kwargs_from_training_args(args)}
        max_grad_norm = defaults.get("max_grad_norm", 0.0)
        weight_decay = args.weight_decay
    return {
        "name": ADAN_OPTIM_NAME,
        "class": f"{Adan.__module__.split('.')[0]}.{Adan.__name__}",
        "lr": float(args.learning_rate),
        "betas": [float(beta) for beta in defaults["betas"]],
        "eps": float(defaults["eps"]),
        "weight_decay": float(weight_decay),
        "no_prox": bool(defaults["no_prox"]),
        "max_grad_norm": float(max_grad_norm),
        "fp32_state": bool(defaults.get("fp32_state", False)),
        "nonfinite_grads": str(defaults.get("nonfinite_grads", "skip")),
        "skipped_steps": skipped,
        "optim_args": args.optim_args or None,
        "from_adamw": from_adamw_record(args.optim_args),
    }


def adan_run_record(args: Any, state: Any) -> dict[str, Any]:
    """Steps, epochs, batch sizes and schedule of the run (``TrainingArguments`` + ``TrainerState``)."""
    warmup = args.warmup_steps
    warmup_text = f"{int(warmup)} steps" if warmup >= 1 or warmup == 0 else f"{warmup:g} of the steps"
    return {
        "global_step": int(state.global_step),
        "max_steps": int(state.max_steps) if getattr(state, "max_steps", 0) else None,
        "epoch": round(float(state.epoch or 0.0), 4),
        "per_device_train_batch_size": int(args.per_device_train_batch_size),
        "gradient_accumulation_steps": int(args.gradient_accumulation_steps),
        "seed": int(args.seed),
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "warmup": warmup_text,
        "warmup_steps": f"{float(warmup):g}",
        "trainer_max_grad_norm": float(args.max_grad_norm),
    }


def _is_metric(name: str, value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and name not in _NOT_METRICS
        and not name.endswith(_NOT_METRIC_SUFFIXES)
    )


def final_metrics(log_history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The last logged value of every metric (losses, ``eval_*``, ``train_loss``) with its step, in first-seen
    order. Throughput and bookkeeping entries (runtime, samples/s, learning rate, grad norm) are left out."""
    latest: dict[str, dict[str, Any]] = {}
    for entry in log_history:
        for name, value in entry.items():
            if _is_metric(name, value):
                latest[name] = {"name": name, "value": float(value), "step": entry.get("step")}
    return list(latest.values())


def _reproduce_optim_args(optimizer: Mapping[str, Any]) -> str:
    beta1, beta2, beta3 = optimizer["betas"]
    items = [f"beta1={beta1}", f"beta2={beta2}", f"beta3={beta3}", f"eps={optimizer['eps']}",
             f"no_prox={str(optimizer['no_prox']).lower()}", f"max_grad_norm={optimizer['max_grad_norm']}"]
    if optimizer["fp32_state"]:
        items.append("fp32_state=true")
    if optimizer.get("nonfinite_grads", "skip") != "skip":
        items.append(f"nonfinite_grads={optimizer['nonfinite_grads']}")
    return ",".join(items)


_TRAINER_OPTIMIZER_LINE = re.compile(
    r"^- optimizer: Use (?:OptimizerNames\.ADAN|adan) and the args are:\n.*$", flags=re.MULTILINE
)
_EMPTY_BASE_MODEL = "This model is a fine-tuned version of [](https://huggingface.co/) on "
_HF_ADA_SECTION = "\n## Optimizer: Adan\n"


def _optimizer_line(optimizer: Mapping[str, Any]) -> str:
    betas = ",".join(f"{b:g}" for b in optimizer["betas"])
    return (
        f"- optimizer: Adan ({optimizer['class']}, `--optim adan`) with betas=({betas}), eps={optimizer['eps']:g}, "
        f"weight_decay={optimizer['weight_decay']:g} ({'no_prox' if optimizer['no_prox'] else 'proximal'}), "
        f"max_grad_norm={optimizer['max_grad_norm']:g}; see the Adan section below"
    )


def fix_trainer_card_text(text: str, optimizer: Mapping[str, Any]) -> str:
    """Correct transformers' card text of an Adan run (see the module docstring); drop an Adan section left by
    an earlier rendering so that re-rendering never duplicates it."""
    if _HF_ADA_SECTION in text:
        text = text[: text.index(_HF_ADA_SECTION)]
    text = _TRAINER_OPTIMIZER_LINE.sub(lambda _: _optimizer_line(optimizer), text)
    return text.replace(
        _EMPTY_BASE_MODEL, "This model was trained from a model built from its config (no base model was recorded) on "
    )


def is_generated_card(text: str) -> bool:
    """Whether a README was written by a Trainer (transformers' or sentence-transformers') or by hf-ada, i.e.
    may be replaced by a newer card of the same run."""
    try:
        data = ModelCard(text, ignore_metadata_errors=True).data.to_dict()
    except Exception:  # not a card at all
        return False
    tags = data.get("tags") or []
    tags = [tags] if isinstance(tags, str) else tags
    return "generated_from_trainer" in tags or "hf-ada" in tags or "hf_ada" in data


def render_adan_model_card(trainer_card: str | ModelCard, args: Any, state: Any, optimizer: Any = None) -> ModelCard:
    """Render the ``adan_model`` template around transformers' own card ``trainer_card``.

    The metadata of ``trainer_card`` is kept; ``adan`` / ``hf-ada`` are added to its tags and the optimizer,
    run and final-metric records to ``hf_ada``.
    """
    card = trainer_card if isinstance(trainer_card, ModelCard) else ModelCard(trainer_card, ignore_metadata_errors=True)
    optimizer_record = adan_optimizer_record(args, optimizer)
    run_record = adan_run_record(args, state)
    metrics = final_metrics(getattr(state, "log_history", []) or [])

    card_data = ModelCardData(**card.data.to_dict()) if card.data is not None else ModelCardData()
    tags = list(card_data.tags or [])
    card_data.tags = tags + [tag for tag in ADAN_CARD_TAGS if tag not in tags]
    card_data.hf_ada = {  # type: ignore[attr-defined]  (free-form metadata key)
        "optimizer": optimizer_record,
        "run": run_record,
        "final_metrics": {m["name"]: m["value"] for m in metrics},
    }
    weight_decay_form = (
        "multiplicative form, theta *= 1 - lr*wd before the update"
        if optimizer_record["no_prox"]
        else "proximal form, theta /= 1 + lr*wd after the update"
    )
    return render_model_card(
        ADAN_CARD_TEMPLATE,
        card_data,
        trainer_card=fix_trainer_card_text(card.text, optimizer_record).strip(),
        optimizer=optimizer_record,
        run=run_record,
        metrics=[{**m, "value": f"{m['value']:.6g}"} for m in metrics],
        weight_decay_form=weight_decay_form,
        reproduce_optim_args=_reproduce_optim_args(optimizer_record),
    )
