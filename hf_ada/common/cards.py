"""Model / dataset cards rendered from the templates in ``model_cards/``.

Cards are always filled from an artifact's own config (never typed by hand): callers pass the config
values, the template lays them out. Templates are Jinja2 markdown files with a YAML front matter block,
rendered through ``huggingface_hub``'s :class:`ModelCard` / :class:`DatasetCard`. A template is named by
whoever uses it (an artifact class carries its own: ``card_template=`` of
:class:`~hf_ada.common.artifact.HubArtifactMixin`); there is no central list to edit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData

__all__ = ["available_templates", "template_path", "render_card", "render_model_card", "render_dataset_card",
           "save_card"]

_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def _templates_dir() -> Path:
    package_root = Path(__file__).resolve().parent.parent
    packaged = package_root / "model_cards"  # wheel installs (force-included by pyproject)
    if packaged.is_dir():
        return packaged
    return package_root.parent / "model_cards"  # source checkout / editable install


def available_templates() -> tuple[str, ...]:
    """Names of the templates shipped in ``model_cards/``."""
    return tuple(sorted(p.stem for p in _templates_dir().glob("*.md")))


def template_path(name: str | os.PathLike) -> Path:
    """Path of the template ``model_cards/<name>.md``, or ``name`` itself when it is a path to a ``.md`` file."""
    if not isinstance(name, str) or not _TEMPLATE_NAME.match(name):
        path = Path(name)
        if path.suffix == ".md" and path.is_file():
            return path
        raise ValueError(f"card template {name!r} is neither a template name nor a .md file; shipped templates: "
                         f"{available_templates()}")
    path = _templates_dir() / f"{name}.md"
    if not path.is_file():
        raise ValueError(f"unknown card template {name!r}; shipped templates: {available_templates()}")
    return path


def render_model_card(name: str | os.PathLike, card_data: ModelCardData | None = None, **values: Any) -> ModelCard:
    """Render template ``name`` into a :class:`ModelCard` (YAML metadata from ``card_data``)."""
    return ModelCard.from_template(card_data or ModelCardData(), template_path=str(template_path(name)), **values)


def render_dataset_card(name: str | os.PathLike, card_data: DatasetCardData | None = None, **values: Any) -> DatasetCard:
    """Render template ``name`` into a :class:`DatasetCard` (YAML metadata from ``card_data``)."""
    return DatasetCard.from_template(
        card_data or DatasetCardData(), template_path=str(template_path(name)), **values
    )


def render_card(name: str | os.PathLike, card_data: ModelCardData | DatasetCardData | None = None, *,
                repo_type: str = "model", **values: Any) -> ModelCard | DatasetCard:
    """Render template ``name`` as the card of a ``repo_type`` repo (a :class:`DatasetCard` for ``"dataset"``)."""
    if repo_type == "dataset":
        return render_dataset_card(name, card_data, **values)  # type: ignore[arg-type]
    return render_model_card(name, card_data, **values)  # type: ignore[arg-type]


def save_card(card: ModelCard | DatasetCard, folder: str | os.PathLike) -> Path:
    """Write ``card`` as ``folder/README.md`` and return its path."""
    path = Path(folder) / "README.md"
    card.save(path)
    return path

