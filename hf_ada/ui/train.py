"""The Train tab's back end (read-only): the curves of a Trainer output folder and its card's optimizer section.

Curves come from ``trainer_state.json`` (the folder's own, else its newest ``checkpoint-*/``); a folder
saved without it (``trainer.save_model`` alone) still has the per-epoch "Training results" table of the
card transformers writes, which is read instead (losses only: that table has no learning rate).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .sources import UIError

__all__ = ["TrainRun", "read_run"]

_MAX_BYTES = 64 << 20


@dataclass
class TrainRun:
    """Curves as ``{name: ([step, ...], [value, ...])}``, where they came from, and the card's optimizer
    section (markdown, empty when the card has none)."""

    folder: str
    source: str
    loss: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    learning_rate: tuple[list[float], list[float]] | None = None
    optimizer_section: str = ""
    notes: list[str] = field(default_factory=list)


def _read_text(path: Path) -> str:
    if path.is_symlink():
        raise UIError(f"{path} is a link; the app reads only files inside the folder")
    if path.stat().st_size > _MAX_BYTES:
        raise UIError(f"{path} is larger than {_MAX_BYTES >> 20} MiB; not a Trainer file")
    return path.read_text(encoding="utf-8", errors="replace")


def _state_file(folder: Path) -> Path | None:
    own = folder / "trainer_state.json"
    if own.is_file():
        return own
    checkpoints = [p for p in folder.glob("checkpoint-*/trainer_state.json")
                   if p.parent.name.split("-", 1)[1].isdigit() and not p.parent.is_symlink()]
    return max(checkpoints, key=lambda p: int(p.parent.name.split("-", 1)[1])) if checkpoints else None


def _curves_from_state(path: Path, run: TrainRun) -> None:
    try:
        state = json.loads(_read_text(path))
        history = state["log_history"]
        if not isinstance(history, list):
            raise TypeError("log_history is not a list")
    except (ValueError, KeyError, TypeError) as err:
        raise UIError(f"{path} is not a Trainer state file ({err})") from err
    series: dict[str, tuple[list[float], list[float]]] = {}
    for entry in history:
        if not isinstance(entry, dict) or not isinstance(entry.get("step"), (int, float)):
            continue
        for key in ("loss", "eval_loss", "learning_rate"):
            value = entry.get(key)
            if isinstance(value, (int, float)) and value == value:
                steps, values = series.setdefault(key, ([], []))
                steps.append(float(entry["step"]))
                values.append(float(value))
    run.loss = {name: series[name] for name in ("loss", "eval_loss") if name in series}
    run.learning_rate = series.get("learning_rate")


def _curves_from_card(card: str, run: TrainRun) -> None:
    """The card's "Training results" table: Training Loss | Epoch | Step | Validation Loss | ..."""
    match = re.search(r"^#+ Training results\s*\n+((?:\|.*\|\s*\n)+)", card, flags=re.M)
    if not match:
        return
    lines = [line.strip().strip("|").split("|") for line in match.group(1).strip().splitlines()]
    header = [cell.strip().lower() for cell in lines[0]]
    if "step" not in header:
        return
    columns = {"training loss": "loss", "validation loss": "eval_loss"}
    for body in lines[2:]:
        cells = dict(zip(header, (cell.strip() for cell in body)))
        try:
            step = float(cells["step"])
        except ValueError:
            continue
        for title, name in columns.items():
            try:
                value = float(cells.get(title, ""))
            except ValueError:
                continue
            steps, values = run.loss.setdefault(name, ([], []))
            steps.append(step)
            values.append(value)


def _optimizer_section(card: str) -> str:
    """The card's ``## Optimizer...`` section (hf-ada's Adan section), else its optimizer hyperparameter line."""
    body = re.sub(r"\A---\n.*?\n---\n", "", card, flags=re.S)  # the YAML metadata
    match = re.search(r"^## Optimizer\b.*?(?=^## |\Z)", body, flags=re.M | re.S)
    if match:
        return match.group(0).strip()
    line = re.search(r"^- optimizer: .*$", body, flags=re.M)
    return line.group(0) if line else ""


def read_run(folder: str | Path) -> TrainRun:
    """Read a Trainer output folder; :class:`UIError` when it is missing or holds no training record."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UIError(f"--train-dir {folder}: no such folder")
    run = TrainRun(str(folder), source="")
    card_path = path / "README.md"
    card = _read_text(card_path) if card_path.is_file() else ""
    state = _state_file(path)
    if state is not None:
        _curves_from_state(state, run)
        run.source = str(state.relative_to(path))
    elif card:
        _curves_from_card(card, run)
        run.source = "README.md (Training results table)"
        run.notes.append("no trainer_state.json in this folder (the Trainer writes it at checkpoints and with "
                         "trainer.save_state()): losses per epoch from the card; no learning-rate curve")
    if not run.loss and run.learning_rate is None and not card:
        raise UIError(f"--train-dir {folder} holds no trainer_state.json, checkpoint-*/ or model card: not a "
                      "Trainer output folder")
    run.optimizer_section = _optimizer_section(card) if card else ""
    if not run.optimizer_section:
        run.notes.append("the model card has no optimizer section")
    return run
