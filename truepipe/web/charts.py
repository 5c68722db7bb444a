"""Server-rendered charts: small inline SVG, no JavaScript, no chart library.

Two shapes are enough for the scorecard pages:

- `sparkline`: a score's daily trend in a table cell;
- `line_chart`: several named series over the same days, with axes and a legend.

The x axis is calendar days from `start` to `end` (so sparklines of different
people line up, and a weekend without scores is a gap in time, not a kink);
the y axis runs from `lo` (bottom) to `hi` (top), values outside are clamped.
Every piece of text is escaped; numbers are formatted, never interpolated raw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

Point = tuple[dt.date, float]

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito, then greys).
PALETTE = (
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#e69f00",
    "#56b4e9",
    "#7f3c8d",
    "#8c6d31",
    "#3b3b3b",
    "#999999",
)


@dataclass(frozen=True)
class Series:
    """One named line. `dashed` draws a reference line (a team average, say)."""

    name: str
    points: Sequence[Point]
    dashed: bool = False


def _n(value: float) -> str:
    """A coordinate as SVG text: one decimal, no '-0.0'."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def x_for(day: dt.date, start: dt.date, end: dt.date, left: float, width: float) -> float:
    """Where `day` falls between `start` (left edge) and `end` (right edge); one day sits in the middle."""
    span = (end - start).days
    if span <= 0:
        return left + width / 2
    return left + width * (day - start).days / span


def y_for(value: float, lo: float, hi: float, top: float, height: float) -> float:
    """Where `value` falls between `hi` (top edge) and `lo` (bottom edge), clamped to the plot."""
    if hi <= lo:
        return top + height / 2
    share = (min(max(float(value), lo), hi) - lo) / (hi - lo)
    return top + height * (1 - share)


def _in_range(points: Sequence[Point], start: dt.date, end: dt.date) -> list[Point]:
    return sorted((day, float(value)) for day, value in points if start <= day <= end and value is not None)


def tone(value: float | None) -> str:
    """A CSS class for a 0-100 score: good (90+), fair (70+), poor, or none."""
    if value is None:
        return "none"
    return "good" if value >= 90 else "fair" if value >= 70 else "poor"


def sparkline(
    points: Sequence[Point],
    start: dt.date,
    end: dt.date,
    *,
    width: int = 120,
    height: int = 28,
    lo: float = 0,
    hi: float = 100,
    label: str = "",
) -> SafeString:
    """A tiny trend line; the last value gets a dot. No points: a dashed baseline saying so."""
    pad = 3.0
    plot_w, plot_h = width - 2 * pad, height - 2 * pad
    shown = _in_range(points, start, end)
    name = escape(label or "Trend")
    if not shown:
        return mark_safe(
            f'<svg class="spark spark-none" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{name}: no scores"><title>{name}: no scores</title>'
            f'<line x1="{_n(pad)}" y1="{_n(height / 2)}" x2="{_n(width - pad)}" y2="{_n(height / 2)}" '
            f'class="spark-empty"/></svg>'
        )
    coords = [
        (x_for(day, start, end, pad, plot_w), y_for(value, lo, hi, pad, plot_h)) for day, value in shown
    ]
    last_day, last_value = shown[-1]
    first_value = shown[0][1]
    summary = escape(
        f"{label or 'Trend'}: {first_value:g} on {shown[0][0]:%b %d} to {last_value:g} on {last_day:%b %d}"
    )
    parts = [
        f'<svg class="spark spark-{tone(last_value)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{summary}"><title>{summary}</title>'
    ]
    if len(coords) > 1:
        line = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
        parts.append(f'<polyline points="{line}" class="spark-line"/>')
    x, y = coords[-1]
    parts.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="2.5" class="spark-dot"/></svg>')
    return mark_safe("".join(parts))


