"""HTML the app shows: escaped tables and small inline-SVG line charts (no JavaScript, no network: the
numbers are in the page as text, so they can be read, copied and tested)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

__all__ = ["table", "line_chart", "message"]

COLORS = ("#6b7280", "#ea580c", "#2563eb", "#16a34a")


def message(text: str, kind: str = "error") -> str:
    """A boxed one-line message (``kind``: error / note)."""
    return f'<div class="hfada-{kind}" role="{"alert" if kind == "error" else "status"}">{escape(text)}</div>'


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], table_id: str) -> str:
    """An HTML table of ``rows`` (every cell escaped)."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td data-col="{escape(str(c))}">{escape(str(r.get(c, "")))}</td>'
                                    for c in columns) + "</tr>" for r in rows)
    return f'<table id="{table_id}" class="hfada-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.3g}"


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], *, chart_id: str, title: str,
               x_label: str, y_range: tuple[float, float] | None = None, width: int = 640, height: int = 260) -> str:
    """An inline SVG with one polyline per series and a legend giving each series' last value.

    Each ``<polyline>`` carries ``data-series`` and ``data-last``; the legend repeats the last values as text.
    """
    drawn = {name: (list(map(float, xs)), list(map(float, ys))) for name, (xs, ys) in series.items() if len(xs)}
    if not drawn:
        return f'<div id="{chart_id}" class="hfada-chart hfada-empty">{escape(title)}: nothing to draw yet</div>'
    all_x = [x for xs, _ in drawn.values() for x in xs]
    all_y = [y for _, ys in drawn.values() for y in ys if math.isfinite(y)]
    x0, x1 = min(all_x), max(all_x)
    y0, y1 = y_range if y_range else (min(all_y, default=0.0), max(all_y, default=1.0))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    left, right, top, bottom = 56, 16, 28, 40
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{left}" y="16" class="hfada-chart-title">{escape(title)}</text>']
    for tick in _ticks(y0, y1):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{py(tick) + 4:.1f}" text-anchor="end" class="tick">{_fmt(tick)}</text>')
    for tick in _ticks(x0, x1):
        parts.append(f'<text x="{px(tick):.1f}" y="{top + ph + 16}" text-anchor="middle" class="tick">'
                     f'{_fmt(tick)}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle" class="tick">{escape(x_label)}</text>')
    legend = []
    for i, (name, (xs, ys)) in enumerate(drawn.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys) if math.isfinite(y))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}" '
                     f'data-series="{escape(name)}" data-last="{ys[-1]:.6g}"/>')
        legend.append(f'<span class="hfada-legend-item" data-series="{escape(name)}" style="color:{color}">'
                      f'&#9632; {escape(name)}: <b>{_fmt(ys[-1])}</b></span>')
    parts.append("</svg>")
    return (f'<div id="{chart_id}" class="hfada-chart">{"".join(parts)}'
            f'<div class="hfada-legend">{" ".join(legend)}</div></div>')
