"""Model / dataset cards rendered from the templates in ``model_cards/``.

Cards are always filled from an artifact's own config (never typed by hand): callers pass the config
values, the template lays them out. Templates are Jinja2 markdown files with a YAML front matter block,
rendered through ``huggingface_hub``'s :class:`ModelCard` / :class:`DatasetCard`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData

__all__ = ["TEMPLATES", "template_path", "render_model_card", "render_dataset_card", "save_card"]

TEMPLATES = ("adan_model", "adanns_index", "adanpc_predictor")


def _templates_dir() -> Path:
    package_root = Path(__file__).resolve().parent.parent
    packaged = package_root / "model_cards"  # wheel installs (force-included by pyproject)
    if packaged.is_dir():
        return packaged
    return package_root.parent / "model_cards"  # source checkout / editable install


def template_path(name: str) -> Path:
    """Path of the template ``model_cards/<name>.md``."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown card template {name!r}; allowed: {TEMPLATES}")
    path = _templates_dir() / f"{name}.md"
    if not path.is_file():
        raise FileNotFoundError(f"card template missing: {path}")
    return path


def render_model_card(name: str, card_data: ModelCardData | None = None, **values: Any) -> ModelCard:
    """Render template ``name`` into a :class:`ModelCard` (YAML metadata from ``card_data``)."""
    return ModelCard.from_template(card_data or ModelCardData(), template_path=str(template_path(name)), **values)


def render_dataset_card(name: str, card_data: DatasetCardData | None = None, **values: Any) -> DatasetCard:
    """Render template ``name`` into a :class:`DatasetCard` (YAML metadata from ``card_data``)."""
    return DatasetCard.from_template(
        card_data or DatasetCardData(), template_path=str(template_path(name)), **values
    )


def save_card(card: ModelCard | DatasetCard, folder: str | os.PathLike) -> Path:
    """Write ``card`` as ``folder/README.md`` and return its path."""
    path = Path(folder) / "README.md"
    card.save(path)
    return path

