"""Probes for load balancers and orchestrators.

``/healthz`` (liveness): the process answers and reaches its database. ``/readyz`` (readiness): send it traffic;
the database answers within a short timeout, its schema is the one this code expects, and the process is not
shutting down. Both are public and read nothing of the data: one ``SELECT`` of the schema's revision.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from dataclasses import dataclass

import psycopg
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from envoi import __version__
from envoi.db.migrate import alembic_config
from envoi.db.outage import store_unavailable
from envoi.runtime import Runtime

# A probe must answer before the load balancer gives up on it (often 2 to 5 s), whatever the database does.
READY_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["health"])


@dataclass(frozen=True)
class SchemaState:
    """Where the database's schema stands against this code's migrations; ``problem`` is None when usable."""

    expected: str
    current: str | None = None
    problem: str | None = None
    newer: bool = False  # migrated by a newer Envoi: old processes keep running during a rolling upgrade
    reached: bool = True  # False: the problem is the database itself, not its schema


@functools.cache
def _migrations() -> tuple[str, frozenset[str]]:
    """This code's head revision and every revision it knows, read from the scripts once per process."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = sorted(script.get_heads())
    return ",".join(heads), frozenset(revision.revision for revision in script.walk_revisions())


def expected_revision() -> str:
    return _migrations()[0]


async def schema_state(engine: AsyncEngine, within: float = READY_TIMEOUT_SECONDS) -> SchemaState:
    """Read the database's revision (one small query) and compare it with this code's head."""
    expected, known = _migrations()
    try:
        async with asyncio.timeout(within), engine.connect() as connection:
            rows = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except TimeoutError:
        return SchemaState(expected, problem=f"the database did not answer within {within:g} s", reached=False)
    except SQLAlchemyError as error:
        if (unavailable := store_unavailable(error)) is not None:
            return SchemaState(expected, problem=str(unavailable.details["cause"]), reached=False)
        if _no_such_table(error):
            return SchemaState(expected, problem="the database has no Envoi schema: run envoi migrate")
        # Never the driver's message: it may quote the server's address.
        return SchemaState(expected, problem=f"the schema's revision cannot be read ({type(error).__name__})")
    current = ",".join(sorted(rows)) or None
    if current is None:
        return SchemaState(expected, problem="the database has no Envoi schema: run envoi migrate")
    if current == expected:
        return SchemaState(expected, current)
    if all(revision in known for revision in rows):
        problem = f"the database is at revision {current}, this Envoi expects {expected}: run envoi migrate"
        return SchemaState(expected, current, problem)
    return SchemaState(expected, current, newer=True)


def _no_such_table(error: SQLAlchemyError) -> bool:
    original = error.orig if isinstance(error, DBAPIError) else None
    if isinstance(original, psycopg.errors.UndefinedTable):
        return True
    return isinstance(original, sqlite3.OperationalError) and "no such table" in str(original)


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """Alive: the process answers and its database too (503 with the cause otherwise)."""
    runtime: Runtime = request.app.state.runtime
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz",
    responses={
        200: {"description": "Ready: send it requests."},
        503: {"description": "Not ready: `checks` says what is wrong, in plain words."},
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Ready for traffic: the database answers, its schema is current, and the process is not shutting down."""
    body: dict[str, object] = {"version": __version__}
    stopping: asyncio.Event | None = getattr(request.app.state, "stopping", None)
    draining = getattr(request.app.state, "draining", False)  # SIGTERM, during ENVOI_SHUTDOWN_DRAIN_SECONDS
    if draining or (stopping is not None and stopping.is_set()):  # the load balancer stops sending requests
        checks = {"shutdown": "this process is shutting down: it finishes the requests in hand and takes no more"}
        return _answer(503, {"status": "shutting down", **body, "checks": checks})
    runtime: Runtime = request.app.state.runtime
    state = await schema_state(runtime.engine)
    if state.problem is not None:
        checks = {"database": "ok", "schema": state.problem} if state.reached else {"database": state.problem}
        return _answer(503, {"status": "not ready", **body, "checks": checks})
    schema = f"at revision {state.current}"
    if state.newer:
        schema += f", newer than this Envoi's {state.expected} (an upgrade in progress: upgrade this process too)"
    return _answer(200, {"status": "ready", **body, "checks": {"database": "ok", "schema": schema}})


def _answer(status: int, body: dict[str, object]) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
