"""PostgreSQL LISTEN: ring the worker's doorbell when another process commits new events."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog

from envoi.db.notify import CHANNEL, Wakeup

log = structlog.get_logger(__name__)


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


async def listen_for_events(url: str, wakeup: Wakeup, stop: asyncio.Event) -> None:
    """Reconnects on its own; the worker's poll interval covers any gap."""
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                log.info("worker.listening", channel=CHANNEL)
                async for _notice in conn.notifies():
                    wakeup.ring()
                    if stop.is_set():
                        break
        except Exception as error:  # a restart, a lost connection, anything: listen again, never stop
            log.warning("worker.listen_failed", error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
