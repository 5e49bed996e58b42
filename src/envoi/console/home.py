"""The home page: what is arriving, what is waiting, and what went out in the last hour."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from envoi.console import charts
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of
from envoi.console.session import CanView
from envoi.console.stats import overview

router = console_router()


@router.get("/")
async def home(request: Request, _viewer: CanView) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        numbers = await overview(session)
    channels = [(c.channel, c.sent, c.failed) for c in numbers.channels]
    return render(
        request,
        "home.html",
        {
            "numbers": numbers,
            "per_minute_chart": charts.per_minute_chart(numbers.per_minute, "Events received per minute"),
            "queue_chart": charts.horizontal_bars(numbers.queue, "Events waiting, by status"),
            "channels_chart": charts.sent_failed_bars(channels, "Messages sent and failed in the last hour"),
        },
    )
