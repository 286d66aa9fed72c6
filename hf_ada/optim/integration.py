"""Every patch hf-ada applies to transformers for Adan; :func:`register` applies them (idempotent).

``optim="adan"`` joins ``OptimizerNames`` (pickled as the plain string ``"adan"``) and the Trainer's optimizer
table (:class:`~hf_ada.optim.Adan` from ``--learning_rate``, ``--weight_decay``, ``--adam_epsilon`` and
``--optim_args``); ``TrainingArguments.__post_init__`` checks those settings and applies ``--optim_args
from_adamw=true``; the Trainer's (and sentence-transformers') model card gets an *Optimizer: Adan* section,
written to ``output_dir/README.md`` when training ends.

Without any patch: ``Trainer(..., optimizer_cls_and_kwargs=(Adan, adan_kwargs_from_training_args(args)))``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ..common.files import atomic_file
from ..common.patches import Patch, apply_patches, wrap_method
from ._notice import notice
from .adan import Adan
from .model_card import is_generated_card, render_adan_model_card
from .startup import add_adan_member
from .optim_args import (
    ADAN_OPTIM_NAME,
    adan_kwargs_from_training_args,
    translate_training_args_from_adamw,
    validate_adan_training_args,
)

logger = logging.getLogger(__name__)

__all__ = ["register", "is_registered"]


def _is_adan(optim: Any) -> bool:
    return str(getattr(optim, "value", optim)) == ADAN_OPTIM_NAME


def _handler(ctx: Any) -> tuple[type, dict[str, Any]]:
    return Adan, adan_kwargs_from_training_args(ctx.args)


def _validate_on_post_init(post_init: Callable[..., None]) -> Callable[..., None]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        post_init(self, *args, **kwargs)
        if str(getattr(self, "optim", "")) in (ADAN_OPTIM_NAME, "OptimizerNames.ADAN"):
            translated = translate_training_args_from_adamw(self)
            if translated is not None:
                updates, translation = translated
                for name, value in updates.items():
                    setattr(self, name, value)
                notice(
                    logger,
                    "--optim_args from_adamw=true translated the AdamW settings to Adan's: %s "
                    "(optim_args now %r)", translation.describe(), self.optim_args,
                )  # fmt: skip
            validate_adan_training_args(self)

    return wrapper


def is_registered() -> bool:
    """Whether ``optim="adan"`` is known to transformers in this process."""
    from transformers import trainer_optimizer
    from transformers.training_args import OptimizerNames

    return ADAN_OPTIM_NAME in OptimizerNames._value2member_map_ and ADAN_OPTIM_NAME in trainer_optimizer._OPTIMIZER_HANDLERS


def _rewrite_card(trainer: Any) -> None:
    """Re-render ``output_dir/README.md`` (just written by the trainer) with the Adan section."""
    path = Path(trainer.args.output_dir) / "README.md"
    if not path.is_file():
        return
    card = render_adan_model_card(path.read_text(encoding="utf-8"), trainer.args, trainer.state, trainer.optimizer)
    with atomic_file(path) as handle:
        handle.write(str(card))
    logger.info("Model card %s records the Adan optimizer and its hyperparameters", path)


def _wrap_create_model_card(create_model_card: Callable[..., None]) -> Callable[..., None]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        create_model_card(self, *args, **kwargs)
        if _is_adan(self.args.optim) and self.is_world_process_zero():
            _rewrite_card(self)

    return wrapper


def _wrap_save(save: Callable[..., None]) -> Callable[..., None]:
    """sentence-transformers' ``_save`` writes the model (and its own card) into ``output_dir`` or a
    checkpoint folder: give that card the Adan section too."""

    def wrapper(self: Any, output_dir: str | None = None, *args: Any, **kwargs: Any) -> None:
        save(self, output_dir, *args, **kwargs)
        if not _is_adan(self.args.optim) or not self.is_world_process_zero():
            return
        folder = Path(output_dir if output_dir is not None else self.args.output_dir)
        path = folder / "README.md"
        if path.is_file():
            card = render_adan_model_card(path.read_text(encoding="utf-8"), self.args, self.state, self.optimizer)
            with atomic_file(path) as handle:
                handle.write(str(card))

    return wrapper


def _wrap_train(train: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        output = train(self, *args, **kwargs)
        if _is_adan(self.args.optim) and self.is_world_process_zero():
            write_card_at_train_end(self)
        return output

    return wrapper


def write_card_at_train_end(trainer: Any) -> Path | None:
    """Write the Adan run's model card to ``output_dir/README.md``, unless a README there was written by
    someone else than a Trainer / hf-ada (never overwritten; logged). Returns the card's path or None."""
    path = Path(trainer.args.output_dir) / "README.md"
    if path.is_file() and not is_generated_card(path.read_text(encoding="utf-8", errors="replace")):
        logger.warning("hf-ada: %s was not generated by a Trainer; the Adan model card was not written over it", path)
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        trainer.create_model_card()
    except Exception as err:  # the card is a convenience: never fail a finished training run for it
        logger.warning("hf-ada: could not write the model card to %s at the end of training: %s", path, err)
        return None
    return path if path.is_file() else None


def _add_optimizer_name(training_args: ModuleType) -> None:
    add_adan_member(training_args.OptimizerNames)


def _add_optimizer_handler(trainer_optimizer: ModuleType) -> None:
    from transformers.training_args import OptimizerNames

    add_adan_member(OptimizerNames)
    trainer_optimizer._OPTIMIZER_HANDLERS[OptimizerNames.ADAN] = _handler
    trainer_optimizer._OPTIMIZER_HANDLERS[ADAN_OPTIM_NAME] = _handler  # an unpickled plain "adan" (startup.add_adan_member)


def _sentence_transformers_trainer(module: ModuleType) -> type | None:
    trainer_cls = getattr(module, "BaseTrainer", None)
    if trainer_cls is None:  # an older / newer layout: keep working without the card section
        logger.debug("sentence_transformers.base.trainer has no BaseTrainer; Adan card hook not installed")
    return trainer_cls


def _wrap_in(owner: Callable[[ModuleType], type | None], name: str, make_wrapper: Callable[..., Any]) -> Callable[[ModuleType], None]:
    def apply(module: ModuleType) -> None:
        cls = owner(module)
        if cls is not None:
            wrap_method(cls, name, make_wrapper)

    return apply


#: Every change this method makes to other libraries (ARCHITECTURE.md lists the same rows; a test checks it).
PATCHES = (
    Patch("transformers.training_args", "OptimizerNames.ADAN", "`optim=\"adan\"` is a valid optimizer name",
          _add_optimizer_name),
    Patch("transformers.trainer_optimizer", "_OPTIMIZER_HANDLERS", "builds `Adan` from the Trainer's arguments",
          _add_optimizer_handler),
    Patch("transformers.training_args", "TrainingArguments.__post_init__",
          "checks `--optim_args` and applies `from_adamw=true` when the arguments are created",
          _wrap_in(lambda m: m.TrainingArguments, "__post_init__", _validate_on_post_init)),
    Patch("transformers.trainer", "Trainer.create_model_card", "adds the *Optimizer: Adan* section to the card",
          _wrap_in(lambda m: m.Trainer, "create_model_card", _wrap_create_model_card)),
    Patch("transformers.trainer", "Trainer.train", "writes that card to `output_dir/README.md` when training ends",
          _wrap_in(lambda m: m.Trainer, "train", _wrap_train)),
    Patch("sentence_transformers.base.trainer", "BaseTrainer.create_model_card",
          "the Adan section in sentence-transformers' own card",
          _wrap_in(_sentence_transformers_trainer, "create_model_card", _wrap_create_model_card)),
    Patch("sentence_transformers.base.trainer", "BaseTrainer._save",
          "the Adan section in the card sentence-transformers writes with each save",
          _wrap_in(_sentence_transformers_trainer, "_save", _wrap_save)),
)


def register() -> None:
    """Make ``optim="adan"`` / ``--optim adan`` work in every Trainer of this process (idempotent).

    The name, its handler and the arguments check are applied now (``import hf_ada`` imports
    ``transformers.trainer_optimizer`` for it); the card hooks when the user's script imports the trainers.
    """
    import transformers.trainer_optimizer  # noqa: F401  (what makes --optim adan parse in any script)

    apply_patches(PATCHES)