def _day_ticks(start: dt.date, end: dt.date, most: int = 6) -> list[dt.date]:
    span = (end - start).days
    if span <= 0:
        return [start]
    step = max(1, -(-span // (most - 1)))
    ticks = [start + dt.timedelta(days=d) for d in range(0, span + 1, step)]
    if ticks[-1] != end:
        if (end - ticks[-1]).days < step / 2:
            ticks[-1] = end
        else:
            ticks.append(end)
    return ticks


def line_chart(
    series: Sequence[Series],
    start: dt.date,
    end: dt.date,
    *,
    width: int = 720,
    height: int = 240,
    narrow_width: int = 360,
    narrow_height: int = 220,
    lo: float = 0,
    hi: float = 100,
    title: str = "",
    y_ticks: Sequence[float] = (0, 25, 50, 75, 100),
) -> SafeString:
    """Several series over the days start..end, with gridlines, day labels and a legend.

    Rendered as a <figure> holding the chart twice, drawn for a wide and for a
    narrow (phone) container, so that its text stays legible at either size (the
    stylesheet shows one); each scales to its container's width (viewBox). The
    legend is HTML below, so it wraps on a phone. Each point has a tooltip.
    """
    caption = escape(title or "Trend")
    drawn = [
        (item, _in_range(item.points, start, end), PALETTE[index % len(PALETTE)])
        for index, item in enumerate(series)
    ]
    parts = ['<figure class="chart">']
    for size, (w, h, ticks) in (("wide", (width, height, 6)), ("narrow", (narrow_width, narrow_height, 4))):
        parts.append(_chart_svg(drawn, start, end, w, h, lo, hi, caption, y_ticks, ticks, size))
    legend = []
    for item, points, colour in drawn:
        last = f" {points[-1][1]:g}" if points else " (no scores)"
        legend.append(
            f'<li><span class="swatch{" dashed" if item.dashed else ""}" style="--swatch:{colour}"></span>'
            f'{escape(item.name)}<span class="muted">{escape(last)}</span></li>'
        )
    if legend:
        parts.append(f'<figcaption><ul class="legend">{"".join(legend)}</ul></figcaption>')
    parts.append("</figure>")
    return mark_safe("".join(parts))


def _chart_svg(
    drawn: list[tuple[Series, list[Point], str]],
    start: dt.date,
    end: dt.date,
    width: int,
    height: int,
    lo: float,
    hi: float,
    caption: str,
    y_ticks: Sequence[float],
    day_ticks: int,
    size: str,
) -> str:
    left, right, top, bottom = 34.0, 12.0, 10.0, 24.0
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg class="line-chart {size}" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" '
        f'role="img" aria-label="{caption}"><title>{caption}</title>'
    ]
    for tick in y_ticks:
        y = y_for(tick, lo, hi, top, plot_h)
        parts.append(
            f'<line class="grid" x1="{_n(left)}" x2="{_n(width - right)}" y1="{_n(y)}" y2="{_n(y)}"/>'
            f'<text class="axis" x="{_n(left - 6)}" y="{_n(y + 4)}" text-anchor="end">{tick:g}</text>'
        )
    for day in _day_ticks(start, end, day_ticks):
        x = x_for(day, start, end, left, plot_w)
        anchor = (
            "start" if day == start and day != end else "end" if day == end and day != start else "middle"
        )
        parts.append(
            f'<text class="axis" x="{_n(x)}" y="{_n(height - 6)}" text-anchor="{anchor}">{day:%b %d}</text>'
        )
    if not any(points for _, points, _ in drawn):
        parts.append(
            f'<text class="empty" x="{_n(left + plot_w / 2)}" y="{_n(top + plot_h / 2)}" '
            f'text-anchor="middle">No scores in this period</text>'
        )
    for item, points, colour in drawn:
        name = escape(item.name)
        dash = ' stroke-dasharray="6 4"' if item.dashed else ""
        coords = [
            (x_for(day, start, end, left, plot_w), y_for(value, lo, hi, top, plot_h), day, value)
            for day, value in points
        ]
        parts.append(f'<g class="series" stroke="{colour}" fill="{colour}"><title>{name}</title>')
        if len(coords) > 1:
            line = " ".join(f"{_n(x)},{_n(y)}" for x, y, _, _ in coords)
            parts.append(f'<polyline points="{line}" fill="none" stroke-width="2"{dash}/>')
        for x, y, day, value in coords:
            parts.append(
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{2 if len(coords) > 30 else 3}">'
                f"<title>{name}, {day:%a %b %d}: {value:g}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: a label, a value (0-100), and a note printed after it."""

    label: str
    value: float | None
    note: str = ""
    flagged: bool = False


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 560, row: int = 26) -> SafeString:
    """Horizontal bars on a 0-100 scale, one per row: for comparing rates between groups.
    A bar without a value (nothing to rate) is a dashed stub saying so; a flagged one is drawn
    in the warning colour."""
    label_w, note_w, pad = 170.0, 150.0, 6.0
    plot_w = width - label_w - note_w - pad
    height = int(row * len(bars) + 2 * pad + 14)
    name = escape(title)
    parts = [
        f'<svg class="bars" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{name}">'
        f"<title>{name}</title>"
    ]
    for tick in (0, 50, 100):
        x = label_w + plot_w * tick / 100
        parts.append(
            f'<line x1="{_n(x)}" y1="{_n(pad)}" x2="{_n(x)}" y2="{_n(height - 14)}" class="bars-grid"/>'
            f'<text x="{_n(x)}" y="{_n(height - 2)}" class="bars-tick" text-anchor="middle">{tick}%</text>'
        )
    for i, bar in enumerate(bars):
        y = pad + i * row
        mid = y + row / 2
        parts.append(
            f'<text x="{_n(label_w - 8)}" y="{_n(mid + 4)}" text-anchor="end" class="bars-label">'
            f"{escape(bar.label)}</text>"
        )
        if bar.value is None:
            parts.append(
                f'<line x1="{_n(label_w)}" y1="{_n(mid)}" x2="{_n(label_w + 24)}" y2="{_n(mid)}" '
                'class="bars-none"/>'
            )
        else:
            w = plot_w * max(0.0, min(100.0, bar.value)) / 100
            css = "bars-bar bars-flag" if bar.flagged else "bars-bar"
            parts.append(
                f'<rect x="{_n(label_w)}" y="{_n(y + 5)}" width="{_n(max(w, 1.0))}" height="{_n(row - 10)}" '
                f'class="{css}"><title>{escape(bar.label)}: {bar.value:.0f}%</title></rect>'
            )
        parts.append(
            f'<text x="{_n(label_w + plot_w + 8)}" y="{_n(mid + 4)}" class="bars-note">'
            f"{escape(bar.note)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
