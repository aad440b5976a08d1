"""Inline SVG line charts for the HTML report: no JavaScript, no fonts, no network.

Every text written into the SVG is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence
from dataclasses import replace

__all__ = ["Series", "line_chart", "log_ticks", "nice_ticks"]

_FONT = 'font-family="Helvetica, Arial, sans-serif"'
#: Each marker at (x, y) in colour c; a ring is hollow, drawn over other lines.
_MARKERS = {
    "ring": '<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="none" stroke="{c}" stroke-width="2"/>',
    "circle": '<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>',
    "square": '<rect x="{left:.1f}" y="{up:.1f}" width="6" height="6" fill="{c}"/>',
    "triangle": '<path d="M{x:.1f},{tip:.1f} L{right:.1f},{base:.1f} L{west:.1f},{base:.1f} Z" '
    'fill="{c}"/>',
}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Series:
    """One line of a chart: legend ``label``, ``xs`` and ``ys`` (non-finite points skipped),
    ``color``, ``dash`` (an SVG ``stroke-dasharray``, so lines differ in print; None: solid),
    ``marker`` (a key of ``_MARKERS`` or None), ``width`` (0: markers only), and ``low`` and
    ``high``, the edges of a translucent band with a whisker at every x (e.g. mean ± std)."""

    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    color: str
    dash: str | None = None
    marker: str | None = "circle"
    width: float = 2.0
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Return round tick values covering [low, high] (about ``count`` of them).

    Example:
        >>> nice_ticks(0.0, 2.7)
        [0.0, 1.0, 2.0, 3.0]
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks, value = [], math.floor(low / step) * step
    while value < high + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 12))
        if value >= high - 1e-12 * step:
            break
        value += step
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """Return 1-2-5 ticks (as log10 values) covering [low, high], given as log10 values.

    Example:
        >>> [round(10**t, 6) for t in log_ticks(math.log10(0.8), math.log10(9))]
        [1.0, 2.0, 5.0]
    """
    ticks = [
        exponent + math.log10(mantissa)
        for exponent in range(math.floor(low) - 1, math.ceil(high) + 1)
        for mantissa in (1, 2, 5)
    ]
    return [t for t in ticks if low - 1e-9 <= t <= high + 1e-9] or [low, high]


def _ticks(low: float, high: float, log: bool, count: int, values: Sequence | None) -> list:
    """One axis's ticks (log10 values on a log axis): ``values`` if given (a log axis ticks only
    the positive ones), else decades on a log axis spanning over two decades, 1-2-5 on a
    shorter one, round numbers on a linear one."""
    if values is not None:
        ticks = {math.log10(v) if log else float(v) for v in values if v > 0 or not log}
        return sorted(t for t in ticks if math.isfinite(t)) or [low, high]
    if log and high - low > 2:
        return [float(k) for k in range(math.floor(low), math.ceil(high) + 1)]
    return log_ticks(low, high) if log else nice_ticks(low, high, count)


def _finite(*columns: Sequence[float]) -> list[tuple[float, ...]]:
    """The rows of ``columns`` (zipped) whose every value is finite."""
    return [row for row in zip(*columns, strict=True) if all(map(math.isfinite, row))]


def _points(pairs: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pairs)


def _marker(kind: str | None, x: float, y: float, c: str) -> str:
    shape = _MARKERS.get(kind or "", "")
    return shape.format(
        x=x, y=y, c=c, left=x - 3, up=y - 3, tip=y - 3.8, right=x + 3.6, base=y + 2.6, west=x - 3.6
    )


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 720,
    height: int = 300,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    integer_x: bool = False,
    reference: Sequence[tuple[float, float]] | None = None,
    reference_label: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
    x_tick_values: Sequence[float] | None = None,
) -> str:
    """Return an ``<svg>`` element with one line per series, axes, ticks and a legend.

    ``title`` is the accessible ``<title>``, not drawn. ``width`` and ``height`` are in px,
    legend included (the SVG scales to its container). The ranges default to the data (y from
    0 or the data minimum). ``integer_x`` ticks only whole numbers (epochs). ``reference`` is
    a grey dashed line (e.g. the diagonal), ``reference_label`` its legend. ``log_x`` and
    ``log_y`` make an axis logarithmic (base 10; positive values and range), ticked at every
    decade or at 1, 2, 5 per decade. ``x_tick_values`` are the x ticks in data units (e.g.
    every target ε) instead of ticks chosen from the range; a log axis ticks the positive ones.
    """

    def scale(values: Sequence[float], log: bool) -> tuple[float, ...]:
        return tuple((math.log10(v) if v > 0 else -math.inf) if log else v for v in values)

    series = [replace(s, xs=scale(s.xs, log_x), ys=scale(s.ys, log_y)) for s in series]
    reference = [(*scale([x], log_x), *scale([y], log_y)) for x, y in reference or ()]
    x_range = scale(x_range, log_x) if x_range else None
    y_range = scale(y_range, log_y) if y_range else None
    left, top, plot_w = 64, 14, width - 80
    entries = [(s.label, s.color, s.dash, s.marker, s.width) for s in series]
    if reference:
        entries.append((reference_label or "reference", "#888", "4 4", None, 1.2))
    placed, row, offset = [], 0, 0.0  # legend entries flow left to right, wrapping
    for label, *_ in entries:
        size = 40 + 6.6 * len(label) + 18  # line sample, text (~6.6 px a character), gap
        if offset > 0 and offset + size > plot_w:
            row, offset = row + 1, 0.0
        placed.append((row, offset))
        offset += size
    plot_h = height - top - 44 - 20 * (row + 1)
    points = [point for s in series for point in _finite(s.xs, s.ys)]
    xs, ys = [x for x, _ in points] or [0.0, 1.0], [y for _, y in points] or [0.0, 1.0]
    x_low, x_high = x_range or (min(xs), max(xs))
    if integer_x and x_range is None:
        x_low = 0.0 if x_high <= 10 else (min(x_low, 1.0) if x_low >= 0 else x_low)
    y_low, y_high = y_range or (min(0.0, min(ys)), max(ys))
    x_ticks = _ticks(x_low, x_high, log_x, 8 if width > 500 else 5, x_tick_values)
    if integer_x:
        x_ticks = [t for t in x_ticks if float(t).is_integer()] or [x_low, x_high]
    y_ticks = _ticks(y_low, y_high, log_y, 5, None)
    if x_range is None:
        x_low, x_high = min(x_ticks[0], x_low), max(x_ticks[-1], x_high)
    if y_range is None:
        y_low, y_high = min(y_ticks[0], y_low), max(y_ticks[-1], y_high)

    def px(x: float) -> float:
        return left + (x - x_low) / ((x_high - x_low) or 1.0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y_low) / ((y_high - y_low) or 1.0) * plot_h

    def tick_text(tick: float, log: bool) -> str:
        return html.escape(f"{10**tick if log else tick:g}")

    out = [
        (
            f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="{html.escape(title)}" class="chart">'
        ),
        f"<title>{html.escape(title)}</title>",
        (
            f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" '
            'stroke="#999" stroke-width="1"/>'
        ),
    ]
    font = f'font-size="11" {_FONT} fill="#333"'
    for tick in (t for t in y_ticks if y_low - 1e-12 <= t <= y_high + 1e-12):
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" '
            f'stroke="#e4e4e4" stroke-width="1"/><text x="{left - 6}" y="{py(tick) + 4:.1f}" '
            f'text-anchor="end" {font}>{tick_text(tick, log_y)}</text>'
        )
    for tick in (t for t in x_ticks if x_low - 1e-12 <= t <= x_high + 1e-12):
        out.append(
            f'<line x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="#f0f0f0" stroke-width="1"/><text x="{px(tick):.1f}" '
            f'y="{top + plot_h + 15}" text-anchor="middle" {font}>{tick_text(tick, log_x)}</text>'
        )
    out += [
        (
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 32}" text-anchor="middle" '
            f'font-size="12" {_FONT} fill="#111">{html.escape(x_label)}</text>'
        ),
        (
            f'<text transform="translate(14,{top + plot_h / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle" font-size="12" {_FONT} fill="#111">{html.escape(y_label)}</text>'
        ),
    ]
    if reference:
        out.append(
            f'<polyline points="{_points([(px(x), py(y)) for x, y in reference])}" fill="none" '
            'stroke="#888" stroke-width="1.2" stroke-dasharray="4 4"/>'
        )
    for s in series:  # bands first, under every line
        if s.low is None or s.high is None:
            continue
        edges = [(px(x), py(lo), py(hi)) for x, lo, hi in _finite(s.xs, s.low, s.high)]
        if len(edges) > 1:
            outline = [(x, hi) for x, _, hi in edges] + [(x, lo) for x, lo, _ in reversed(edges)]
            out.append(
                f'<polygon points="{_points(outline)}" fill="{s.color}" fill-opacity="0.14"/>'
            )
        out += [
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" stroke="{s.color}" '
            'stroke-width="1.2" stroke-opacity="0.7"/>'
            for x, lo, hi in edges
        ]
    for s in series:
        points = [(px(x), py(y)) for x, y in _finite(s.xs, s.ys)]
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        if len(points) > 1 and s.width > 0:
            out.append(
                f'<polyline points="{_points(points)}" fill="none" stroke="{s.color}" '
                f'stroke-width="{s.width}" stroke-linejoin="round"{dash}/>'
            )
        if len(points) <= 60:
            out += [_marker(s.marker, x, y, s.color) for x, y in points]
    for (row, offset), (label, color, dash, marker, stroke) in zip(placed, entries, strict=True):
        x0, y0 = left + offset, top + plot_h + 50 + row * 20
        if stroke > 0:
            dash = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<line x1="{x0:.1f}" x2="{x0 + 28:.1f}" y1="{y0:.1f}" y2="{y0:.1f}" '
                f'stroke="{color}" stroke-width="{stroke}"{dash}/>'
            )
        out += [
            _marker(marker, x0 + 14, y0, color),
            (
                f'<text x="{x0 + 34:.1f}" y="{y0 + 4:.1f}" font-size="11.5" {_FONT} '
                f'fill="#222">{html.escape(label)}</text>'
            ),
        ]
    out.append("</svg>")
    return "\n".join(part for part in out if part)
