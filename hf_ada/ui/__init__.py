"""hf-ada's web interface: a Gradio app over a saved AdANNS index, an AdaNPC predictor and a Trainer run.

Run it with ``python -m hf_ada.ui`` (or ``hf-ada ui``; ``--help`` lists the options). Without arguments it
opens the artifacts ``hf-ada demo`` wrote into ``./hf-ada-demo``. Three tabs:

* **Search**: a saved AdANNS index and its dataset; a query box, ``k``, a slider over the index's tuned
  plans (fastest ... most accurate), the ranked rows with chosen columns, the plan used and its latency;
* **Adapt**: a saved AdaNPC predictor and a stream file, run batch by batch; the plain model's and AdaNPC's
  running accuracy as a live chart (labelled streams), the guard's inserted / rejected counts and the
  latest predictions;
* **Train** (read-only): the loss and learning-rate curves of a Trainer output folder
  (``trainer_state.json``) and the optimizer section of its model card.

:mod:`hf_ada.ui.space` creates a Hugging Face Space that runs the same app over a pushed artifact.

Nothing here is imported by ``import hf_ada``; Gradio is imported only when the app is built (install
it with ``pip install 'hf-ada[ui]'``). The app only reads the folders it is given: it never writes
into them (an adapted predictor lives in memory for one run).
"""

from __future__ import annotations

from typing import Any

__all__ = ["main", "build_app", "create_space"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from .__main__ import main

        return main
    if name == "build_app":
        from .app import build_app

        return build_app
    if name == "create_space":
        from .space import create_space

        return create_space
    raise AttributeError(f"module 'hf_ada.ui' has no attribute {name!r}")
