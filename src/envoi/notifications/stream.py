"""An operator's notifications as Server-Sent Events.

Each notification is an ``event: notification`` whose ``id`` is the notification's id; the stream sends every
notification of the operator with an id above its cursor, in id order, so a reconnect that sends
``Last-Event-ID`` gets exactly what it missed. ``event: unread`` (no id) carries the unread count whenever it
changes, and a comment every ``notification_heartbeat_seconds`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.notifications.hub import NotificationHub
from envoi.notifications.models import Notification
from envoi.notifications.schemas import NotificationOut
from envoi.notifications.service import newer_than, unread_count

T = TypeVar("T")
RETRY_MILLISECONDS = 2000  # how soon a browser reconnects after the stream ends (a restart, a deploy)
_PAGE = 100


def notification_event(notification: NotificationOut) -> str:
    data = notification.model_dump_json(by_alias=True)
    return f"id: {notification.id}\nevent: notification\ndata: {data}\n\n"


def unread_event(count: int) -> str:
    return f"event: unread\ndata: {json.dumps({'unread': count})}\n\n"


async def _look(
    sessionmaker: async_sessionmaker[AsyncSession], operator_id: int, cursor: int
) -> tuple[list[Notification], int]:
    async with sessionmaker() as session, session.begin():
        return await newer_than(session, operator_id, cursor, limit=_PAGE), await unread_count(session, operator_id)


_running: set[asyncio.Task[Any]] = set()


async def _shielded(work: Coroutine[Any, Any, T]) -> T:
    """A client going away cancels its stream. A query cancelled halfway can leave its connection checked out
    in a transaction (SQLite has only one connection, and the write lock): so the query runs to its end in a
    task of its own, whatever happens to the stream."""
    task = asyncio.ensure_future(work)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return await asyncio.shield(task)


async def notification_stream(
    hub: NotificationHub,
    sessionmaker: async_sessionmaker[AsyncSession],
    operator_id: int,
    after_id: int,
    heartbeat_seconds: float,
    still_allowed: Callable[[], Coroutine[Any, Any, bool]] | None = None,
) -> AsyncIterator[str]:
    """Until the hub closes (shutdown), the client goes away (which cancels the generator), or, checked at each
    heartbeat, the caller may no longer read (logged out, deactivated, key revoked)."""
    with hub.subscribe(operator_id) as subscription:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        cursor, unread_sent = after_id, -1
        beat_at = time.monotonic() + heartbeat_seconds
        while not hub.closed:
            rows, unread = await _shielded(_look(sessionmaker, operator_id, cursor))
            for row in rows:
                yield notification_event(NotificationOut.of(row))
                cursor = row.id
            if unread != unread_sent:
                yield unread_event(unread)
                unread_sent = unread
            if len(rows) == _PAGE:
                continue
            # Woken by a change, or on the heartbeat: either way the next turn looks again, which also covers a
            # wake-up lost while the PostgreSQL listener was reconnecting.
            await subscription.wait(max(0.0, beat_at - time.monotonic()))
            if time.monotonic() >= beat_at:
                if still_allowed is not None and not await _shielded(still_allowed()):
                    return
                yield ": keep-alive\n\n"
                beat_at = time.monotonic() + heartbeat_seconds
