"""Small static SVG charts for the HTML report: no scripts, no fonts to fetch, no network.

Each function returns an ``<svg>`` string sized in CSS pixels. Colours come from :data:`KEPT`,
:data:`REJECTED` and :data:`PALETTE`, chosen to stay apart for colour-blind readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

KEPT = "#3b75af"
REJECTED = "#e08a2c"
THRESHOLD = "#c0392b"
GRID = "#e3e6ea"
INK = "#2b2f36"
MUTED = "#6b7280"
PALETTE = ("#3b75af", "#e08a2c", "#519e3e", "#8d69b8", "#c44e52", "#84584e", "#d684bd", "#7f7f7f", "#bcbd22", "#17becf")


def _num(v: float) -> str:
    """Compact axis label."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:.0f}k" if abs(v) >= 10_000 else f"{v / 1000:.1f}".removesuffix(".0") + "k"
    if abs(v) >= 10 or float(v).is_integer():
        return f"{v:.0f}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _svg(width: float, height: float, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}">{body}</svg>'
    )


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 11, color: str = INK, weight: str = "normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{color}" '
        f'font-weight="{weight}">{escape(s)}</text>'
    )


def bars(items: Sequence[tuple[str, float]], *, width: int = 520, fmt=None, color: str = KEPT, label: str = "bar chart") -> str:
    """Horizontal bars, one per ``(label, value)``, value printed at the bar's end."""
    fmt = fmt or (lambda v: f"{v:,.0f}")
    if not items:
        return ""
    row, left, right = 20, min(190, 12 + 7 * max(len(k) for k, _ in items)), 90
    height = row * len(items) + 6
    top = max(v for _, v in items) or 1.0
    span = width - left - right
    body = []
    for i, (name, value) in enumerate(items):
        y = 3 + i * row
        w = max(1.0, span * value / top) if value > 0 else 0.0
        body.append(_text(left - 8, y + 13, name, anchor="end"))
        body.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 7}" rx="2" fill="{color}"><title>{escape(name)}: {escape(fmt(value))}</title></rect>'
        )
        body.append(_text(left + w + 6, y + 13, fmt(value), color=MUTED))
    return _svg(width, height, "".join(body), label)


def stacked_bars(
    rows: Sequence[tuple[str, dict[str, float]]],
    categories: Sequence[str],
    *,
    width: int = 520,
    label: str = "stacked bars",
    palette: Sequence[str] = PALETTE,
) -> str:
    """One horizontal 100% bar per row, split by category, with a legend underneath."""
    if not rows:
        return ""
    row, left, right = 22, 60, 60
    span = width - left - right
    body = []
    for i, (name, parts) in enumerate(rows):
        y = 3 + i * row
        total = sum(parts.values()) or 1.0
        x = float(left)
        body.append(_text(left - 8, y + 14, name, anchor="end"))
        for j, cat in enumerate(categories):
            n = parts.get(cat, 0)
            if not n:
                continue
            w = span * n / total
            body.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{palette[j % len(palette)]}">'
                f"<title>{escape(name)} {escape(cat)}: {n:,.0f} ({100 * n / total:.1f}%)</title></rect>"
            )
            x += w
        body.append(_text(left + span + 6, y + 14, f"{total:,.0f}", color=MUTED))
    y = 3 + len(rows) * row + 6
    x = float(left)
    for j, cat in enumerate(categories):
        body.append(f'<rect x="{x:.1f}" y="{y}" width="10" height="10" fill="{palette[j % len(palette)]}"/>')
        body.append(_text(x + 14, y + 9, cat, size=10))
        x += 24 + 6.5 * len(cat)
    return _svg(width, y + 16, "".join(body), label)


