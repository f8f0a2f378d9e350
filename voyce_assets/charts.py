"""Charts and previews for asset metadata: PNG images (matplotlib or Pillow, no display)
embedded in markdown, which the Dagster UI renders, and markdown tables of rows."""

from __future__ import annotations

import base64
import functools
import io
import itertools
import math
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
    """A small line chart of ``values`` as a 550 x 280 PNG (x labels in the given order;
    None, NaN or an infinity leaves a gap).

    Drawn with Pillow, not matplotlib: a daily table draws one per partition, and a
    backfill's thirty took matplotlib 2-3 s (its import alone about half a second); this
    takes milliseconds. Same size and look as the bar charts: title, y label and ticks, the
    zero line, one marker per value, MM-DD labels under the x axis."""
    from PIL import Image, ImageDraw

    width, height = 550, 280
    left, right, top, bottom = 70, 540, 34, 236
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(11), _font(9)
    finite = {name: _finite(v) for name, v in values.items()}
    names = list(finite)
    known = [v for v in finite.values() if v is not None]
    low, high = min([0.0, *known]), max([0.0, *known])
    if high - low < 1e-9:
        low, high = low - 1.0, high + 1.0
    ticks = _ticks(low, high)
    if ticks:
        low, high = min(low, ticks[0]), max(high, ticks[-1])

    def y_of(v: float) -> float:
        # Halves: no overflow between values near the largest floats.
        return bottom - (v / 2 - low / 2) / (high / 2 - low / 2) * (bottom - top)

    def x_of(i: int) -> float:
        step = (right - left) / max(len(names), 1)
        return left + step * (i + 0.5)

    grey, ink, blue = (153, 153, 153), (38, 38, 38), (76, 114, 176)
    draw.text(((left + right) / 2, top / 2), title, fill=ink, font=font, anchor="mm")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=ink, width=1)
    for t in ticks:
        y = y_of(t)
        draw.line([(left - 4, y), (left, y)], fill=ink, width=1)
        draw.text((left - 6, y), f"{t:g}", fill=ink, font=small, anchor="rm")
    draw.line([(left, y_of(0.0)), (right, y_of(0.0))], fill=grey, width=1)
    for i, name in enumerate(names):
        x = x_of(i)
        draw.line([(x, bottom), (x, bottom + 4)], fill=ink, width=1)
        draw.text((x, bottom + 6), name[5:], fill=ink, font=small, anchor="mt")
    points = [
        (x_of(i), None if finite[n] is None else y_of(finite[n])) for i, n in enumerate(names)
    ]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if y0 is not None and y1 is not None:
            draw.line([(x0, y0), (x1, y1)], fill=blue, width=2)
    r = 3
    for x, y in points:
        if y is not None:
            draw.ellipse([(x - r, y - r), (x + r, y + r)], fill=blue)
    label = Image.new("RGB", (int(bottom - top), 16), "white")
    ImageDraw.Draw(label).text(
        (label.width / 2, label.height / 2), ylabel, fill=ink, font=font, anchor="mm"
    )
    image.paste(label.rotate(90, expand=True), (8, int(top)))
    buffer = io.BytesIO()
    # Sixteen colours are plenty for these: a third of the bytes and the time to write.
    image.quantize(16, method=Image.Quantize.FASTOCTREE).save(buffer, format="PNG")
    return buffer.getvalue()


@functools.cache
def _font(size: int):
    """Pillow's own font (no system font needed) at ``size`` pixels, loaded once."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _finite(value: Any) -> float | None:
    """``value`` as a float, None when it is None, NaN or infinite (a gap in a chart)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2, 2.5 or 5 times a power of ten apart) that
    cover ``low``..``high``: ``[low]`` when there is nothing between them, none when they
    (or the span between them) are not finite numbers."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / count
    if not math.isfinite(raw):
        return []
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    n = math.ceil((high - first) / step - 1e-9)
    return [round(first + i * step, 10) for i in range(n + 1)]


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
