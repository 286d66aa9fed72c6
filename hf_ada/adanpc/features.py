"""Features for AdaNPC: the representation that enters a classification model's head.

A forward hook on the head captures its input during the model's ordinary forward pass, so one forward
yields both the model's own logits and the feature, for any ``AutoModelFor{Sequence,Image,Audio}Classification``
(BERT's ``classifier``, RoBERTa's ``classifier.out_proj``, ViT's ``classifier``, wav2vec2's ``classifier``...).
By default the hooked module is the last ``nn.Linear`` whose ``out_features`` equals ``config.num_labels``.
``feature_layer="<module name>"`` hooks another module's input, ``"<module name>:output"`` its output.
A 3-D capture ``(batch, seq, hidden)`` is reduced to its first position (the CLS token).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["FeatureHook", "find_classification_head"]


def find_classification_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """Return ``(name, module)`` of the last ``nn.Linear`` with ``config.num_labels`` outputs."""
    num_labels = getattr(getattr(model, "config", None), "num_labels", None)
    found: tuple[str, nn.Linear] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_labels:
            found = (name, module)
    if found is None:
        raise ValueError(
            f"could not find the classification head of {type(model).__name__}: no nn.Linear with "
            f"num_labels={num_labels} outputs; pass feature_layer='<module name>' (see model.named_modules())"
        )
    return found


class FeatureHook:
    """Capture features from ``model`` on every forward pass.

    Args:
        model: a transformers classification model.
        feature_layer: ``None`` (the head's input), ``"name"`` (that module's input) or ``"name:output"``.
    """

    def __init__(self, model: nn.Module, feature_layer: str | None = None):
        self.model = model
        self.feature_layer = feature_layer
        if feature_layer is None:
            self.module_name, self.module = find_classification_head(model)
            self.use_output = False
        else:
            name, _, which = feature_layer.partition(":")
            if which not in ("", "input", "output"):
                raise ValueError(f"feature_layer suffix must be ':input' or ':output', got {feature_layer!r}")
            modules = dict(model.named_modules())
            if name not in modules:
                sample = [n for n in modules if n][-8:]
                raise ValueError(
                    f"feature_layer {name!r} is not a module of {type(model).__name__}; "
                    f"examples of valid names: {sample}"
                )
            self.module_name, self.module = name, modules[name]
            self.use_output = which == "output"
        self._captured: torch.Tensor | None = None
        self._handle = self.module.register_forward_hook(self._hook)

    @property
    def static_dim(self) -> int | None:
        """Feature dim if known without running the model (the input of a Linear), else ``None``."""
        if not self.use_output and isinstance(self.module, nn.Linear):
            return int(self.module.in_features)
        if self.use_output and isinstance(self.module, nn.Linear):
            return int(self.module.out_features)
        return None

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        value = output if self.use_output else inputs[0]
        if isinstance(value, (tuple, list)):
            value = value[0]
        if hasattr(value, "last_hidden_state"):
            value = value.last_hidden_state
        self._captured = value.detach()

    def remove(self) -> None:
        """Detach the hook from the model."""
        self._handle.remove()

    @torch.no_grad()
    def run(self, model_inputs: dict[str, Any]) -> tuple[np.ndarray, torch.Tensor]:
        """Run the model on prepared inputs; return ``(features float32 (batch, dim), logits)``."""
        self._captured = None
        outputs = self.model(**model_inputs)
        return self.pop(), outputs["logits"]

    def pop(self) -> np.ndarray:
        """Return (and clear) what the last forward pass captured, as ``(batch, dim)`` float32."""
        value = self._captured
        self._captured = None
        if value is None:
            raise RuntimeError(f"the feature hook on {self.module_name!r} did not fire during the forward pass")
        if value.dim() == 3:
            value = value[:, 0]
        elif value.dim() != 2:
            value = value.flatten(1)
        return value.float().cpu().numpy()
