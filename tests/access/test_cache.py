"""The access cache of one process, on SQLite and PostgreSQL: what this process commits it forgets at once,
whoever made the change (an API route, a console page, a service called directly); what another process writes
(``envoi apikey revoke``) it forgets by NOTIFY on PostgreSQL, by the cache's lifetime on SQLite; and a session is
never accepted past its expiry, cached or not."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from envoi.access.api import SESSION_COOKIE
from envoi.access.cache import AccessCache
from envoi.access.groups import add_member, create_group, remove_member, update_group
from envoi.access.operators import create_operator, open_session
from envoi.access.permissions import Permission
from envoi.access.service import create_api_key, revoke_api_key
from envoi.app import create_app
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.processes import start_envoi

DEADLINE = 20.0  # generous (a shared machine); every wait polls and ends as soon as it can


def _app(runtime: Runtime, seconds: float = 600.0) -> FastAPI:
    """An application whose cache would keep a Principal ten minutes if nothing told it to forget."""
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    app.state.key_cache = AccessCache(seconds=seconds)
    return app


async def _get(app: FastAPI, path: str, *, key: str | None = None, session: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {"Cookie": f"{SESSION_COOKIE}={session}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test") as client:
        return (await client.get(path, headers=headers)).status_code


async def _until(app: FastAPI, path: str, status: int, **credentials: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while (found := await _get(app, path, **credentials)) != status:
        assert time.monotonic() < deadline, f"{path} still answers {found} after {DEADLINE} s"
        await asyncio.sleep(0.05)


async def test_what_this_process_commits_is_forgotten_at_commit(runtime: Runtime) -> None:
    app = _app(runtime)
    async with runtime.transaction() as session:
        await create_group(session, "readers", "Readers", [Permission.VIEW_EVENTS])
        operator = await create_operator(session, email="ada@example.com", name="Ada", password="x" * 12)
        await add_member(session, "readers", operator.id)
        service, service_key = await create_api_key(session, "billing")
        _key, ada_key = await create_api_key(session, "ada", operator_id=operator.id)
    assert await _get(app, "/api/v1/me", key=service_key) == 200
    assert await _get(app, "/api/v1/events", key=ada_key) == 200

    # A transaction that rolls back changes nothing: the key still works.
    with pytest.raises(RuntimeError):
        async with runtime.transaction() as session:
            await revoke_api_key(session, service.id)
            raise RuntimeError("changed our mind")
    assert await _get(app, "/api/v1/me", key=service_key) == 200

    async with runtime.transaction() as session:  # as the CLI or a console page does: no route of this app
        await revoke_api_key(session, service.id)
    assert await _get(app, "/api/v1/me", key=service_key) == 401

    async with runtime.transaction() as session:
        await update_group(session, "readers", permissions=[Permission.PUSH_EVENTS])
    assert await _get(app, "/api/v1/events", key=ada_key) == 403

    async with runtime.transaction() as session:
        await remove_member(session, "readers", operator.id)
    assert await _get(app, "/api/v1/me", key=ada_key) == 200  # still her key, now allowed nothing
    assert await _get(app, "/api/v1/events", key=ada_key) == 403


async def test_an_expired_session_is_refused_even_while_cached(runtime: Runtime) -> None:
    app = _app(runtime)
    async with runtime.transaction() as session:
        operator = await create_operator(session, email="ada@example.com", name="Ada", password="x" * 12)
        token = await open_session(session, operator, timedelta(seconds=1.5), "console")
    assert await _get(app, "/api/v1/me", session=token) == 200  # cached, at most until the session ends
    await _until(app, "/api/v1/me", 401, session=token)


async def test_a_key_revoked_by_the_cli_is_refused_by_a_running_server(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    """On PostgreSQL the CLI's NOTIFY reaches the server's listener; on SQLite the cache's lifetime ends it."""
    app = _app(runtime, seconds=1.0 if settings.is_sqlite else 600.0)
    async with runtime.transaction() as session:
        key, plaintext = await create_api_key(session, "billing")
    async with app.router.lifespan_context(app):
        assert await _get(app, "/api/v1/me", key=plaintext) == 200
        env = {"ENVOI_DATABASE_URL": settings.database_url, "ENVOI_DATA_DIR": str(tmp_path / "cli")}
        output = tmp_path / "cli.log"
        cli = start_envoi(["apikey", "revoke", str(key.id)], env=env, cwd=tmp_path, output=output.open("ab"))
        assert await asyncio.to_thread(cli.wait, 60) == 0, output.read_text()
        await _until(app, "/api/v1/me", 401, key=plaintext)