def histogram(
    edges: Sequence[float],
    kept: Sequence[int],
    rejected: Sequence[int],
    *,
    threshold: float | None = None,
    width: int = 230,
    height: int = 120,
    title: str = "",
) -> str:
    """Kept (blue) and rejected (orange) counts stacked per bin; ``threshold`` as a red dashed line."""
    left, right, top, bottom = 30, 8, 16, 20
    pw, ph = width - left - right, height - top - bottom
    totals = [a + b for a, b in zip(kept, rejected, strict=True)]
    peak = max(totals) if totals and max(totals) > 0 else 1
    lo, hi = float(edges[0]), float(edges[-1])

    def sx(v: float) -> float:
        return left + pw * (min(max(v, lo), hi) - lo) / (hi - lo)

    body = [_text(left, 11, title, size=11, weight="600")]
    body.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="{GRID}"/>')
    body.append(_text(left - 4, top + 8, _num(peak), anchor="end", size=9, color=MUTED))
    body.append(_text(left - 4, top + ph, "0", anchor="end", size=9, color=MUTED))
    for i, (k, r) in enumerate(zip(kept, rejected, strict=True)):
        x0, x1 = sx(edges[i]), sx(edges[i + 1])
        w = max(0.5, x1 - x0 - 1)
        hk, hr = ph * k / peak, ph * r / peak
        tip = f"[{_num(edges[i])}, {_num(edges[i + 1])}): kept {k:,}, rejected {r:,}"
        if k:
            body.append(
                f'<rect x="{x0:.1f}" y="{top + ph - hk:.1f}" width="{w:.1f}" height="{hk:.1f}" fill="{KEPT}"><title>{escape(tip)}</title></rect>'
            )
        if r:
            body.append(
                f'<rect x="{x0:.1f}" y="{top + ph - hk - hr:.1f}" width="{w:.1f}" height="{hr:.1f}" fill="{REJECTED}"><title>{escape(tip)}</title></rect>'
            )
    for v in (lo, (lo + hi) / 2, hi):
        body.append(_text(sx(v), height - 6, _num(v), anchor="middle", size=9, color=MUTED))
    if threshold is not None:
        x = sx(threshold)
        body.append(
            f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{top + ph}" stroke="{THRESHOLD}" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
        anchor = "end" if x > left + pw * 0.7 else "start"
        body.append(
            _text(x + (-3 if anchor == "end" else 3), top + 8, f"{threshold:.2f}", anchor=anchor, size=9, color=THRESHOLD)
        )
    return _svg(width, height, "".join(body), title or "histogram")


def scatter(
    xs: Sequence[float],
    ys: Sequence[float],
    kept: Sequence[bool],
    *,
    width: int = 300,
    height: int = 260,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
) -> str:
    """Log-log scatter of positive values, kept in blue and rejected in orange, with the diagonal."""
    left, right, top, bottom = 38, 10, 18, 30
    pw, ph = width - left - right, height - top - bottom
    pts = [(x, y, k) for x, y, k in zip(xs, ys, kept, strict=True) if x > 0 and y > 0]
    if not pts:
        return ""
    lo = math.log10(min(min(p[0] for p in pts), min(p[1] for p in pts)))
    hi = math.log10(max(max(p[0] for p in pts), max(p[1] for p in pts)))
    lo, hi = math.floor(lo), max(math.ceil(hi), math.floor(lo) + 1)

    def sx(v: float) -> float:
        return left + pw * (math.log10(v) - lo) / (hi - lo)

    def sy(v: float) -> float:
        return top + ph - ph * (math.log10(v) - lo) / (hi - lo)

    body = [_text(left, 12, title, size=11, weight="600")]
    body.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="{GRID}"/>')
    for e in range(lo, hi + 1):
        v = 10.0**e
        body.append(_text(sx(v), top + ph + 12, _num(v), anchor="middle", size=9, color=MUTED))
        body.append(_text(left - 4, sy(v) + 3, _num(v), anchor="end", size=9, color=MUTED))
    body.append(
        f'<line x1="{sx(10.0**lo):.1f}" y1="{sy(10.0**lo):.1f}" x2="{sx(10.0**hi):.1f}" y2="{sy(10.0**hi):.1f}" stroke="{GRID}" stroke-dasharray="3 3"/>'
    )
    # rejected on top so that the rarer class stays visible
    for x, y, k in sorted(pts, key=lambda p: p[2], reverse=True):
        body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="1.8" fill="{KEPT if k else REJECTED}" fill-opacity="0.55"/>')
    body.append(_text(left + pw / 2, height - 4, xlabel, anchor="middle", size=10, color=MUTED))
    body.append(
        f'<text transform="translate(10 {top + ph / 2:.0f}) rotate(-90)" text-anchor="middle" font-size="10" fill="{MUTED}">{escape(ylabel)}</text>'
    )
    return _svg(width, height, "".join(body), title or "scatter")
