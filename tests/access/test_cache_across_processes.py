"""What one process revokes, the other stops accepting as soon as the NOTIFY arrives (tests/two_processes.py:
two applications against one PostgreSQL database, each cache trusting a Principal ten minutes if not told)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from envoi.access.groups import add_member, create_group
from envoi.access.models import Operator
from envoi.access.operators import create_operator, open_session, session_hash
from envoi.access.permissions import Permission
from envoi.access.service import create_api_key, hash_key
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.two_processes import admin_key, libpq, poll, shared_database, two_processes


@pytest.fixture
def pg_settings(migrated_templates: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    with shared_database(migrated_templates, tmp_path) as settings:
        yield settings


async def _operator(runtime: Runtime, groups: list[str]) -> tuple[Operator, str, str]:
    """An operator in ``groups``, with an API key and a console session."""
    async with runtime.transaction() as session:
        operator = await create_operator(session, email="ada@example.com", name="Ada", password="x" * 12)
        for group in groups:
            await add_member(session, group, operator.id)
        _key, key = await create_api_key(session, "ada", operator_id=operator.id)
        token = await open_session(session, operator, timedelta(hours=1), "console")
    return operator, key, token


@contextlib.asynccontextmanager
async def access_notices(settings: Settings) -> AsyncIterator[list[str]]:
    """Every payload sent on the access channel, as another process would hear it."""
    heard: list[str] = []
    async with await psycopg.AsyncConnection.connect(libpq(settings), autocommit=True) as conn:
        await conn.execute("LISTEN envoi_access")

        async def read() -> None:
            async for notice in conn.notifies():
                heard.append(notice.payload)

        task = asyncio.create_task(read())
        try:
            yield heard
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_key_revoked_in_one_process_is_refused_by_the_other(pg_settings: Settings) -> None:
    async with two_processes(pg_settings) as (a, b):
        admin = await admin_key(a.runtime)
        async with a.runtime.transaction() as session:
            key, plaintext = await create_api_key(session, "billing")
        assert await a.get("/api/v1/me", key=plaintext) == 200  # both now hold it in their caches
        assert await b.get("/api/v1/me", key=plaintext) == 200

        async with access_notices(pg_settings) as heard:
            assert (await a.call("DELETE", f"/api/v1/api-keys/{key.id}", key=admin)).status_code == 204
            assert await a.get("/api/v1/me", key=plaintext) == 401  # at commit, in the process that revoked it
            await poll(lambda: b.get("/api/v1/me", key=plaintext), 401, "B still accepts the revoked key")
            await poll(lambda: _copy(heard), [f"key:{hash_key(plaintext)}"], "the announcement")
        assert await b.get("/api/v1/me", key=admin) == 200  # nobody else was forgotten for it


async def test_a_logged_out_session_is_refused_by_the_other_and_never_announced_in_clear(
    pg_settings: Settings,
) -> None:
    async with two_processes(pg_settings) as (a, b):
        _operator_row, _key, token = await _operator(a.runtime, ["viewers"])
        assert await a.get("/api/v1/me", session=token) == 200
        assert await b.get("/api/v1/me", session=token) == 200

        async with access_notices(pg_settings) as heard:
            assert (await a.call("POST", "/console/logout", session=token)).status_code == 303
            await poll(lambda: b.get("/api/v1/me", session=token), 401, "B still accepts the logged-out session")
            await poll(lambda: _copy(heard), [f"session:{session_hash(token)}"], "the announcement")
        assert token not in str(heard)


async def test_an_operator_deactivated_in_one_process_loses_access_in_the_other(pg_settings: Settings) -> None:
    async with two_processes(pg_settings) as (a, b):
        admin = await admin_key(a.runtime)
        operator, key, token = await _operator(a.runtime, ["viewers"])
        assert await b.get("/api/v1/events", key=key) == 200
        assert await b.get("/api/v1/events", session=token) == 200

        changed = await a.call("PATCH", f"/api/v1/operators/{operator.id}", key=admin, json={"active": False})
        assert changed.status_code == 200, changed.text
        await poll(lambda: b.get("/api/v1/events", key=key), 401, "B still accepts their key")
        assert await b.get("/api/v1/events", session=token) == 401


async def test_a_groups_new_permissions_apply_in_the_other_process(pg_settings: Settings) -> None:
    async with two_processes(pg_settings) as (a, b):
        admin = await admin_key(a.runtime)
        async with a.runtime.transaction() as session:
            await create_group(session, "readers", "Readers", [Permission.VIEW_EVENTS])
        _operator_row, key, _token = await _operator(a.runtime, ["readers"])
        assert await b.get("/api/v1/events", key=key) == 200

        changed = await a.call("PATCH", "/api/v1/groups/readers", key=admin, json={"permissions": []})
        assert changed.status_code == 200, changed.text
        await poll(lambda: b.get("/api/v1/events", key=key), 403, "B still gives the group's old permission")


async def _copy(heard: list[str]) -> list[str]:
    return list(heard)
