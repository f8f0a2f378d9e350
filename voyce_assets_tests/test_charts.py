"""The Pillow line chart of asset metadata: its size, its gaps, and values it cannot plot."""

import io
import itertools
import math

import pytest
from PIL import Image

from voyce_assets.charts import _ticks, line_chart_png

DAYS = [f"2026-11-{d:02d}" for d in range(1, 8)]


def _image(values: dict) -> Image.Image:
    image = Image.open(io.BytesIO(line_chart_png(values, "trend", "score")))
    assert image.format == "PNG"
    return image.convert("RGB")


def _blue_runs(image: Image.Image) -> list[tuple[int, int]]:
    """The x ranges (first, last column) of the line and its markers: the only blue drawn
    (text, axes and the zero line are grey)."""
    pixels = image.load()
    blue = [
        any(pixels[x, y][2] - pixels[x, y][0] > 40 for y in range(image.height))
        for x in range(image.width)
    ]
    runs, start = [], None
    for x, on in enumerate([*blue, False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            runs.append((start, x - 1))
            start = None
    return runs


def test_the_chart_is_a_550_by_280_png_and_a_line_joins_neighbouring_values():
    image = _image(dict(zip(DAYS[:3], [0.2, -0.4, 0.6], strict=True)))
    assert image.size == (550, 280)
    ((first, last),) = _blue_runs(image)  # one line from the first marker to the last
    assert last - first > 200


@pytest.mark.parametrize("gap", [None, math.nan, math.inf, -math.inf])
def test_a_missing_or_non_finite_value_is_a_gap_with_no_line_across_it(gap):
    image = _image(dict(zip(DAYS[:3], [0.2, gap, 0.6], strict=True)))
    assert image.size == (550, 280)
    runs = _blue_runs(image)
    assert len(runs) == 2  # the two markers, nothing drawn between them
    assert all(last - first < 12 for first, last in runs)
    assert runs[1][0] - runs[0][1] > 200


def test_non_finite_values_do_not_move_the_axis():
    """An infinity is a gap, not the top of the scale: the finite values span the height."""
    plain = _image(dict(zip(DAYS[:3], [0.2, None, 0.6], strict=True)))
    assert _image(dict(zip(DAYS[:3], [0.2, math.inf, 0.6], strict=True))) == plain


def test_no_value_or_one_value_draws_a_chart():
    assert _blue_runs(_image(dict.fromkeys(DAYS))) == []
    assert _blue_runs(_image(dict.fromkeys(DAYS, math.nan))) == []
    assert _blue_runs(_image({})) == []
    ((first, last),) = _blue_runs(_image({DAYS[0]: 0.5}))
    assert last - first < 12
    ((first, last),) = _blue_runs(_image({DAYS[0]: None, DAYS[1]: 0.0, DAYS[2]: None}))
    assert last - first < 12


def test_values_near_the_largest_floats_are_drawn():
    runs = _blue_runs(_image({DAYS[0]: 1.5e308, DAYS[1]: -1.5e308}))
    assert len(runs) == 1


@pytest.mark.parametrize(
    ("low", "high"), [(0, 10), (-1.2, 3.7), (-1, 1), (0.001, 0.0042), (-250, -3), (0, 1e6)]
)
def test_ticks_are_a_few_round_steps_covering_the_range(low, high):
    ticks = _ticks(low, high)
    assert 3 <= len(ticks) <= 7
    assert ticks[0] <= low and ticks[-1] >= high
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, math.inf, []),
        (-math.inf, math.inf, []),
        (math.nan, 1, []),
        (-1.5e308, 1.5e308, []),  # the span itself is infinite
        (2.0, 2.0, [2.0]),
        (3.0, 1.0, [3.0]),
    ],
)
def test_ticks_of_bounds_with_nothing_between_them_do_not_raise(low, high, expected):
    assert _ticks(low, high) == expected
