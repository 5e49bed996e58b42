"""A fresh database per benchmark run, created and dropped by the harness, and emptied between phases."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import psycopg

DATA_TABLES = ("messages", "event_status_changes", "events", "outbox")


def create_database(backend: str, workdir: Path, pg_admin_url: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}"
    name = f"envoi_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return pg_admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str, pg_admin_url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clear_events(url: str) -> None:
    """Empty the queue and what hangs off it, so each phase starts from the same state."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as db:
            for table in DATA_TABLES:
                db.execute(f"DELETE FROM {table}")
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)} CASCADE")


def server_version(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite {sqlite3.sqlite_version}"
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"
