"""The signing secret: made once, kept in the database, the same for every process on that database."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from envoi.db.meta import get_meta
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.tracking import secret as secret_module
from envoi.tracking.links import make_token, verify_token
from envoi.tracking.secret import META_KEY, tracking_secret


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a process that has read no secret yet."""
    monkeypatch.setattr(secret_module, "_cache", {})


async def secret_of(runtime: Runtime) -> bytes:
    async with runtime.transaction() as session:
        return await tracking_secret(session, runtime.settings)


async def stored(runtime: Runtime) -> str | None:
    async with runtime.transaction() as session:
        return await get_meta(session, META_KEY)


async def test_a_token_made_by_one_process_verifies_in_another(runtime: Runtime, settings: Settings) -> None:
    token = make_token(42, await secret_of(runtime))
    secret_module.forget_cached_secrets()  # the other process has read nothing
    other = Runtime.create(settings)
    try:
        assert verify_token(token, await secret_of(other)) == 42
    finally:
        await other.aclose()
    assert (await secret_of(runtime)).decode() == await stored(runtime)


async def test_two_processes_making_it_at_once_end_with_the_same(runtime: Runtime, settings: Settings) -> None:
    other = Runtime.create(settings)
    try:
        async with runtime.transaction() as session:
            first = await tracking_secret(session, runtime.settings)  # made, not committed yet
            secret_module.forget_cached_secrets()
            racing = asyncio.create_task(secret_of(other))  # waits for the first one's transaction
            await asyncio.sleep(0.3)
            assert not racing.done()
        assert await racing == first
    finally:
        await other.aclose()
    assert first.decode() == await stored(runtime)


async def test_a_secret_made_in_a_rolled_back_transaction_is_never_used(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError):
        async with runtime.transaction() as session:
            lost = await tracking_secret(session, runtime.settings)
            raise RuntimeError("the batch failed")
    kept = await secret_of(runtime)
    assert kept != lost
    assert kept.decode() == await stored(runtime)


async def test_a_configured_secret_is_used_and_nothing_is_stored(runtime: Runtime, settings: Settings) -> None:
    configured = Runtime.create(settings.model_copy(update={"tracking_secret": SecretStr("from the environment")}))
    try:
        assert await secret_of(configured) == b"from the environment"
    finally:
        await configured.aclose()
    assert await stored(runtime) is None
