"""The monitoring page's plots, drawn here as inline SVG: no script, no external asset, every label escaped.

Each plot is an ``<svg id=...>`` with a title and a description for screen readers; each bar is a
``<rect class="bar ...">`` carrying its numbers in ``data-*`` attributes and a ``<title>`` tooltip, so that
a reader, a test or a browser can count what is drawn. Styles (the classes below) come from the page.
"""

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from app.api.html_pages import text
from app.domain.classifiers.lifecycle import ActivePeriod
from app.service.monitoring import Daily, Histogram, Line

W = 720
LEFT, RIGHT, TOP = 48, 16, 16


_e = text


def _svg(plot_id: str, title: str, desc: str, height: int, body: Sequence[str]) -> str:
    return (
        f'<svg id="{_e(plot_id)}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-labelledby="{_e(plot_id)}-title" aria-describedby="{_e(plot_id)}-desc" '
        f'viewBox="0 0 {W} {height}" width="{W}" height="{height}"><title id="{_e(plot_id)}-title">'
        f'{_e(title)}</title><desc id="{_e(plot_id)}-desc">{_e(desc)}</desc>{"".join(body)}</svg>'
    )


def _scale(tallest: int) -> tuple[int, int]:
    """A y axis for counts up to ``tallest``: (its top, its tick step), about five ticks."""
    step = max(1, math.ceil(tallest / 5))
    return step * max(1, math.ceil(tallest / step)), step


def _legend(labels: Sequence[str], classes: Sequence[str], y: float) -> tuple[list[str], float]:
    """Swatches and labels from ``y`` on, in as many rows as they need; and the y below the last row."""
    parts, x = [], float(LEFT)
    for label, cls in zip(labels, classes, strict=True):
        width = 30 + 7 * len(label)
        if x > LEFT and x + width > W - RIGHT:
            x, y = float(LEFT), y + 16
        parts.append(
            f'<rect class="swatch {cls}" x="{x:.1f}" y="{y}" width="10" height="10"/>'
            f'<text x="{x + 14:.1f}" y="{y + 9}">{_e(label)}</text>'
        )
        x += width
    return parts, y + 16


def _y_axis(base: float, height: float, ymax: int, step: int) -> list[str]:
    parts = [f'<line class="axis" x1="{LEFT}" y1="{base - height}" x2="{LEFT}" y2="{base}"/>']
    for n in range(0, ymax + 1, step):
        y = base - n / ymax * height
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.2f}" x2="{W - RIGHT}" y2="{y:.2f}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.2f}" text-anchor="end">{n}</text>'
        )
    return parts


def stacked_days(plot_id: str, title: str, daily: Daily, classes: Sequence[str], empty: str) -> str:
    """Bars per UTC day, each stacked from its series' counts (bottom first); ``classes`` per series."""
    base, plot_h = 200, 200 - TOP
    band = (W - LEFT - RIGHT) / max(1, len(daily.days))
    tallest = max((sum(s.counts[i] for s in daily.series) for i in range(len(daily.days))), default=0)
    ymax, step = _scale(tallest)
    parts = _y_axis(base, plot_h, ymax, step)
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{W - RIGHT}" y2="{base}"/>')
    every = max(1, math.ceil(len(daily.days) / 10))
    for i, day in enumerate(daily.days):
        x = LEFT + i * band
        if i % every == 0 or i == len(daily.days) - 1:
            parts.append(
                f'<text x="{x + band / 2:.2f}" y="{base + 16}" text-anchor="middle">{day:%m-%d}</text>'
            )
        top = 0
        for series, cls in zip(daily.series, classes, strict=True):
            n = series.counts[i]
            if not n:
                continue
            y0, y1 = base - (top + n) / ymax * plot_h, base - top / ymax * plot_h
            parts.append(
                f'<rect class="bar {cls}" data-series="{_e(series.label)}" data-day="{day.isoformat()}" '
                f'data-count="{n}" x="{x + band * 0.1:.2f}" y="{y0:.2f}" width="{band * 0.8:.2f}" '
                f'height="{y1 - y0:.2f}"><title>{day.isoformat()}: {n} {_e(series.label)}</title></rect>'
            )
            top += n
    parts.append(
        f'<text x="{LEFT + (W - LEFT - RIGHT) / 2}" y="{base + 34}" text-anchor="middle">'
        "Day recorded (UTC)</text>"
    )
    if not daily.total:
        parts.append(
            f'<text class="empty" x="{W / 2}" y="{base / 2}" text-anchor="middle">{_e(empty)}</text>'
        )
    labels = [f"{s.label}: {s.total}" for s in daily.series]
    legend, bottom = _legend(labels, classes, base + 46)
    first, last = daily.days[0], daily.days[-1]
    desc = (
        f"Bars per day from {first.isoformat()} to {last.isoformat()}, {daily.total} decisions in all: "
        + ", ".join(labels)
        + "."
    )
    return _svg(plot_id, title, desc, round(bottom), parts + legend)


