"""``--optim adan`` settings: parse ``--optim_args``, turn ``TrainingArguments`` into Adan's keyword arguments,
and translate AdamW settings into Adan's (:func:`adan_from_adamw`, ``--optim_args from_adamw=true``).

Pure functions, no patching: :mod:`hf_ada.optim.integration` uses them to register Adan with the Trainer,
:mod:`hf_ada.optim.model_card` to record what a run used. Without the registration, the same kwargs work
through the Trainer's public hook::

    Trainer(..., optimizer_cls_and_kwargs=(Adan, adan_kwargs_from_training_args(args)))
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .startup import ADAN as ADAN_OPTIM_NAME  # the name is defined once, with the start-up hook

logger = logging.getLogger(__name__)

__all__ = ["ADAN_OPTIM_NAME", "ADAN_DEFAULT_BETAS", "OPTIM_ARGS", "parse_adan_optim_args",
           "adan_kwargs_from_training_args", "validate_adan_training_args", "AdanFromAdamW", "adan_from_adamw",
           "FROM_ADAMW_LR_MULTIPLIER", "translate_training_args_from_adamw", "from_adamw_record"]

#: Adan's default ``(beta1, beta2, beta3)`` (the reference repository's); :class:`~hf_ada.optim.Adan` takes its
#: default from here.
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


def _parse_float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _parse_from_adamw(value: str) -> bool | str:
    return "applied" if value.strip().lower() == "applied" else _parse_bool(value)


def _parse_nonfinite(value: str) -> str:
    from .adan import NONFINITE_POLICIES  # torch; only reached when the key is used

    if value not in NONFINITE_POLICIES:
        raise ValueError(f"expected one of {', '.join(NONFINITE_POLICIES)}, got {value!r}")
    return value


#: Keys accepted in ``--optim_args`` for ``--optim adan``, with their parsers.
OPTIM_ARGS: dict[str, Callable[[str], Any]] = {
    "beta1": _parse_float,
    "beta2": _parse_float,
    "beta3": _parse_float,
    "eps": _parse_float,
    "max_grad_norm": _parse_float,
    "no_prox": _parse_bool,
    "nonfinite_grads": _parse_nonfinite,
    "foreach": _parse_optional_bool,
    "fused": _parse_optional_bool,
    "fp32_state": _parse_bool,
    # AdamW -> Adan translation (see adan_from_adamw): the switch, its one knob, and the record it leaves
    "from_adamw": _parse_from_adamw,
    "lr_multiplier": _parse_float,
    "from_adamw_lr": _parse_float,
    "from_adamw_weight_decay": _parse_float,
    "from_adamw_warmup_steps": _parse_float,
    "from_adamw_beta2": _parse_float,
}

#: ``--optim_args`` keys that describe the translation rather than set an Adan constructor argument.
_TRANSLATION_KEYS = ("from_adamw", "lr_multiplier", "from_adamw_lr", "from_adamw_weight_decay",
                     "from_adamw_warmup_steps", "from_adamw_beta2")  # fmt: skip


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
    if "eps" in parsed and not parsed["eps"] > 0:
        raise ValueError(f"--optim_args eps={parsed['eps']} for --optim adan must be > 0")
    if parsed.get("foreach") and parsed.get("fused"):
        raise ValueError("--optim_args foreach=true and fused=true are mutually exclusive for --optim adan")
    if "lr_multiplier" in parsed and not parsed["lr_multiplier"] > 0:
        raise ValueError(f"--optim_args lr_multiplier={parsed['lr_multiplier']} for --optim adan must be > 0")
    record = [k for k in _TRANSLATION_KEYS[2:] if k in parsed]
    if record and parsed.get("from_adamw") != "applied":
        raise ValueError(
            f"--optim_args {', '.join(record)} for --optim adan are written by from_adamw=true (as the record of an "
            "applied translation, with from_adamw=applied); to translate AdamW settings pass --learning_rate etc. "
            "as for AdamW and from_adamw=true"
        )
    if "lr_multiplier" in parsed and not parsed.get("from_adamw"):
        raise ValueError("--optim_args lr_multiplier for --optim adan only applies with from_adamw=true")
    return parsed


def adan_kwargs_from_training_args(args: Any) -> dict[str, Any]:
    """Adan's constructor kwargs (all but params) from a ``TrainingArguments``.

    Adan's default betas apply unless ``--optim_args`` sets them: the Trainer's ``adam_beta1/2`` are
    Adam's, not Adan's. ``weight_decay`` is applied by the Trainer through its parameter groups.
    """
    knobs = parse_adan_optim_args(args.optim_args)
    for key in _TRANSLATION_KEYS:  # applied to the TrainingArguments already (translate_training_args_from_adamw)
        knobs.pop(key, None)
    betas = [knobs.pop(f"beta{i + 1}", default) for i, default in enumerate(ADAN_DEFAULT_BETAS)]
    kwargs: dict[str, Any] = {
        "lr": args.learning_rate,
        "betas": tuple(betas),
        "eps": knobs.pop("eps", args.adam_epsilon),
    }
    kwargs.update(knobs)
    return kwargs


def validate_adan_training_args(args: Any) -> None:
    """Raise ``ValueError`` now if the optimizer the Trainer would build from ``args`` is invalid (bad
    ``--optim_args``, ``eps <= 0``, a non-finite learning rate, ...), not at ``train()``."""
    from .adan import _validate_group  # torch is imported by transformers' TrainingArguments anyway

    kwargs = adan_kwargs_from_training_args(args)
    group = {"weight_decay": args.weight_decay, **kwargs}
    try:
        _validate_group(group)
    except ValueError as err:
        raise ValueError(f"--optim adan: {err} (from --learning_rate / --adam_epsilon / --weight_decay / --optim_args)") from err


# ------------------------------------------------------------------------------------------------------
# AdamW -> Adan
# ------------------------------------------------------------------------------------------------------

#: Adan lr = this x the AdamW lr (``lr_multiplier`` changes it). See :func:`adan_from_adamw` for the evidence.
FROM_ADAMW_LR_MULTIPLIER = 2.0
#: Warm-up is this many times AdamW's, and at least :data:`FROM_ADAMW_MIN_WARMUP` of the steps.
FROM_ADAMW_WARMUP_FACTOR = 2.0
FROM_ADAMW_MIN_WARMUP = 0.05


@dataclass(frozen=True)
class AdanFromAdamW:
    """Adan settings translated from AdamW settings by :func:`adan_from_adamw`.

    ``warmup_steps`` follows ``TrainingArguments.warmup_steps``: ``>= 1`` is a number of steps, ``< 1`` a
    fraction of the training steps. ``adamw`` holds the AdamW settings it came from.
    """

    lr: float
    weight_decay: float
    betas: tuple[float, float, float]
    eps: float
    warmup_steps: float
    lr_multiplier: float
    adamw: dict[str, Any] = field(default_factory=dict)

    def adan_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~hf_ada.optim.Adan` (the warm-up belongs to the lr schedule)."""
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def record(self) -> dict[str, Any]:
        """JSON-able record (model cards, logs)."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    def describe(self) -> str:
        """One line: what changed."""
        a = self.adamw
        return (
            f"lr {a['lr']:g} -> {self.lr:g} (x{self.lr_multiplier:g}), weight_decay {a['weight_decay']:g} -> "
            f"{self.weight_decay:g} (lr*wd kept), warm-up {_warmup_text(a['warmup_steps'])} -> "
            f"{_warmup_text(self.warmup_steps)}, betas ({a['betas'][0]:g}, {a['betas'][1]:g}) -> "
            f"({', '.join(f'{b:g}' for b in self.betas)})"
        )


def _warmup_text(value: float) -> str:
    if value == 0:
        return "none"
    if value >= 1:
        return f"{int(value)} step{'s' if int(value) != 1 else ''}"
    return f"{value:.0%} of the steps"


def adan_from_adamw(
    learning_rate: float,
    weight_decay: float = 0.0,
    warmup_steps: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    *,
    lr_multiplier: float | None = None,
) -> AdanFromAdamW:
    """Translate AdamW settings (as given to ``TrainingArguments`` or ``torch.optim.AdamW``) into Adan's.

    The rule (each step logged by ``--optim_args from_adamw=true``, recorded in the model card):

    * **lr** = ``lr_multiplier`` x AdamW's lr, default :data:`FROM_ADAMW_LR_MULTIPLIER` (2). The reference
      maintainers advise "a few times", 5-10x (sail-sg/Adan issues 29, 48; their GPT-2 345M recipe uses ~4x
      Megatron's AdamW lr). hf-ada's measurements at CPU scale (GPT-2 from scratch, 1.1M / 12M parameters,
      200-500 steps; ``benchmarks/results/adan_convergence_lrprobe_*.md``, ``adan_convergence_12m.md``,
      ``adan_from_adamw.md``) put Adan's best lr at 1-2x the tuned AdamW lr, 4-10x losing 0.1-0.4 in eval
      loss; with the translated weight decay, warm-up and beta3, x2 beat x1 and x4. So 2 is the default;
      large, long runs may gain from ``lr_multiplier=4``-``5``.
    * **weight decay** = AdamW's / multiplier: the per-step decay ``lr * wd`` is kept. For AdamW's common
      0.1 at 5x this gives the maintainers' 0.02.
    * **warm-up** = :data:`FROM_ADAMW_WARMUP_FACTOR` (2) x AdamW's, at least :data:`FROM_ADAMW_MIN_WARMUP`
      (5%) of the steps ("longer warm-up": Adan's first steps take ``lr * sign(g)``-sized moves, and its
      beta1 = 0.98 momentum needs ~50 steps to settle). Steps stay steps, fractions stay fractions.
    * **betas**: Adan's (0.98, 0.92, 0.99), which the reference uses for every task, except that an AdamW
      ``beta2 < 0.99`` (the 0.95 of LLM recipes) becomes Adan's ``beta3`` (the matching second moment; the
      reference GPT-2 recipe uses beta3 = 0.95). ``eps`` is kept.
    """
    multiplier = FROM_ADAMW_LR_MULTIPLIER if lr_multiplier is None else float(lr_multiplier)
    for name, value, ok in (
        ("learning_rate", learning_rate, learning_rate >= 0),
        ("weight_decay", weight_decay, weight_decay >= 0),
        ("warmup_steps", warmup_steps, warmup_steps >= 0),
        ("lr_multiplier", multiplier, multiplier > 0),
    ):
        if not (math.isfinite(value) and ok):
            raise ValueError(f"adan_from_adamw: invalid {name}={value!r}")
    beta1, beta2 = (float(b) for b in betas)
    if warmup_steps >= 1:
        warmup = float(math.ceil(FROM_ADAMW_WARMUP_FACTOR * warmup_steps))
    else:
        warmup = min(max(FROM_ADAMW_WARMUP_FACTOR * warmup_steps, FROM_ADAMW_MIN_WARMUP), 0.5)
    adan_beta3 = beta2 if beta2 < ADAN_DEFAULT_BETAS[2] else ADAN_DEFAULT_BETAS[2]
    return AdanFromAdamW(
        lr=learning_rate * multiplier,
        weight_decay=weight_decay / multiplier,
        betas=(ADAN_DEFAULT_BETAS[0], ADAN_DEFAULT_BETAS[1], adan_beta3),
        eps=float(eps),
        warmup_steps=warmup,
        lr_multiplier=multiplier,
        adamw={"lr": float(learning_rate), "weight_decay": float(weight_decay), "warmup_steps": float(warmup_steps),
               "betas": [beta1, beta2], "eps": float(eps)},  # fmt: skip
    )


def translate_training_args_from_adamw(args: Any) -> tuple[dict[str, Any], AdanFromAdamW] | None:
    """For ``TrainingArguments`` with ``--optim_args ...from_adamw=true``: the new field values
    (``learning_rate``, ``weight_decay``, ``warmup_steps``, ``optim_args``) and the translation; else None.

    The new ``optim_args`` replace ``from_adamw=true`` by ``from_adamw=applied`` plus the AdamW values it came
    from (``from_adamw_lr=...``) and the translated betas, so creating ``TrainingArguments`` again from
    ``args.to_dict()`` does not translate twice, and the card can show both sides.
    """
    knobs = parse_adan_optim_args(args.optim_args)
    if knobs.get("from_adamw") is not True:
        return None
    translation = adan_from_adamw(
        args.learning_rate, args.weight_decay, args.warmup_steps, (args.adam_beta1, args.adam_beta2),
        args.adam_epsilon, lr_multiplier=knobs.get("lr_multiplier"),
    )  # fmt: skip
    kept = [item for item in args.optim_args.replace(" ", "").split(",")
            if item and item.split("=", 1)[0] not in ("from_adamw", "lr_multiplier")]  # fmt: skip
    explicit = {item.split("=", 1)[0] for item in kept}
    betas = [f"beta{i + 1}={b:g}" for i, b in enumerate(translation.betas) if f"beta{i + 1}" not in explicit]
    a = translation.adamw
    record = [
        "from_adamw=applied", f"lr_multiplier={translation.lr_multiplier:g}", f"from_adamw_lr={a['lr']:g}",
        f"from_adamw_weight_decay={a['weight_decay']:g}", f"from_adamw_warmup_steps={a['warmup_steps']:g}",
        f"from_adamw_beta2={a['betas'][1]:g}",
    ]  # fmt: skip
    updates = {
        "learning_rate": translation.lr,
        "weight_decay": translation.weight_decay,
        "warmup_steps": translation.warmup_steps,
        "optim_args": ",".join([*kept, *betas, *record]),
    }
    return updates, translation


def from_adamw_record(optim_args: str | None) -> dict[str, Any] | None:
    """The AdamW -> Adan translation recorded in ``optim_args`` by an applied ``from_adamw=true``, or None."""
    knobs = parse_adan_optim_args(optim_args)
    if knobs.get("from_adamw") != "applied":
        return None
    return {
        "adamw_lr": knobs.get("from_adamw_lr"),
        "adamw_weight_decay": knobs.get("from_adamw_weight_decay"),
        "adamw_warmup_steps": knobs.get("from_adamw_warmup_steps"),
        "adamw_beta2": knobs.get("from_adamw_beta2"),
        "lr_multiplier": knobs.get("lr_multiplier"),
    }
