"""The checks of ``envoi doctor`` that need no network beyond the database: settings, database, schema, connection
budget, and the configuration's own values. Each check is a small function returning findings; none raises."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import psycopg
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from envoi.db.engine import connection_budget, create_engine, pool_overflow
from envoi.db.outage import store_unavailable
from envoi.db.partitions import days_ahead
from envoi.observability.health import schema_state
from envoi.settings import Settings

Status = Literal["ok", "warning", "error"]
PGBOUNCER_PORT = 6432  # PgBouncer's default port: a URL with it most likely leads to a pooler
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Finding:
    status: Status
    subject: str  # what was checked, in the user's words: "Database", "Provider smtp", "DKIM example.com"
    text: str
    details: tuple[str, ...] = ()  # lines to copy: the DNS record to publish...


@dataclass
class Doctor:
    """What the checks share: the configuration, the database once reached, how long a network check may take."""

    settings: Settings
    timeout: float
    dns_server: tuple[str, int] | None = None
    engine: AsyncEngine | None = None  # set by check_database when the database answered
    schema_current: bool = False  # set by check_schema: the tables can be read (the API's providers...)
    postgresql: dict[str, str] = field(default_factory=dict)  # server settings read by check_database

    async def aclose(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()


def settings_problems(error: ValidationError) -> list[Finding]:
    """Pydantic's errors as one line per variable: its name, why, and what was given unless it may be secret."""
    findings = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        variable = f"ENVOI_{name.upper()}" if name else "Settings"
        annotation = str(Settings.model_fields[name].annotation) if name in Settings.model_fields else ""
        secret = SecretStr.__name__ in annotation or any(word in name for word in ("url", "secret", "password"))
        given = "" if secret or item.get("input") is None else f" (given: {item['input']!r})"
        findings.append(Finding("error", variable, f"{item['msg']}{given}"))
    return findings


def database_place(settings: Settings) -> str:
    """Where the database is, without the password: host:port/name, or the SQLite file."""
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


async def check_database(doctor: Doctor) -> list[Finding]:
    settings = doctor.settings
    place = database_place(settings)
    if settings.is_sqlite and not await asyncio.to_thread(Path(place).is_file):  # connecting would create an empty one
        return [Finding("error", "Database", f"the SQLite file {place} does not exist: run envoi migrate")]
    engine = create_engine(settings)
    try:
        async with asyncio.timeout(doctor.timeout), engine.connect() as connection:
            if settings.is_sqlite:
                version = f"SQLite {sqlite3.sqlite_version}"
            else:
                for name in ("server_version", "max_connections", "superuser_reserved_connections"):
                    doctor.postgresql[name] = str(await connection.scalar(text(f"SHOW {name}")))
                doctor.postgresql["in_use"] = str(
                    await connection.scalar(text("SELECT count(*) FROM pg_stat_activity"))
                )
                version = f"PostgreSQL {doctor.postgresql['server_version'].split()[0]}"
    except TimeoutError:
        await engine.dispose()
        return [Finding("error", "Database", f"{place} did not answer within {doctor.timeout:g} s")]
    except SQLAlchemyError as error:
        await engine.dispose()
        return [Finding("error", "Database", f"cannot use {place}: {_why(error)}")]
    doctor.engine = engine
    return [Finding("ok", "Database", f"{version} answers at {place}")]


def _why(error: SQLAlchemyError) -> str:
    """libpq's own reason (role or database missing, password refused, connection refused), never a traceback."""
    original = error.orig if isinstance(error, DBAPIError) else None
    if isinstance(original, psycopg.Error):
        reason = str(original).rpartition(" failed: ")[2].splitlines()[0].removeprefix("FATAL:").strip()
        if reason:
            return reason
    unavailable = store_unavailable(error)
    return str(unavailable.details["cause"]) if unavailable is not None else type(error).__name__


async def check_schema(doctor: Doctor) -> list[Finding]:
    if doctor.engine is None:
        return [Finding("error", "Schema", "not checked: the database cannot be used")]
    state = await schema_state(doctor.engine, doctor.timeout)
    if state.problem is not None:
        return [Finding("error", "Schema", state.problem)]
    doctor.schema_current = True
    if state.newer:
        text_ = f"at revision {state.current}, newer than this Envoi's {state.expected}: upgrade Envoi here"
        return [Finding("warning", "Schema", text_)]
    return [Finding("ok", "Schema", f"at revision {state.current}, the one this Envoi expects")]


