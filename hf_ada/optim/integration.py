"""Every patch hf-ada applies to transformers for Adan, in one place; :func:`register` applies them (idempotent).

1. ``ADAN = "adan"`` is added to :class:`transformers.training_args.OptimizerNames`, so that
   ``TrainingArguments(optim="adan")`` validates and ``--optim adan`` is among the choices that any
   :class:`~transformers.HfArgumentParser` script lists in ``--help``;
2. a handler for it joins the Trainer's optimizer table (``transformers.trainer_optimizer``), building
   :class:`~hf_ada.optim.Adan` from ``--learning_rate``, ``--weight_decay`` (with the Trainer's own no-decay
   groups), ``--adam_epsilon`` and ``--optim_args`` (:data:`~hf_ada.optim.optim_args.OPTIM_ARGS`);
3. ``TrainingArguments.__post_init__`` checks ``--optim_args``, so a typo fails when the arguments are
   created rather than after the model and data are loaded;
4. ``Trainer.create_model_card`` re-renders the card of an ``optim="adan"`` run with an *Optimizer: Adan*
   section (:mod:`hf_ada.optim.model_card`); other runs keep transformers' card untouched.

``Trainer``, ``Seq2SeqTrainer`` and sentence-transformers' ``SentenceTransformerTrainer`` all go through
the optimizer table, so all three accept ``optim="adan"``.

Without any patch: ``Trainer(..., optimizer_cls_and_kwargs=(Adan, adan_kwargs_from_training_args(args)))``
uses Adan through the Trainer's public API (no ``--optim adan`` flag, no card section).
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..common.files import atomic_file
from ..common.lazy import call_when_imported
from .adan import Adan
from .model_card import render_adan_model_card
from .optim_args import ADAN_OPTIM_NAME, adan_kwargs_from_training_args, parse_adan_optim_args

logger = logging.getLogger(__name__)

__all__ = ["register", "register_adan", "is_registered"]


def _is_adan(optim: Any) -> bool:
    return str(getattr(optim, "value", optim)) == ADAN_OPTIM_NAME


def _handler(ctx: Any) -> tuple[type, dict[str, Any]]:
    return Adan, adan_kwargs_from_training_args(ctx.args)


def _add_enum_member(enum_cls: type[enum.Enum], name: str, value: str) -> None:
    """Add ``name = value`` to a str-Enum after its creation (Python has no public API for this)."""
    if value in enum_cls._value2member_map_:
        return
    member = str.__new__(enum_cls, value)
    member._name_ = name
    member._value_ = value
    member.__objclass__ = enum_cls  # type: ignore[attr-defined]
    if hasattr(member, "_sort_order_"):
        member._sort_order_ = len(enum_cls._member_names_)
    enum_cls._member_map_[name] = member
    enum_cls._value2member_map_[value] = member
    enum_cls._member_names_.append(name)
    type.__setattr__(enum_cls, name, member)


def _validate_on_post_init(post_init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(post_init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        post_init(self, *args, **kwargs)
        if str(getattr(self, "optim", "")) in (ADAN_OPTIM_NAME, "OptimizerNames.ADAN"):
            parse_adan_optim_args(self.optim_args)

    wrapper.__hf_ada_wrapped__ = True  # type: ignore[attr-defined]
    return wrapper


def is_registered() -> bool:
    """Whether ``optim="adan"`` is known to transformers in this process."""
    from transformers import trainer_optimizer
    from transformers.training_args import OptimizerNames

    return ADAN_OPTIM_NAME in OptimizerNames._value2member_map_ and ADAN_OPTIM_NAME in trainer_optimizer._OPTIMIZER_HANDLERS


def _wrap_create_model_card(create_model_card: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(create_model_card)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        create_model_card(self, *args, **kwargs)
        if not _is_adan(self.args.optim) or not self.is_world_process_zero():
            return
        path = Path(self.args.output_dir) / "README.md"
        if not path.is_file():
            return
        card = render_adan_model_card(path.read_text(encoding="utf-8"), self.args, self.state, self.optimizer)
        with atomic_file(path) as handle:
            handle.write(str(card))
        logger.info("Model card %s records the Adan optimizer and its hyperparameters", path)

    wrapper.__hf_ada_wrapped__ = True  # type: ignore[attr-defined]
    return wrapper


def _install_model_card_hook(trainer_module: Any) -> None:
    """Make ``Trainer.create_model_card`` record Adan in the cards of ``optim="adan"`` runs (idempotent)."""
    trainer_cls = trainer_module.Trainer
    if not getattr(trainer_cls.create_model_card, "__hf_ada_wrapped__", False):
        trainer_cls.create_model_card = _wrap_create_model_card(trainer_cls.create_model_card)


def register() -> None:
    """Make ``optim="adan"`` / ``--optim adan`` work in every Trainer of this process (idempotent)."""
    from transformers import trainer_optimizer
    from transformers.training_args import OptimizerNames, TrainingArguments

    _add_enum_member(OptimizerNames, "ADAN", ADAN_OPTIM_NAME)
    trainer_optimizer._OPTIMIZER_HANDLERS[OptimizerNames.ADAN] = _handler
    if not getattr(TrainingArguments.__post_init__, "__hf_ada_wrapped__", False):
        TrainingArguments.__post_init__ = _validate_on_post_init(TrainingArguments.__post_init__)
    # transformers.trainer takes ~1.5 s to import: hook the card when the user's script imports it
    call_when_imported("transformers.trainer", _install_model_card_hook)


#: The name ``import hf_ada`` has always exported.
register_adan = register