def log_histogram(plot_id: str, title: str, histogram: Histogram, lines: Sequence[Line]) -> str:
    """Stacked bins on a log10 pg/mL axis, with the risk cutoff and the limits of detection drawn."""
    top, base = 56, 250
    lo, hi, plot_h = histogram.lo, histogram.hi, base - top
    width = W - LEFT - RIGHT
    classes = [f"il6-{i}" for i in range(len(histogram.series))]

    def x(log10: float) -> float:
        return LEFT + (log10 - lo) / (hi - lo) * width

    tallest = max(
        (sum(s.counts[i] for s in histogram.series) for i in range(len(histogram.edges) - 1)), default=0
    )
    ymax, step = _scale(tallest)
    parts = _y_axis(base, plot_h, ymax, step)
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{LEFT + width}" y2="{base}"/>')
    parts += [
        f'<line class="tick" x1="{x(k):.2f}" y1="{base}" x2="{x(k):.2f}" y2="{base + 5}"/>'
        f'<text x="{x(k):.2f}" y="{base + 18}" text-anchor="middle">{10.0**k:g}</text>'
        for k in range(lo, hi + 1)
    ]
    parts.append(
        f'<text x="{LEFT + width / 2}" y="{base + 36}" text-anchor="middle">Serum IL6, pg/mL '
        "(log scale)</text>"
    )
    for i, (a, b) in enumerate(pairwise(histogram.edges)):
        stacked = 0
        for series, cls in zip(histogram.series, classes, strict=True):
            n = series.counts[i]
            if not n:
                continue
            y0, y1 = base - (stacked + n) / ymax * plot_h, base - stacked / ymax * plot_h
            parts.append(
                f'<rect class="bar {cls}" data-series="{_e(series.label)}" data-count="{n}" '
                f'data-from-pg-per-ml="{10**a:.4g}" data-to-pg-per-ml="{10**b:.4g}" x="{x(a) + 0.5:.2f}" '
                f'y="{y0:.2f}" width="{max(x(b) - x(a) - 1, 0.5):.2f}" height="{y1 - y0:.2f}"><title>'
                f"{n} {_e(series.label)}: IL6 {10**a:.3g} to {10**b:.3g} pg/mL</title></rect>"
            )
            stacked += n
    for i, line in enumerate(lines):
        if not Decimal(10) ** lo <= line.pg_per_ml <= Decimal(10) ** hi:
            continue
        lx = x(float(line.pg_per_ml.log10()))
        left_half = lx < LEFT + width / 2  # the label runs towards the middle; labels stack in 3 rows
        short = ("cutoff " if line.kind == "cutoff" else "LOD ") + f"{line.pg_per_ml}"
        parts.append(
            f'<line class="{_e(line.kind)}" data-pg-per-ml="{line.pg_per_ml}" x1="{lx:.2f}" y1="{top}" '
            f'x2="{lx:.2f}" y2="{base}"><title>{_e(line.label)}</title></line>'
            f'<text x="{lx + (4 if left_half else -4):.2f}" y="{top - 6 - 13 * (i % 3)}" '
            f'text-anchor="{"start" if left_half else "end"}">{_e(short)}</text>'
        )
    labels = [f"{s.label}: {s.total}" for s in histogram.series]
    legend, bottom = _legend(labels, classes, base + 46)
    desc = (
        f"Histogram of {histogram.sampled} decided results on a log10 axis from {10.0**lo:g} to "
        f"{10.0**hi:g} pg/mL ({', '.join(labels)})"
        + "".join(f"; a vertical line at the {line.label}" for line in lines)
        + "."
    )
    return _svg(plot_id, title, desc, round(bottom), parts + legend)


