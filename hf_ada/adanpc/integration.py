"""The one patch hf-ada applies to transformers for AdaNPC: :func:`register` (run by ``import hf_ada``).

It registers the ``adanpc-text-classification``, ``adanpc-image-classification`` and
``adanpc-audio-classification`` tasks with :func:`transformers.pipeline`, lazily: importing
``transformers.pipelines`` takes seconds, so the tasks are registered right after the first import of it
(which every ``from transformers import pipeline`` does) rather than by ``import hf_ada`` itself.
Without the registration, build the pipeline classes directly or wrap an existing pipeline::

    from hf_ada.adanpc.pipeline import AdaNPCTextClassificationPipeline, wrap
    adapted = wrap(pipeline("text-classification", model=...), memory=train_ds)
"""

from __future__ import annotations

import sys
from types import ModuleType

from ..common.lazy import call_when_imported
from ..common.patches import Patch, apply_patches

__all__ = ["register", "register_pipelines", "PATCHES"]


def _on_transformers_pipelines_imported(_module: ModuleType) -> None:
    pipeline_module = sys.modules.get(f"{__package__}.pipeline")
    if pipeline_module is not None and getattr(pipeline_module.__spec__, "_initializing", False):
        # hf_ada.adanpc.pipeline is the module importing transformers.pipelines right now: its classes do
        # not exist yet; the hook on hf_ada.adanpc.pipeline (see register) registers once it is done.
        return
    register_pipelines()


def register_pipelines() -> None:
    """Register the ``adanpc-*`` tasks with :func:`transformers.pipeline` now (idempotent)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    from .pipeline import TASKS

    for task, (impl, auto_model, kind) in TASKS.items():
        if PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl") is impl:
            continue  # already registered (both hooks of register() may fire)
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=impl, pt_model=auto_model, type=kind)


#: Every change this method makes to other libraries (ARCHITECTURE.md lists the same rows; a test checks it).
PATCHES = (
    Patch("transformers.pipelines", "PIPELINE_REGISTRY", "the `adanpc-*` tasks of `transformers.pipeline`",
          _on_transformers_pipelines_imported),
)


def register() -> None:
    """Register the pipeline tasks once ``transformers.pipelines`` is imported (now, if it already is)."""
    apply_patches(PATCHES)
    # where hf_ada.adanpc.pipeline itself is the first importer of transformers.pipelines
    call_when_imported(f"{__package__}.pipeline", lambda _module: register_pipelines())
