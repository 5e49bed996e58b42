"""Telling other processes what a transaction changed, once it commits: NOTIFY on PostgreSQL, engine events for
this process; and waking workers when events arrive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "envoi_events"
_PAYLOAD_LIMIT = 7000  # NOTIFY payloads stop at 8000 bytes


async def announce_at_commit(session: AsyncSession, channel: str, pending: str, items: Collection[Any]) -> None:
    """Once the caller's transaction commits (and only then): ``on_commit(engine, pending, …)`` hears ``items`` in
    this process, and every process's LISTEN on ``channel`` hears them joined by commas (NOTIFY is delivered at
    commit, and only if the transaction commits)."""
    if not items:
        return
    connection = await session.connection()
    connection.info.setdefault(pending, set()).update(items)
    for payload in joined(str(item) for item in items):
        await notify(session, channel, payload)


def joined(words: Iterable[str]) -> Iterator[str]:
    """Comma-separated payloads, each under NOTIFY's size limit."""
    chunk: list[str] = []
    size = 0
    for word in words:
        if chunk and size + len(word) + 1 > _PAYLOAD_LIMIT:
            yield ",".join(chunk)
            chunk, size = [], 0
        chunk.append(word)
        size += len(word) + 1
    if chunk:
        yield ",".join(chunk)


def on_commit(engine: Engine, pending: str, committed: Callable[[set[Any]], None]) -> None:
    """Calls ``committed`` with what ``announce_at_commit(…, pending, …)`` recorded in each transaction of ``engine``
    that commits; what a rolled-back transaction recorded is dropped."""

    def _committed(connection: Any) -> None:
        items = connection.info.pop(pending, None)
        if items:
            committed(items)

    def _rolled_back(connection: Any) -> None:
        # A connection the database dropped has no info to read (SQLAlchemy raises, and the rollback that
        # returns it to the pool would end there); its info is cleared when it reconnects.
        if not connection.invalidated:
            connection.info.pop(pending, None)

    event.listen(engine, "commit", _committed)
    event.listen(engine, "rollback", _rolled_back)


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    """PostgreSQL's NOTIFY, delivered at commit, and only if the transaction commits; nothing on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, :data)"), {"channel": channel, "data": payload})


async def notify_queue(session: AsyncSession) -> None:
    """New events for the workers."""
    await notify(session, CHANNEL)


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
