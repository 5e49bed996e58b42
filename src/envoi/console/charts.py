"""Charts drawn on the server as SVG: nothing to download, nothing to run in the browser. Colours come from
console.css, by class."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup, escape

_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP = 1200, 200, 44, 24, 10


def _svg(width: int, height: int, label: str, body: list[str], *, wide: bool = False) -> Markup:
    """A wide chart fills its box; the others keep their size (and shrink to fit a narrow one)."""
    # Safe: the markup is ours, and every piece of text in ``body`` went through escape() where it was made.
    return Markup(  # noqa: S704
        f'<svg class="chart{" wide" if wide else ""}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(body)}</svg>"
    )


def per_minute_chart(points: list[tuple[datetime, int]], label: str) -> Markup:
    """One bar per minute, with the highest count marked on the axis and a time label every 10 minutes."""
    highest = max((count for _minute, count in points), default=0)
    scale = max(highest, 1)
    plot_width, plot_height = _WIDTH - _LEFT - 4, _HEIGHT - _BOTTOM - _TOP
    step = plot_width / max(len(points), 1)
    base = _TOP + plot_height
    body = [
        f'<line class="axis" x1="{_LEFT}" y1="{base}" x2="{_WIDTH - 4}" y2="{base}"/>',
        f'<text class="tick" x="{_LEFT - 6}" y="{base}" text-anchor="end">0</text>',
    ]
    if highest:
        body.append(f'<text class="tick" x="{_LEFT - 6}" y="{_TOP + 8}" text-anchor="end">{highest}</text>')
    for i, (minute, count) in enumerate(points):
        height = plot_height * count / scale
        x = _LEFT + i * step
        title = escape(f"{minute:%H:%M} UTC: {count} event{'s' if count != 1 else ''}")
        body.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{base - height:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{height:.1f}"><title>{title}</title></rect>'
        )
        if i % 10 == 0 or i == len(points) - 1:
            anchor = "end" if i == len(points) - 1 else "middle"
            body.append(f'<text class="tick" x="{x + step / 2:.1f}" y="{_HEIGHT - 6}" text-anchor="{anchor}">'
                        f"{minute:%H:%M}</text>")  # fmt: skip
    return _svg(_WIDTH, _HEIGHT, label, body, wide=True)


def horizontal_bars(items: list[tuple[str, int]], label: str) -> Markup:
    """One labelled bar per item, its count written after it."""
    row, left, width = 26, 100, 360
    highest = max((count for _name, count in items), default=0) or 1
    body = []
    for i, (name, count) in enumerate(items):
        y = i * row + 4
        length = (width - left - 50) * count / highest
        body += [
            f'<text class="tick" x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(name)}</text>',
            f'<rect class="bar {escape(name)}" x="{left}" y="{y}" width="{length:.1f}" height="18">'
            f"<title>{escape(name)}: {count}</title></rect>",
            f'<text class="value" x="{left + length + 6:.1f}" y="{y + 14}">{count}</text>',
        ]
    return _svg(width, row * len(items) + 8, label, body)


def sent_failed_bars(rows: list[tuple[str, int, int]], label: str) -> Markup:
    """Per channel, a bar for the messages sent and one for those that failed."""
    group, left, width = 50, 60, 360
    highest = max((max(sent, failed) for _c, sent, failed in rows), default=0) or 1
    body = []
    for i, (channel, sent, failed) in enumerate(rows):
        y = i * group + 4
        body.append(f'<text class="tick" x="{left - 8}" y="{y + 24}" text-anchor="end">{escape(channel)}</text>')
        for j, (kind, count) in enumerate((("sent", sent), ("failed", failed))):
            length = (width - left - 80) * count / highest
            top = y + j * 20
            body += [
                f'<rect class="bar {kind}" x="{left}" y="{top}" width="{length:.1f}" height="17">'
                f"<title>{escape(channel)}: {count} {kind}</title></rect>",
                f'<text class="value" x="{left + length + 6:.1f}" y="{top + 13}">{count} {kind}</text>',
            ]
    return _svg(width, group * len(rows) + 4, label, body)


def time_bars(points: list[tuple[datetime, int | None]], label: str, *, noun: str, kind: str = "") -> Markup:
    """One bar per moment (hours, samples; None: nothing known, a gap), the highest count marked on the axis and
    about a dozen time labels; ``kind`` is the bars' class (``failed``, ``paused``…), for their colour."""
    highest = max((count or 0 for _moment, count in points), default=0)
    scale = max(highest, 1)
    plot_width, plot_height = _WIDTH - _LEFT - 4, _HEIGHT - _BOTTOM - _TOP
    step = plot_width / max(len(points), 1)
    base = _TOP + plot_height
    long_span = len(points) > 1 and (points[-1][0] - points[0][0]).total_seconds() > 2 * 86400
    shown = "%m-%d %H:%M" if long_span else "%H:%M"
    every = max(1, -(-len(points) // 12))
    body = [
        f'<line class="axis" x1="{_LEFT}" y1="{base}" x2="{_WIDTH - 4}" y2="{base}"/>',
        f'<text class="tick" x="{_LEFT - 6}" y="{base}" text-anchor="end">0</text>',
    ]
    if highest:
        body.append(f'<text class="tick" x="{_LEFT - 6}" y="{_TOP + 8}" text-anchor="end">{highest}</text>')
    for i, (moment, count) in enumerate(points):
        x = _LEFT + i * step
        if count is not None:
            height = plot_height * count / scale
            title = escape(f"{moment:%Y-%m-%d %H:%M} UTC: {count} {noun}")
            body.append(
                f'<rect class="bar {escape(kind)}" x="{x + 0.5:.1f}" y="{base - height:.1f}" '
                f'width="{max(step - 1, 0.5):.1f}" height="{height:.1f}"><title>{title}</title></rect>'
            )
        if i % every == 0:
            body.append(f'<text class="tick" x="{x + step / 2:.1f}" y="{_HEIGHT - 6}" text-anchor="middle">'
                        f"{moment:{shown}}</text>")  # fmt: skip
    return _svg(_WIDTH, _HEIGHT, label, body, wide=True)
