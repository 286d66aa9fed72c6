"""Accuracy-compute plots and markdown tables of measured AdANNS configurations (demo and benchmark)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_fronts", "markdown_table", "describe"]


def describe(point: Mapping[str, Any]) -> str:
    """Short label of a measured configuration (dims per stage)."""
    parts = []
    if point.get("d_cluster") is not None:
        parts.append(f"dc={point['d_cluster']}")
    if point.get("scan") == "exact":
        return " ".join(["exact", f"ds={point.get('d_search')}"] + (
            [f"rr={point['d_rerank']}x{point['rerank_k']}"] if point.get("d_rerank") else []))
    parts.append("pq" + (f"{point['pq_bytes']}B" if point.get("pq_bytes") else "") if point.get("scan") == "pq"
                 else f"ds={point.get('d_search')}")
    if point.get("nprobe") is not None:
        parts.append(f"np={point['nprobe']}")
    if point.get("d_rerank"):
        parts.append(f"rr={point['d_rerank']}x{point['rerank_k']}")
    return " ".join(parts)


def plot_fronts(
    series: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | os.PathLike,
    *,
    metric: str = "recall",
    k: int = 10,
    title: str = "",
    qps: bool = True,
    flops: bool = True,
) -> Path:
    """Plot ``metric`` against FLOPs/query (if ``flops``) and against queries/s (if ``qps``) for each named
    series, one panel each."""
    if not (flops or qps):
        raise ValueError("plot_fronts needs flops=True or qps=True (the panels to draw)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ([("flops", "FLOPs / query (multiply-adds, log)")] if flops else []) + (
        [("qps", "queries / second (log)")] if qps else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name, points in series.items():
            pts = sorted(points, key=lambda p: p[key])
            if not pts:
                continue
            if name.endswith("(all plans)"):  # a cloud of measured configurations, not a curve
                ax.plot([p[key] for p in pts], [p[metric] for p in pts], ".", label=name, markersize=3, alpha=0.35)
                continue
            style = "*" if len(pts) == 1 else ("o-" if key == "flops" else "o")  # measured q/s is not monotone
            ax.plot([p[key] for p in pts], [p[metric] for p in pts], style, label=name, markersize=5 if len(pts) > 1 else 12)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric}@{k}")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _qps(row: Mapping[str, Any]) -> str:
    """``median (low-high)`` when the row was timed with repeats, else the single figure."""
    if "qps_low" in row:
        return f"{row['qps']:,.0f} ({row['qps_low']:,.0f}-{row['qps_high']:,.0f})"
    return f"{row['qps']:,.0f}"


def markdown_table(rows: Sequence[Mapping[str, Any]], k: int = 10) -> str:
    """Markdown table: method, configuration, recall@k, MRR@k, FLOPs/query, queries/s (median and range of
    the repeats when timed so), bytes/vector."""
    lines = [
        f"| method | configuration | recall@{k} | MRR@{k} | FLOPs/query | queries/s | bytes/vector |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {row.get('label') or describe(row)} | {row['recall']:.4f} | {row['mrr']:.4f} | "
            f"{row['flops']:,.0f} | {_qps(row)} | {row.get('bytes', '')} |"
        )
    return "\n".join(lines)
