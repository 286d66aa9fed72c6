"""``--optim adan`` settings: parse ``--optim_args`` and turn ``TrainingArguments`` into Adan's keyword arguments.

Pure functions, no patching: :mod:`hf_ada.optim.integration` uses them to register Adan with the Trainer,
:mod:`hf_ada.optim.model_card` to record what a run used. Without the registration, the same kwargs work
through the Trainer's public hook::

    Trainer(..., optimizer_cls_and_kwargs=(Adan, adan_kwargs_from_training_args(args)))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ADAN_OPTIM_NAME", "ADAN_DEFAULT_BETAS", "OPTIM_ARGS", "parse_adan_optim_args",
           "adan_kwargs_from_training_args"]

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
