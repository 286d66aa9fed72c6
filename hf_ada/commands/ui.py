"""``hf-ada ui ARGS``: the local web interface (``hf_ada.ui``, installed by ``pip install hf-ada[ui]``), and
the ``--space`` option of the push commands (a Gradio Space over a pushed index or predictor)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from . import command
from ._base import UsageError

__all__ = ["main", "require_ui", "create_space"]

_INSTALL = "pip install 'hf-ada[ui]'"


def require_ui(what: str) -> None:
    """Refuse ``what`` (before any work) when the ``hf_ada.ui`` room or its dependencies are missing."""
    try:
        found = importlib.util.find_spec("hf_ada.ui") is not None
    except ImportError:
        found = False
    if not found:
        raise UsageError(f"{what} needs hf-ada's web interface, which is not installed: {_INSTALL}")


def create_space(space_id: str, *, artifact_repo_id: str, artifact_kind: str, token: str | None) -> Any:
    """Create (or update) the Space ``space_id`` that serves ``artifact_repo_id``; return what
    ``hf_ada.ui.space.create_space`` returns (the Space's URL)."""
    try:
        from ..ui.space import create_space as create
    except ImportError as err:
        raise UsageError(f"--space needs hf-ada's web interface ({err}): {_INSTALL}") from err
    from huggingface_hub import constants

    return create(space_id, artifact_repo_id=artifact_repo_id, artifact_kind=artifact_kind, token=token,
                  endpoint=os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)


@command("ui", "a local web interface over your indexes and predictors (pip install 'hf-ada[ui]')")
def main(argv: list[str]) -> int | None:
    """``hf-ada ui ARGS``: forwards ``ARGS`` to ``python -m hf_ada.ui``."""
    try:
        from ..ui.__main__ import main as ui_main
    except ImportError as err:
        if argv and argv[0] in ("-h", "--help"):
            print(f"usage: hf-ada ui [ARGS ...]\n\nThe web interface is not installed ({err}): {_INSTALL}")
            return 0
        raise UsageError(f"the web interface is not installed ({err}): {_INSTALL}") from err
    return ui_main(argv)
