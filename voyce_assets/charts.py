"""Charts and previews for asset metadata: PNG images (matplotlib, no display) embedded in
markdown, which the Dagster UI renders, and markdown tables of rows."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import MetadataValue


def png_markdown(png: bytes, title: str) -> MetadataValue:
    encoded = base64.b64encode(png).decode()
    return MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def _axes(width: float):
    """A figure and its axes, drawn without a display or GUI toolkit."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, 2.8), dpi=100)
    return figure, figure.subplots()


def _png(figure, axes, title: str, ylabel: str) -> bytes:
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.spines[["top", "right"]].set_visible(False)
    # Fixed margins: tight_layout draws the figure once more just to measure it, which a
    # backfill's one chart per partition pays thirty times.
    figure.subplots_adjust(left=0.13, right=0.98, top=0.88, bottom=0.24)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def bar_chart_png(values: Mapping[str, float], title: str, ylabel: str = "rows") -> bytes:
    """A small bar chart of ``values`` (in the given order) as PNG bytes."""
    figure, axes = _axes(4.5)
    names = list(values)
    bars = axes.bar(names, [values[n] for n in names], color="#4c72b0")
    axes.bar_label(bars, fmt="%g")
    return _png(figure, axes, title, ylabel)


def line_chart_png(values: Mapping[str, float | None], title: str, ylabel: str) -> bytes:
    """A small line chart of ``values`` (x labels in the given order; None leaves a gap)."""
    figure, axes = _axes(5.5)
    names = list(values)
    ys = [float("nan") if values[n] is None else values[n] for n in names]
    axes.plot(range(len(names)), ys, marker="o", color="#4c72b0")
    axes.set_xticks(range(len(names)), [n[5:] for n in names], rotation=45, fontsize=7)
    axes.axhline(0, color="#999999", linewidth=0.8)
    return _png(figure, axes, title, ylabel)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], width: int = 40):
    """``rows`` as a markdown table of ``columns`` (cells cut to ``width`` characters)."""
    if not rows:
        return MetadataValue.md("_no rows_")

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text[:width].replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return MetadataValue.md("\n".join(lines))
