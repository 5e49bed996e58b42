"""Waking workers when events arrive: LISTEN/NOTIFY on PostgreSQL, an in-process signal everywhere."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "envoi_events"


async def notify_queue(session: AsyncSession) -> None:
    """Delivered at commit, and only if the transaction commits."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Wakeup:
    """An in-process doorbell the worker waits on, so the embedded server sends within milliseconds."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()
