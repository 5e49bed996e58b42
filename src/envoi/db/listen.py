"""One PostgreSQL LISTEN connection per process, whatever the channels.

Every part of a process that hears other processes (the worker's doorbell, the operators' notification streams,
the access cache, the providers) registers a channel here; one connection to ``settings.resolved_direct_url()``
(a pooler in transaction mode cannot hold a LISTEN) listens on them all and hands each notice to its channel's
callback. A NOTIFY sent while no connection listens is lost for good, so after each (re)connection every
channel's ``missed`` callback runs: the doorbell rings, the streams wake, the access cache empties, the
providers are read again. While it is down, the worker's poll, the access cache's lifetime and the providers'
revision poll still do their work, only more slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg import sql

log = structlog.get_logger(__name__)
_CHECK_STOP_SECONDS = 1.0
_MAX_BACKOFF_SECONDS = 5.0

Callback = Callable[..., object]  # returns None, or an awaitable that the listener runs as a task


def application_name() -> str:
    """How pg_stat_activity shows the connection: with the process id, so each process's count can be checked."""
    return f"envoi listen {os.getpid()}"


def libpq_url(sqlalchemy_url: str) -> str:
    """psycopg takes libpq's URL, without SQLAlchemy's driver name."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass(frozen=True)
class _Channel:
    notice: Callable[[str], object]
    missed: Callable[[], object] | None


class Listener:
    """A process's LISTEN connection. Register every channel with ``on`` before ``run``."""

    def __init__(self, url: str) -> None:
        self.url = libpq_url(url)
        self._channels: dict[str, _Channel] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.running = False
        self.connected = asyncio.Event()  # set while a connection listens on every channel

    def on(self, channel: str, notice: Callable[[str], object], missed: Callable[[], object] | None = None) -> None:
        """``notice(payload)`` for each NOTIFY on ``channel``; ``missed()`` after each (re)connection, when
        notices may have been lost. Either may return an awaitable: it runs as a task of its own, so a slow one
        never holds up the others' notices."""
        if self.running:
            raise RuntimeError(f"register {channel} before the listener runs: it listens once per connection")
        self._channels[channel] = _Channel(notice, missed)

    @property
    def channels(self) -> list[str]:
        return sorted(self._channels)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop``, reconnecting after any error (a restart, a failover, a network cut)."""
        if not self._channels:
            return
        self.running = True
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self._listen(stop)
                except Exception as error:  # whatever happened, listen again: this loop must never end early
                    failures = 1 if self.connected.is_set() else failures + 1  # it had connected: start over
                    self.connected.clear()
                    log.warning("db.listen_failed", error=type(error).__name__, detail=str(error)[:200])
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), min(_MAX_BACKOFF_SECONDS, 0.25 * 2**failures))
        finally:
            self.connected.clear()
            self.running = False
            for task in self._tasks:
                task.cancel()

    async def _listen(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            application_name=application_name(),
            # TCP keepalives: a connection whose peer vanished (a failover, a dropped NAT entry) fails within about
            # a minute instead of waiting forever for notices that will never come.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        ) as conn:
            # One round trip, and pg_stat_activity shows every channel this connection listens on.
            await conn.execute(
                sql.SQL("; ").join(sql.SQL("LISTEN {}").format(sql.Identifier(name)) for name in self.channels)
            )
            self.connected.set()
            log.info("db.listening", channels=self.channels)
            for name, channel in self._channels.items():
                if channel.missed is not None:
                    self._call(name, channel.missed)
            while not stop.is_set():
                async for notice in conn.notifies(timeout=_CHECK_STOP_SECONDS):
                    if (found := self._channels.get(notice.channel)) is not None:
                        self._call(notice.channel, found.notice, notice.payload)
            self.connected.clear()

    def _call(self, channel: str, callback: Callback, *args: str) -> None:
        try:
            result = callback(*args)
        except Exception as error:  # one channel's bug must not deafen the others
            log.error("db.listen_callback_failed", channel=channel, error=type(error).__name__)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(lambda done: self._finished(channel, done))

    def _finished(self, channel: str, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("db.listen_callback_failed", channel=channel, error=type(error).__name__)
