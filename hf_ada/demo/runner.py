"""``hf-ada demo``: the main job. Offline, end to end, on data that ships with installed libraries.

1. **Adan**: a small image classifier fine-tuned with the Trainer and ``optim="adan"``, AdamW beside it.
2. **AdANNS**: a corpus embedded with the pip-shipped all-MiniLM-L6-v2, an AdANNS index and a rigid one,
   recall against compute.
3. **AdaNPC**: a classifier adapted on a shifted stream (rotated digits) vs no adaptation.

It writes ``report.md`` (with PNG plots) and the three artifacts, ready to push, into ``--out``. The
command line (``hf-ada demo``) is :mod:`hf_ada.commands.demo`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = ["run_all", "STAGES"]


def _adan_stage(out: Path, quick: bool, earlier: dict[str, Any]) -> dict[str, Any]:
    from .adan_stage import run_demo

    return run_demo(out, quick)


def _adanns_stage(out: Path, quick: bool, earlier: dict[str, Any]) -> dict[str, Any]:
    from .adanns_stage import run_demo

    return run_demo(out, quick)


def _adanpc_stage(out: Path, quick: bool, earlier: dict[str, Any]) -> dict[str, Any]:
    """AdaNPC adapts the classifier the Adan stage just trained (same source domains), when it ran."""
    from .adanpc_stage import run_demo

    return run_demo(out, quick, model_dir=(earlier.get("adan") or {}).get("model_dir"))


#: (folder, title, runner(out, quick, results of the stages run before it), how to push the artifact)
STAGES: list[tuple[str, str, Callable[[Path, bool, dict[str, Any]], dict[str, Any]], str]] = [
    ("adan", "Adan vs AdamW (Trainer, `optim=\"adan\"`)", _adan_stage,
     "`huggingface_hub.upload_folder(repo_id=..., folder_path=\"adan/adan-digits-classifier\")`"),
    ("adanns", "AdANNS vs rigid search (Matryoshka embeddings, `datasets` index)", _adanns_stage,
     "`hf-ada index push ...` or `dataset.push_adanns_index_to_hub(name, repo_id)`"),
    ("adanpc", "AdaNPC vs no adaptation (rotated digits stream)", _adanpc_stage,
     "`AdaNPCPredictor.from_pretrained(folder).push_to_hub(repo_id)`"),
]  # fmt: skip


def _pngs(result: Any) -> list[Path]:
    found: list[Path] = []
    if isinstance(result, dict):
        for value in result.values():
            found.extend(_pngs(value))
    elif isinstance(result, (list, tuple)):
        for value in result:
            found.extend(_pngs(value))
    elif isinstance(result, (str, Path)) and str(result).endswith(".png") and Path(result).is_file():
        found.append(Path(result))
    return found


def _fragment(markdown: Any, stage_dir: Path) -> str:
    """A stage's markdown, given inline or as the path of a file it wrote; image links made relative to
    the report (one folder up from the stage's own folder)."""
    text = str(markdown)
    if text.endswith(".md") and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8")
        text = re.sub(r"\]\((?!https?:|/)([^)]+\.png)\)", lambda m: f"]({stage_dir.name}/{m.group(1)})", text)
        text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)  # one level below the report's stage heading
    return text.strip() + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def run_all(out: Path, quick: bool, stages: list[str] | None = None) -> Path:
    """Run the demo stages into ``out``; return the report path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    selected = [s for s in STAGES if stages is None or s[0] in stages]
    sections = [
        "# hf-ada demo report\n",
        f"Mode: {'quick' if quick else 'full'}. Everything ran offline on this machine "
        f"({os.cpu_count()} CPU cores); the numbers below were measured by this run.\n",
    ]
    summary: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for folder, title, runner, push_hint in tqdm(selected, desc="hf-ada demo", unit="stage"):
        start = time.perf_counter()
        result = results[folder] = runner(out / folder, quick, results)
        seconds = time.perf_counter() - start
        summary[folder] = {"seconds": round(seconds, 1), **_jsonable(result)}
        sections.append(f"## {title}\n")
        sections.append(_fragment(result.get("markdown", ""), out / folder))
        if "](" not in sections[-1]:  # the fragment does not embed its plots itself
            for png in _pngs(result):
                sections.append(f"![{png.stem}]({png.relative_to(out)})\n")
        sections.append(f"Artifacts: `{folder}/`; to share: {push_hint}. Stage time: {seconds:.0f} s.\n")
    report = out / "report.md"
    report.write_text("\n".join(sections), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    return report
