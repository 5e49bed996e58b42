"""Telling "the database cannot take it now" from every other database error.

Down, restarting, unreachable, out of disk or locked: the same request succeeds once the database is back, so it
is answered 503 with ``Retry-After`` (REST) or a SOAP Server fault, and the background loops back off and go on.
Any other database error is a bug and stays one. The cause is told in plain words, never with the driver's message,
which can hold the statement, its parameters or the server's address.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import psycopg
import structlog
from sqlalchemy import exc

from envoi.errors import StoreUnavailable

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Retry-After, in seconds: a restart or a lost connection lasts seconds; a full disk needs space to be freed.
_SOON, _LATER, _MUCH_LATER = 1, 2, 30
_LOST = ("the connection to the database was lost", _LATER)
_UNREACHABLE = ("the database cannot be reached", _LATER)
_POSTGRESQL = {  # SQLSTATE -> cause
    "57P01": ("the database is shutting down", _LATER),  # admin_shutdown: a restart, pg_terminate_backend
    "57P02": ("the database crashed and is restarting", _LATER),
    "57P03": ("the database is starting up or shutting down", _LATER),  # cannot_connect_now
    "53100": ("the database server's disk is full", _MUCH_LATER),
    "53200": ("the database server is out of memory", _LATER),
    "53300": ("the database server has no free connection", _SOON),  # too_many_connections
    "25006": ("the database is read-only (a standby)", _LATER),  # after a failover, until the new primary
    "58030": ("the database server could not read or write its files", _LATER),  # io_error
}
_SQLITE = {  # primary result code -> cause
    sqlite3.SQLITE_FULL: ("the disk holding the database is full", _MUCH_LATER),
    sqlite3.SQLITE_IOERR: ("the database file could not be read or written (disk I/O error)", _LATER),
    sqlite3.SQLITE_BUSY: ("the database is locked by another process", _SOON),
    sqlite3.SQLITE_LOCKED: ("the database is locked by another process", _SOON),
    sqlite3.SQLITE_PROTOCOL: ("the database is locked by another process", _SOON),
    sqlite3.SQLITE_CANTOPEN: ("the database file cannot be opened", _LATER),
    sqlite3.SQLITE_READONLY: ("the database file is read-only", _LATER),
    sqlite3.SQLITE_NOMEM: ("the database is out of memory", _LATER),
}


def _cause(error: BaseException) -> tuple[str, int] | None:
    for link in _chain(error):
        if isinstance(link, exc.TimeoutError):  # the pool's: every connection is in use
            return "every database connection is busy", _SOON
        if isinstance(link, psycopg.Error):
            state = link.sqlstate or ""
            if state == "23514" and str(link).startswith("no partition of relation"):  # see envoi.db.partitions
                return "no day partition holds events of today (envoi migrate makes them)", _MUCH_LATER
            if state in _POSTGRESQL:
                return _POSTGRESQL[state]
            if state.startswith("08"):  # connection_exception and its subclasses
                return _LOST
            if not state and isinstance(link, psycopg.OperationalError | psycopg.InterfaceError):
                return _UNREACHABLE  # refused, reset, closed by the server: libpq says so without a SQLSTATE
        if isinstance(link, sqlite3.Error):
            code = getattr(link, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _SQLITE:
                return _SQLITE[code & 0xFF]
        if isinstance(link, exc.DBAPIError) and link.connection_invalidated:
            return _LOST
    return None


def _chain(error: BaseException) -> list[BaseException]:
    """The error, the driver's error it wraps, and what caused them."""
    links: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending and len(links) < 8:
        link = pending.pop(0)
        if link is None or link in links:
            continue
        links.append(link)
        pending += [getattr(link, "orig", None), link.__cause__, link.__context__]
    return links


def store_unavailable(error: BaseException) -> StoreUnavailable | None:
    """The 503 to answer for ``error`` when it means the database cannot take requests now; None otherwise."""
    found = _cause(error)
    if found is None:
        return None
    cause, seconds = found
    return StoreUnavailable(
        f"The database cannot take requests now: {cause}. Nothing was stored; try again in {seconds} seconds.",
        retry_after=seconds,
        details={"cause": cause},
    )


class OutageLog:
    """One warning when an outage starts, then at most one every ``every`` seconds with how many requests it
    refused since: a database away for a minute must not write a line (and a traceback) per request."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last = -1e9
        self._refused = 0

    def refused(self, where: str, unavailable: StoreUnavailable) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            log.warning("store.unavailable", where=where, cause=unavailable.details["cause"], refused=self._refused)
            self._last, self._refused = now, 0


outages = OutageLog()  # the process's own: requests, the ingestion group, SOAP


def fail_group(
    waiting: Iterable[asyncio.Future[Any]], error: Exception, *, where: str, message: str, **context: object
) -> None:
    """Answer each request still waiting on a group whose shared transaction failed with ``error``: the outage's
    503, or, for a bug, a 503 all the same (the clients may retry) after logging its traceback."""
    failure = store_unavailable(error)
    if failure is not None:
        outages.refused(where, failure)
    else:
        log.exception(f"{where}.group_failed", **context)
        failure = StoreUnavailable(message, retry_after=1)
    for future in waiting:
        if not future.done():
            future.set_exception(failure)


async def retry_while_unavailable(attempt: Callable[[], Awaitable[T]], *, within: float, what: str) -> T:
    """``attempt()`` again, backing off, for as long as the database is unavailable and ``within`` seconds have
    not passed; any other error, or the last one, is raised. For work already done outside the database (a batch
    sent) whose recording must not be lost to a restart."""
    deadline = time.monotonic() + within
    wait = 0.25
    while True:
        try:
            return await attempt()
        except Exception as error:
            unavailable = store_unavailable(error)
            if unavailable is None or time.monotonic() + wait > deadline:
                raise
            log.warning(f"{what}.retrying", cause=unavailable.details["cause"], seconds=wait)
        await asyncio.sleep(wait)
        wait = min(wait * 2, 5.0)