async def check_partitions(doctor: Doctor) -> list[Finding]:
    """Events are refused past the last day partition (PostgreSQL): the daily purge and every start make them."""
    if doctor.engine is None or not doctor.schema_current:
        return []
    async with doctor.engine.connect() as connection:
        ahead = await connection.run_sync(days_ahead, datetime.now(UTC).date())
    if ahead is None:
        return []
    said = f"events can be received for {ahead} more days after today"
    if ahead < 0:
        said = "no day partition holds today's events: ingestion is refused"
    if ahead < 2:
        fix = "run envoi migrate (it makes them), and check that the purge workflow runs daily"
        return [Finding("error" if ahead < 1 else "warning", "Partitions", f"{said}: {fix}")]
    return [Finding("ok", "Partitions", said)]


async def check_connections(doctor: Doctor) -> list[Finding]:
    """Whether max_connections holds the pools of the processes: each opens its pool, its overflow, and sessions
    of its own (LISTEN, the scheduler's lock)."""
    settings, server = doctor.settings, doctor.postgresql
    if settings.is_sqlite or not server:
        return []
    findings = []
    budget = connection_budget(settings, worker=True)  # envoi serve with its worker: the most
    pool, overflow = settings.database_pool_size, pool_overflow(settings)
    usable = int(server["max_connections"]) - int(server["superuser_reserved_connections"])
    room = usable // budget
    said = (
        f"each process opens up to {budget} (pool {pool} + overflow {overflow} + {budget - pool - overflow} of its "
        f"own: LISTEN, the scheduler's lock); max_connections {server['max_connections']} leaves {usable}, room for "
        f"{room} such process"
        f"{'es' if room != 1 else ''}; {server['in_use']} open now"
    )
    if room < 1:
        findings.append(
            Finding("error", "Connections", f"{said}: lower ENVOI_DATABASE_POOL_SIZE or raise max_connections")
        )
    elif room < 2:
        findings.append(Finding("warning", "Connections", f"{said}: a second process would run out"))
    else:
        findings.append(Finding("ok", "Connections", said))
    return findings


async def check_pooler(doctor: Doctor) -> list[Finding]:
    """LISTEN and the scheduler's lock need a session of their own, which a pooler in transaction mode lends out."""
    settings = doctor.settings
    if settings.is_sqlite or make_url(settings.resolved_database_url()).port != PGBOUNCER_PORT:
        return []
    if settings.database_direct_url:
        return [Finding("ok", "Pooler", "ENVOI_DATABASE_DIRECT_URL is set for LISTEN and the scheduler's lock")]
    said = (
        f"ENVOI_DATABASE_URL uses port {PGBOUNCER_PORT}, PgBouncer's: set ENVOI_DATABASE_DIRECT_URL to the server "
        "itself, for LISTEN and the scheduler's lock, which need a session of their own"
    )
    return [Finding("warning", "Pooler", said)]


async def check_public_url(doctor: Doctor) -> list[Finding]:
    url = doctor.settings.public_url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            Finding("error", "ENVOI_PUBLIC_URL", f"{url!r} is not an http(s) address: links in emails lead nowhere")
        ]
    if parts.scheme != "https":
        return [
            Finding(
                "warning",
                "ENVOI_PUBLIC_URL",
                f"{url} is not https: links in emails and console logins travel unencrypted",
            )
        ]
    return [Finding("ok", "ENVOI_PUBLIC_URL", url)]


async def check_tracking_secret(doctor: Doctor) -> list[Finding]:
    secret = doctor.settings.tracking_secret
    if secret is None:
        return [Finding("ok", "Tracking secret", "a random one kept in the database signs tracking links")]
    length = len(secret.get_secret_value())
    if length < MIN_SECRET_LENGTH:
        return [
            Finding(
                "warning",
                "ENVOI_TRACKING_SECRET",
                f"{length} characters: a short secret can be guessed, and with it links forged; use "
                f"{MIN_SECRET_LENGTH} random ones or more",
            )
        ]
    return [Finding("ok", "ENVOI_TRACKING_SECRET", f"set ({length} characters)")]


async def check_metrics_dir(doctor: Doctor) -> list[Finding]:
    settings = doctor.settings
    directory = (settings.metrics_dir or settings.data_dir / "metrics").absolute()
    kind = filesystem_type(directory)
    if kind is None:
        return [Finding("ok", "Metrics directory", f"{directory} (its filesystem could not be told)")]
    if kind != "tmpfs":
        return [
            Finding(
                "warning",
                "Metrics directory",
                f"{directory} is on {kind}, not a tmpfs: every count is a write to a memory-mapped file there; "
                "set ENVOI_METRICS_DIR under /run or /dev/shm",
            )
        ]
    return [Finding("ok", "Metrics directory", f"{directory} is on a tmpfs")]


def filesystem_type(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The type of the filesystem that holds ``path`` (or would, once created), from the kernel's mount table."""
    try:
        table = mounts.read_text()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind
