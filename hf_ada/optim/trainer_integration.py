"""Register Adan as a :class:`transformers.Trainer` optimizer: ``TrainingArguments(optim="adan")``.

:func:`register_adan` (run by ``import hf_ada``) does three things, all idempotent:

1. adds ``ADAN = "adan"`` to :class:`transformers.training_args.OptimizerNames`, so that
   ``TrainingArguments(optim="adan")`` validates and ``--optim adan`` is among the choices that any
   :class:`~transformers.HfArgumentParser` script lists in ``--help``;
2. adds a handler for it to the Trainer's optimizer table, which builds :class:`hf_ada.Adan` from
   ``--learning_rate``, ``--weight_decay`` (with the Trainer's own no-decay groups), ``--adam_epsilon`` and
   ``--optim_args`` (Adan's own knobs, see :data:`OPTIM_ARGS`);
3. checks ``--optim_args`` when the arguments are created, so a typo fails at argument time rather than
   after the model and data are loaded.

``Trainer``, ``Seq2SeqTrainer`` and sentence-transformers' ``SentenceTransformerTrainer`` all go through
this table, so all three accept ``optim="adan"``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any

from .adan import Adan

__all__ = ["ADAN_OPTIM_NAME", "OPTIM_ARGS", "parse_adan_optim_args", "register_adan", "is_registered"]

ADAN_OPTIM_NAME = "adan"
ADAN_DEFAULT_BETAS = (0.98, 0.92, 0.99)


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _parse_optional_bool(value: str) -> bool | None:
    return None if value.strip().lower() in ("none", "auto") else _parse_bool(value)


#: Keys accepted in ``--optim_args`` for ``--optim adan``, with their parsers.
OPTIM_ARGS: dict[str, Callable[[str], Any]] = {
    "beta1": float,
    "beta2": float,
    "beta3": float,
    "eps": float,
    "max_grad_norm": float,
    "no_prox": _parse_bool,
    "foreach": _parse_optional_bool,
    "fused": _parse_optional_bool,
    "fp32_state": _parse_bool,
}


def parse_adan_optim_args(optim_args: str | None) -> dict[str, Any]:
    """Parse ``"beta1=0.98,no_prox=true"`` into typed keyword values; raise ``ValueError`` on any bad entry.

    The error lists the allowed keys. ``eps`` overrides ``--adam_epsilon``.
    """
    parsed: dict[str, Any] = {}
    if not optim_args:
        return parsed
    allowed = ", ".join(sorted(OPTIM_ARGS))
    for item in optim_args.replace(" ", "").split(","):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"--optim_args entry {item!r} for --optim adan is not key=value; allowed keys: {allowed}")
        key, value = item.split("=", 1)
        if key not in OPTIM_ARGS:
            raise ValueError(f"--optim_args key {key!r} is not an Adan option; allowed keys: {allowed}")
        try:
            parsed[key] = OPTIM_ARGS[key](value)
        except ValueError as err:
            raise ValueError(f"--optim_args {key}={value!r} for --optim adan is invalid: {err}") from err
    betas = [parsed.get(f"beta{i}") for i in (1, 2, 3)]
    for i, beta in enumerate(betas, start=1):
        if beta is not None and not 0.0 <= beta < 1.0:
            raise ValueError(f"--optim_args beta{i}={beta} for --optim adan must be in [0, 1)")
    if parsed.get("max_grad_norm", 0.0) < 0:
        raise ValueError("--optim_args max_grad_norm for --optim adan must be >= 0 (0 disables clipping)")
    if parsed.get("foreach") and parsed.get("fused"):
        raise ValueError("--optim_args foreach=true and fused=true are mutually exclusive for --optim adan")
    return parsed


def adan_kwargs_from_training_args(args: Any) -> dict[str, Any]:
    """Adan's constructor kwargs (all but params) from a ``TrainingArguments``.

    Adan's default betas apply unless ``--optim_args`` sets them: the Trainer's ``adam_beta1/2`` are
    Adam's, not Adan's. ``weight_decay`` is applied by the Trainer through its parameter groups.
    """
    knobs = parse_adan_optim_args(args.optim_args)
    betas = [knobs.pop(f"beta{i + 1}", default) for i, default in enumerate(ADAN_DEFAULT_BETAS)]
    kwargs: dict[str, Any] = {
        "lr": args.learning_rate,
        "betas": tuple(betas),
        "eps": knobs.pop("eps", args.adam_epsilon),
    }
    kwargs.update(knobs)
    return kwargs


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


def register_adan() -> None:
    """Make ``optim="adan"`` / ``--optim adan`` work in every Trainer of this process (idempotent)."""
    from transformers import trainer_optimizer
    from transformers.training_args import OptimizerNames, TrainingArguments

    _add_enum_member(OptimizerNames, "ADAN", ADAN_OPTIM_NAME)
    trainer_optimizer._OPTIMIZER_HANDLERS[OptimizerNames.ADAN] = _handler
    if not getattr(TrainingArguments.__post_init__, "__hf_ada_wrapped__", False):
        TrainingArguments.__post_init__ = _validate_on_post_init(TrainingArguments.__post_init__)

    from .model_card import install_model_card_hook  # the card of an adan run records the optimizer

    install_model_card_hook()
