"""Waking the open streams of the operators whose notifications changed, in every process.

Writers call ``announce`` in their transaction. At commit, this process's hub wakes the streams at once (an
engine event), and on PostgreSQL a NOTIFY reaches the one listening connection of every other process (see
``hear_notifications``: envoi.db.listen's connection, shared with the doorbell, the access cache, the providers).
On SQLite, where no NOTIFY exists, each process looks for new rows once a second (another process, such as
``envoi notify``, may write to the same file). A woken stream reads what is new itself: wake-ups carry no data,
so a lost or repeated one costs a query, never a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from envoi.db.listen import Listener
from envoi.db.notify import announce_at_commit, on_commit
from envoi.notifications.models import Notification

log = structlog.get_logger(__name__)

CHANNEL = "envoi_notifications"
_PENDING = "envoi.notified_operators"  # in the connection's info until its transaction ends


async def announce(session: AsyncSession, operator_ids: Iterable[int]) -> None:
    """Once the caller's transaction commits (and only then), wake these operators' streams everywhere."""
    await announce_at_commit(session, CHANNEL, _PENDING, sorted(set(operator_ids)))


class Subscription:
    """One open stream's doorbell."""

    def __init__(self, hub: NotificationHub, operator_id: int) -> None:
        self.hub = hub
        self.operator_id = operator_id
        self._rung = asyncio.Event()

    def ring(self) -> None:
        self._rung.set()

    async def wait(self, seconds: float) -> bool:
        """Until rung, the hub closes, or ``seconds`` pass; returns whether it was rung."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._rung.wait(), seconds)
        rung = self._rung.is_set()
        self._rung.clear()
        return rung


class NotificationHub:
    """A process's register of open streams by operator. Waking is cheap and may be spurious."""

    def __init__(self) -> None:
        self._subscriptions: dict[int, set[Subscription]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running = False  # set by the application's lifespan, which also starts the follower
        self.closed = False

    def watch(self, engine: AsyncEngine) -> None:
        """Wake this process's streams when one of its own transactions commits what ``announce`` recorded."""
        on_commit(engine.sync_engine, _PENDING, self.wake)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.running, self.closed = True, False

    @contextlib.contextmanager
    def subscribe(self, operator_id: int) -> Iterator[Subscription]:
        subscription = Subscription(self, operator_id)
        self._subscriptions.setdefault(operator_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscriptions.get(operator_id, set())
            subscribers.discard(subscription)
            if not subscribers:
                self._subscriptions.pop(operator_id, None)

    def streams_of(self, operator_id: int) -> int:
        return len(self._subscriptions.get(operator_id, ()))

    @property
    def streams(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscriptions.values())

    def wake(self, operator_ids: Iterable[int]) -> None:
        for operator_id in operator_ids:
            for subscription in self._subscriptions.get(operator_id, ()):
                subscription.ring()

    def wake_all(self) -> None:
        self.wake(list(self._subscriptions))

    def close(self) -> None:
        """End every stream (at shutdown): each finishes what it is sending and returns."""
        self.closed, self.running = True, False
        self.wake_all()

    def close_soon(self) -> None:
        """``close`` from a signal handler or another thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.close)


def hear_notifications(listener: Listener, hub: NotificationHub) -> None:
    """PostgreSQL: wake the streams of the operators another process notified; after a reconnection, all of them
    (whatever was announced while nobody listened)."""
    listener.on(CHANNEL, lambda payload: hub.wake(int(v) for v in payload.split(",") if v.isdigit()), hub.wake_all)


async def follow_notifications(
    hub: NotificationHub,
    url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    poll_seconds: float,
    stop: asyncio.Event,
) -> None:
    """SQLite: wake this process's streams for notifications written by other processes, until ``stop``. On
    PostgreSQL there is nothing to do here: the process's listener does it (``hear_notifications``)."""
    if not url.startswith("postgresql"):
        await _poll(hub, sessionmaker, poll_seconds, stop)


async def _poll(
    hub: NotificationHub, sessionmaker: async_sessionmaker[AsyncSession], seconds: float, stop: asyncio.Event
) -> None:
    """SQLite: one indexed query per period for the whole process, whatever the number of streams, and none
    while no stream is open. The first look, at start, is older than any stream's: none misses a wake-up."""
    newest: int | None = None
    while not stop.is_set():
        if newest is None or hub.streams:
            try:
                async with sessionmaker.begin() as session:
                    latest = await session.scalar(select(func.max(Notification.id))) or 0
                    if newest is not None and latest > newest:
                        hub.wake(
                            await session.scalars(
                                select(Notification.operator_id).where(Notification.id > newest).distinct()
                            )
                        )
                    newest = latest
            except Exception as error:  # whatever it was, the next look may succeed: this loop must not end
                log.warning("notifications.poll_failed", error=type(error).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