def share_bar(plot_id: str, title: str, parts_: Sequence[tuple[str, int]], classes: Sequence[str]) -> str:
    """One bar split by share of the whole, each part labelled with its count and percentage."""
    width = W - LEFT - RIGHT
    total = sum(n for _, n in parts_)
    parts, x = [], float(LEFT)
    for (label, n), cls in zip(parts_, classes, strict=True):
        if not n:
            continue
        w = n / total * width
        parts.append(
            f'<rect class="bar {cls}" data-series="{_e(label)}" data-count="{n}" x="{x:.2f}" y="8" '
            f'width="{w:.2f}" height="28"><title>{_e(label)}: {n} of {total} ({n / total:.0%})</title></rect>'
        )
        x += w
    if not total:
        parts.append(f'<rect class="none" x="{LEFT}" y="8" width="{width}" height="28"/>')
    labels = [f"{label}: {n} ({n / total if total else 0:.0%})" for label, n in parts_]
    legend, bottom = _legend(labels, classes, 52)
    desc = f"Of {total} decisions: " + ", ".join(labels) + "."
    return _svg(plot_id, title, desc, round(bottom), parts + legend)


def horizontal_bars(plot_id: str, title: str, items: Sequence[tuple[str, int]], of: int, cls: str) -> str:
    """A bar per item, longest first as given, with its count and its share of ``of``."""
    row, label_w = 24, 230
    height = max(1, len(items)) * row + 12
    widest = max((n for _, n in items), default=0) or 1
    parts = []
    for i, (label, n) in enumerate(items):
        y = 6 + i * row
        w = n / widest * (W - label_w - 120)
        share = f"{n / of:.0%}" if of else "-"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_e(label)}</text>'
            f'<rect class="bar {cls}" data-series="{_e(label)}" data-count="{n}" x="{label_w}" y="{y}" '
            f'width="{max(w, 1):.2f}" height="{row - 6}"><title>{_e(label)}: {n}</title></rect>'
            f'<text x="{label_w + w + 6:.2f}" y="{y + 15}">{n} ({share})</text>'
        )
    if not items:
        parts.append(f'<text class="empty" x="{label_w}" y="22">Nothing to show.</text>')
    desc = "; ".join(f"{label}: {n}" for label, n in items) or "Nothing to show."
    return _svg(plot_id, title, desc, height, parts)


def timeline(
    plot_id: str, title: str, periods: Sequence[ActivePeriod], since: datetime, now: datetime
) -> str:
    """A row per version, a bar over each period it was active, on a time axis from ``since`` (or the
    first period, if earlier) to ``now``."""
    versions = list(dict.fromkeys(p.version for p in periods))
    label_w, row = 110, 26
    height = len(versions) * row + 44
    start = min([p.since for p in periods] + [since])
    span = max((now - start).total_seconds(), 1.0)
    width = W - label_w - RIGHT

    def x(moment: datetime) -> float:
        return label_w + (moment - start).total_seconds() / span * width

    parts = [f'<line class="axis" x1="{label_w}" y1="{height - 34}" x2="{W - RIGHT}" y2="{height - 34}"/>']
    for i, version in enumerate(versions):
        parts.append(f'<text x="{label_w - 8}" y="{8 + i * row + 14}" text-anchor="end">{_e(version)}</text>')
    for period in periods:
        until = period.until or now
        y = 8 + versions.index(period.version) * row
        state = "active now" if period.until is None else f"until {until:%Y-%m-%d %H:%M} UTC"
        left, right = x(period.since), x(until)
        parts.append(
            f'<rect class="bar period" data-version="{_e(period.version)}" x="{left:.2f}" y="{y}" '
            f'width="{max(right - left, 2):.2f}" height="{row - 8}"><title>{_e(period.version)}: active '
            f"from {period.since:%Y-%m-%d %H:%M} UTC, {state}</title></rect>"
        )
    for moment, anchor in ((start, "start"), (now, "end")):
        parts.append(
            f'<text x="{x(moment):.2f}" y="{height - 18}" text-anchor="{anchor}">{moment:%Y-%m-%d}</text>'
        )
    desc = "; ".join(
        f"{p.version} active from {p.since.isoformat()} " + (f"to {p.until.isoformat()}" if p.until else "on")
        for p in periods
    )
    return _svg(plot_id, title, desc or "No version has been active.", height, parts)
