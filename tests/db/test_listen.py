"""One LISTEN connection per process on PostgreSQL: every channel a process hears arrives over it, it comes back
after the server drops it (saying that notices may have been missed), and a running ``envoi serve`` or
``envoi worker`` holds exactly one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from envoi.db.listen import Listener, application_name
from tests.conftest import pg_database
from tests.processes import free_port, start_envoi, wait_for_port

DEADLINE = 20.0  # generous: the machine is shared; every wait below polls and ends as soon as it can


@pytest.fixture
def pg_url(migrated_templates: dict[str, str]) -> Iterator[str]:
    with pg_database("envoi_listen", template=migrated_templates["postgresql"]) as url:
        yield url


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE} s"
        await asyncio.sleep(0.05)


async def _listening(url: str) -> list[tuple[str, str]]:
    """(application_name, query) of each connection of this database that listens."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows = await conn.execute(
            "SELECT application_name, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%' ORDER BY application_name"
        )
        return [(str(name), str(query)) for name, query in await rows.fetchall()]


@pytest.fixture
async def notifier(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[object]]:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        yield conn


async def test_one_connection_hands_each_notice_to_its_channel_and_comes_back_after_a_drop(
    pg_url: str, notifier: psycopg.AsyncConnection[object]
) -> None:
    heard: list[tuple[str, str]] = []
    missed: list[str] = []
    refreshed = asyncio.Event()

    async def refresh(payload: str) -> None:  # a callback may be a coroutine: it runs as a task
        heard.append(("providers", payload))
        refreshed.set()

    listener = Listener(pg_url)
    listener.on("envoi_events", lambda payload: heard.append(("events", payload)), lambda: missed.append("events"))
    listener.on("envoi_providers", refresh, lambda: missed.append("providers"))
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        await asyncio.wait_for(listener.connected.wait(), DEADLINE)
        assert sorted(missed) == ["events", "providers"]  # at the first connection, too: nothing is known yet
        assert await _listening(pg_url) == [(application_name(), 'LISTEN "envoi_events"; LISTEN "envoi_providers"')]

        await notifier.execute("SELECT pg_notify('envoi_events', 'a'), pg_notify('envoi_providers', 'b')")
        await notifier.execute("SELECT pg_notify('envoi_access', 'not ours')")
        await _until(lambda: len(heard) == 2 and refreshed.is_set(), "both notices heard")
        assert sorted(heard) == [("events", "a"), ("providers", "b")]
        with pytest.raises(RuntimeError, match="envoi_access"):
            listener.on("envoi_access", print)  # channels are listened on once per connection: register first

        # The server drops the connection (a restart, a failover): the listener connects again and says that
        # whatever was sent meanwhile may be lost.
        await notifier.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [application_name()]
        )
        await _until(lambda: len(missed) == 4 and listener.connected.is_set(), "listening again")
        await notifier.execute("SELECT pg_notify('envoi_events', 'c')")
        await _until(lambda: ("events", "c") in heard, "a notice after the reconnection")
        assert len(await _listening(pg_url)) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE)
    assert not listener.connected.is_set()


async def test_a_callback_that_fails_does_not_deafen_the_others(
    pg_url: str, notifier: psycopg.AsyncConnection[object]
) -> None:
    heard: list[str] = []

    def broken(_payload: str) -> None:
        raise ValueError("a bug in one channel's callback")

    listener = Listener(pg_url)
    listener.on("envoi_access", broken)
    listener.on("envoi_events", heard.append)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        await asyncio.wait_for(listener.connected.wait(), DEADLINE)
        await notifier.execute("SELECT pg_notify('envoi_access', 'x'), pg_notify('envoi_events', 'y')")
        await _until(lambda: heard == ["y"], "the other channel's notice")
        assert listener.connected.is_set()  # the connection was not dropped for it
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE)


def test_envoi_serve_and_envoi_worker_each_hold_one_listening_connection(pg_url: str, tmp_path: Path) -> None:
    env = {
        "ENVOI_DATABASE_URL": pg_url,
        "ENVOI_DATA_DIR": str(tmp_path / "data"),
        "ENVOI_LOAD_DEMO_DATA": "false",
    }
    port = free_port()
    serve = start_envoi(
        ["serve", "--port", str(port)], env=env, cwd=tmp_path, output=(tmp_path / "serve.log").open("ab")
    )
    worker = start_envoi(["worker"], env=env, cwd=tmp_path, output=(tmp_path / "worker.log").open("ab"))
    try:
        wait_for_port(port, timeout=60)
        expected = {f"envoi listen {serve.pid}", f"envoi listen {worker.pid}"}

        async def both_listen() -> list[tuple[str, str]]:
            deadline = time.monotonic() + 60
            while True:
                found = await _listening(pg_url)
                if {name for name, _ in found} == expected:
                    return found
                for process, log in ((serve, "serve.log"), (worker, "worker.log")):
                    assert process.poll() is None, (tmp_path / log).read_text()[-3000:]
                assert time.monotonic() < deadline, f"listening connections: {found}"
                await asyncio.sleep(0.1)

        found = dict(asyncio.run(both_listen()))
        assert len(found) == 2  # one each, whatever the number of channels, and no other LISTEN anywhere
        channels = {"envoi_access", "envoi_events", "envoi_notifications", "envoi_providers"}
        assert found[f"envoi listen {serve.pid}"] == "; ".join(f'LISTEN "{name}"' for name in sorted(channels))
        assert found[f"envoi listen {worker.pid}"] == 'LISTEN "envoi_events"; LISTEN "envoi_providers"'
    finally:
        for process in (serve, worker):
            process.terminate()
        for process in (serve, worker):
            process.wait(timeout=30)
