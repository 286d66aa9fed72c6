"""Adan for PyTorch and the Trainer.

* :class:`Adan`: the optimizer (``torch.optim``-style); :func:`adan` its functional form;
* ``--optim adan`` / ``TrainingArguments(optim="adan")`` once ``hf_ada`` is imported
  (:mod:`hf_ada.optim.integration`), or in scripts that never import it after ``hf-ada enable``
  (:mod:`hf_ada.optim.startup`);
* :func:`adan_from_adamw` / ``--optim_args from_adamw=true``: AdamW settings translated to Adan's.
"""

from .adan import NONFINITE_POLICIES, Adan
from .functional import adan
from .optim_args import AdanFromAdamW, adan_from_adamw

__all__ = ["Adan", "adan", "adan_from_adamw", "AdanFromAdamW", "NONFINITE_POLICIES"]
