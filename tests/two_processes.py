"""Two processes' worth of Envoi against one PostgreSQL database: two applications, each with its own runtime,
engine and listener, started as ``envoi serve`` starts them (their lifespans), in this test's process.

Each application's access cache is given a lifetime of ten minutes, and the providers are polled once an hour, so
only a NOTIFY can make a process forget or re-read within a test's deadline: a pass cannot come from a timer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import psycopg
from fastapi import FastAPI

from envoi.access.api import CSRF_HEADER, SESSION_COOKIE, csrf_token
from envoi.access.cache import AccessCache
from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.access.service import create_api_key
from envoi.app import create_app
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import pg_database

LONG = 600.0  # the caches' lifetime here
DEADLINE = 20.0  # generous (a shared machine); every wait polls and ends as soon as it can


@contextlib.contextmanager
def shared_database(migrated_templates: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    """The settings both processes use: one new PostgreSQL database."""
    with pg_database("envoi_two", template=migrated_templates["postgresql"]) as url:
        yield Settings(
            database_url=url,
            data_dir=tmp_path,
            worker_poll_seconds=0.05,
            load_demo_data=False,
            smtp_url=None,
            providers_refresh_seconds=3600,  # only a NOTIFY makes a process read the providers again in time
        )


def libpq(settings: Settings) -> str:
    return settings.resolved_database_url().replace("postgresql+psycopg://", "postgresql://")


async def _listeners(settings: Settings) -> int:
    async with await psycopg.AsyncConnection.connect(libpq(settings), autocommit=True) as conn:
        found = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        row = await found.fetchone()
        return int(row[0]) if row else 0


class Client:
    """One process's application, called in memory."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.runtime: Runtime = app.state.runtime

    async def get(self, path: str, *, key: str | None = None, session: str | None = None) -> int:
        return (await self.call("GET", path, key=key, session=session)).status_code

    async def call(
        self, method: str, path: str, *, key: str | None = None, session: str | None = None, json: object = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if session:
            headers |= {"Cookie": f"{SESSION_COOKIE}={session}", CSRF_HEADER: csrf_token(session)}
        async with self.api(headers) as client:
            return await client.request(method, path, json=json)

    def api(self, headers: dict[str, str]) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://envoi.test", headers=headers)


@contextlib.asynccontextmanager
async def two_processes(settings: Settings, *, worker_in_b: bool = False) -> AsyncIterator[tuple[Client, Client]]:
    """Applications A (API only) and B (with the worker if asked), once both listen."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for run_worker in (False, worker_in_b):
            app = create_app(settings, run_worker=run_worker)
            app.state.key_cache = AccessCache(seconds=LONG)
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients.append(Client(app))
        await poll(lambda: _listeners(settings), 2, "both processes listening")
        yield clients[0], clients[1]


async def poll(read: Callable[[], Awaitable[object]], wanted: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while (found := await read()) != wanted:
        assert time.monotonic() < deadline, f"{what}: still {found!r} after {DEADLINE} s"
        await asyncio.sleep(0.05)


async def admin_key(runtime: Runtime) -> str:
    async with runtime.transaction() as session:
        admin = await create_operator(session, email="root@example.com", name="Root", password="x" * 12)
        await add_member(session, "administrators", admin.id)
        _key, plaintext = await create_api_key(session, "root", operator_id=admin.id)
    return plaintext
