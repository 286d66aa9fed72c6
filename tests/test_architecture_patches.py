"""The patches of third-party classes: each ``integration.py`` declares them in one ``PATCHES`` table,
ARCHITECTURE.md lists the same rows, and every listed patch is in effect after ``import hf_ada``."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from types import FunctionType

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "Adan": "hf_ada.optim.integration:PATCHES",
    "AdANNS": "hf_ada.adanns.integration:PATCHES",
    "AdaNPC": "hf_ada.adanpc.integration:PATCHES",
    "`hf-ada run` only": "hf_ada.commands.trainer:RUN_PATCHES",
}


def _declared() -> dict[str, set[str]]:
    declared = {}
    for owner, source in SOURCES.items():
        module, name = source.split(":")
        declared[owner] = {patch.qualified_target for patch in getattr(importlib.import_module(module), name)}
    return declared


def _documented() -> dict[str, set[str]]:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Patches of third-party classes", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    for owner, target in re.findall(r"^\| ([^|]+?) \| `([^`]+)` \|", section, flags=re.M):
        documented.setdefault(owner, set()).add(target)
    return documented


def test_architecture_lists_exactly_the_declared_patches():
    declared, documented = _declared(), _documented()
    assert documented == declared, (
        f"ARCHITECTURE.md's patch table and the PATCHES tables differ: "
        f"only in the code {_difference(declared, documented)}, only in ARCHITECTURE.md {_difference(documented, declared)}"
    )


def _difference(left: dict[str, set[str]], right: dict[str, set[str]]) -> dict[str, set[str]]:
    return {owner: targets - right.get(owner, set()) for owner, targets in left.items() if targets - right.get(owner, set())}


def test_every_declared_patch_is_in_effect_after_import():
    """In a fresh interpreter: import hf_ada and each patched module, then resolve every target; a method that
    the library defines itself must be hf-ada's wrapper, an added attribute must exist."""
    code = r"""
import importlib, sys
import hf_ada
from hf_ada.common.patches import is_wrapped
from types import FunctionType
from hf_ada.optim.integration import PATCHES as A
from hf_ada.adanns.integration import PATCHES as B
from hf_ada.adanpc.integration import PATCHES as C
from hf_ada.commands.trainer import RUN_PATCHES, warn_on_process_dependent_loss
warn_on_process_dependent_loss()
bad = []
for patch in (*A, *B, *C, *RUN_PATCHES):
    value = importlib.import_module(patch.module)
    for part in patch.target.split("."):
        value = getattr(value, part)
    if isinstance(value, FunctionType) and not (is_wrapped(value) or value.__module__.startswith("hf_ada")):
        bad.append(patch.qualified_target)
    if patch.target == "_OPTIMIZER_HANDLERS" and "adan" not in value:
        bad.append(patch.qualified_target)
    if patch.target == "PIPELINE_REGISTRY" and "adanpc-text-classification" not in value.supported_tasks:
        bad.append(patch.qualified_target)
    if patch.target == "DEFAULT_CALLBACKS" and not any("ProcessDependentLoss" in c.__name__ for c in value):
        bad.append(patch.qualified_target)
print("NOT-IN-EFFECT", bad)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NOT-IN-EFFECT []" in result.stdout, result.stdout


def test_reapplying_a_patch_table_changes_nothing():
    import transformers.trainer as trainer_module

    import hf_ada  # noqa: F401
    from hf_ada.common.patches import apply_patches
    from hf_ada.optim.integration import PATCHES

    before = (trainer_module.Trainer.train, trainer_module.Trainer.create_model_card)
    apply_patches(PATCHES)
    apply_patches(PATCHES)
    assert (trainer_module.Trainer.train, trainer_module.Trainer.create_model_card) == before
    assert not hasattr(trainer_module.Trainer.train.__wrapped__, "__wrapped__") or not getattr(
        trainer_module.Trainer.train.__wrapped__, "__hf_ada_wrapped__", False
    )
    assert isinstance(trainer_module.Trainer.train.__wrapped__, FunctionType)
