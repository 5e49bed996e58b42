"""Async engine and session factory for SQLite (WAL, immediate transactions) and PostgreSQL (psycopg 3), and the
connection budget of a process: what it may open to the database at most."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from envoi.db.base import dump_json
from envoi.settings import Settings

# Sessions of their own on PostgreSQL, beside the pool: one LISTEN connection per process, whatever it hears
# (envoi.db.listen), and the scheduler's leader lock where the worker runs and the scheduler may lead.
LISTEN_CONNECTIONS = 1
SCHEDULER_CONNECTIONS = 1


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite writes one transaction at a time anyway, and every transaction here begins
        # IMMEDIATE. Waiting in the pool's FIFO queue is fair; waiting in SQLite's busy handler is not (it
        # polls with growing sleeps, and a waiter was seen starving for two seconds behind the others).
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            # Every use of a connection ends in COMMIT or ROLLBACK (sessions are always used as transactions),
            # so the pool's own rollback at check-in is a wasted round trip to the driver's thread.
            pool_reset_on_return=None,
            connect_args={"timeout": 30},
            json_serializer=dump_json,
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=pool_overflow(settings),
        pool_pre_ping=True,
        connect_args=postgresql_connect_args(settings),
        json_serializer=dump_json,
    )


def create_direct_engine(settings: Settings, purpose: str) -> AsyncEngine:
    """An engine without a pool on the direct URL, for a connection that must keep its session for as long as
    it is held (a session advisory lock): a pooler in transaction mode would hand that session to others."""
    return create_async_engine(
        settings.resolved_direct_url(),
        poolclass=NullPool,
        connect_args=postgresql_connect_args(settings, purpose),
        json_serializer=dump_json,
    )


def pool_overflow(settings: Settings) -> int:
    """Connections opened beyond the pool at peaks (closed again when returned)."""
    if settings.database_max_overflow is not None:
        return settings.database_max_overflow
    return settings.database_pool_size


def prepared_statements(settings: Settings) -> bool:
    """Whether psycopg may prepare statements on the server. Unset, they are off when a direct URL is given:
    that URL only exists because database_url leads to a pooler, and a pooler in transaction mode (PgBouncer
    before 1.21) hands the next transaction another server session, where the statement does not exist."""
    if settings.database_prepared_statements is not None:
        return settings.database_prepared_statements
    return not settings.database_direct_url


def postgresql_connect_args(settings: Settings, purpose: str | None = None) -> dict[str, Any]:
    """psycopg's connect() arguments: its application_name, and no server-side prepared statements if so set.

    With prepared statements, their plans are generic: the statements psycopg prepares are those run again and
    again (the claim, the record), and on tables partitioned by day a custom plan is planned anew for every
    partition at every run, which doubled PostgreSQL's CPU per message; a generic plan picks the partitions when
    it runs. (PostgreSQL's own choice, plan_cache_mode=auto, never picks it: a custom plan's pruning makes it
    look cheaper every time.)"""
    arguments: dict[str, Any] = {"application_name": application_name(purpose)}
    if not prepared_statements(settings):
        arguments["prepare_threshold"] = None  # psycopg's way to never prepare (default: after 5 executions)
    elif not settings.database_direct_url:  # a pooler refuses startup options: see docs/operations.md
        arguments["options"] = "-c plan_cache_mode=force_generic_plan"
    return arguments


def application_name(purpose: str | None = None) -> str:
    """How a connection shows in pg_stat_activity: "envoi serve web-1:4242" for the pool of that process,
    "envoi worker scheduler web-1:4243" for its leader lock; PostgreSQL keeps 63 bytes of it."""
    words = ["envoi", process_command()] + ([purpose] if purpose else [])
    return f"{' '.join(words)} {socket.gethostname()}:{os.getpid()}".encode()[:63].decode(errors="ignore")


def process_command() -> str:
    """The envoi command this process runs (serve, worker, migrate...), or the program's name (pytest)."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if program in ("envoi", "__main__.py") and len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        return sys.argv[1]
    return program.removesuffix(".py") or "python"


def connection_budget(settings: Settings, *, worker: bool) -> int:
    """The most connections one envoi serve or envoi worker process opens to the database: the pool at its
    peak, the LISTEN connection, and the scheduler's lock where ``worker`` (the delivery worker runs in the
    process: envoi worker, or envoi serve without --no-worker) and the scheduler may lead. A standby opens
    the lock's connection only for the moment of each try. docs/operations.md adds these up per host."""
    if settings.is_sqlite:
        return 1
    total = settings.database_pool_size + pool_overflow(settings) + LISTEN_CONNECTIONS
    if worker and settings.scheduler:
        total += SCHEDULER_CONNECTIONS
    return total


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 driver so that BEGIN below is the only one issued.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a 202 means the event survives a power cut too
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can never fail on upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
