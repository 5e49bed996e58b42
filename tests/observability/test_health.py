"""/healthz and /readyz as a load balancer sees them: ready on a migrated database, not ready (503, in plain words)
when the schema is behind this code, when the database is away or hangs, and from the moment SIGTERM arrives."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from envoi import __version__
from envoi.app import create_app
from envoi.db.migrate import alembic_config
from envoi.observability.health import expected_revision
from envoi.runtime import Runtime
from envoi.server import Server
from envoi.settings import Settings
from tests.processes import free_port

PASSWORD = "hunter2-not-in-probes"


def client_of(runtime: Runtime) -> httpx.AsyncClient:
    """No API key: the probes are public."""
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test")


@pytest.fixture
async def probe(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(runtime) as client:
        yield client


async def test_ready_on_a_migrated_database(probe: httpx.AsyncClient, settings: Settings) -> None:
    response = await probe.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready" and body["version"] == __version__
    assert body["checks"] == {"database": "ok", "schema": f"at revision {expected_revision()}"}
    assert response.headers["Cache-Control"] == "no-store"  # a proxy must not answer for the process
    healthz = await probe.get("/healthz")
    assert healthz.status_code == 200 and healthz.json() == {"status": "ok", "version": __version__}


async def test_not_ready_when_the_database_is_one_migration_behind(probe: httpx.AsyncClient, runtime: Runtime) -> None:
    head = expected_revision()
    previous = ScriptDirectory.from_config(alembic_config()).get_revision(head).down_revision
    assert isinstance(previous, str)

    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, previous)

    async with runtime.engine.begin() as connection:
        await connection.run_sync(downgrade)

    response = await probe.get("/readyz")
    assert response.status_code == 503, response.text
    assert response.json()["status"] == "not ready"
    assert response.json()["checks"] == {
        "database": "ok",
        "schema": f"the database is at revision {previous}, this Envoi expects {head}: run envoi migrate",
    }
    assert (await probe.get("/healthz")).status_code == 200  # alive all the same: restarting it would not help


async def test_not_ready_on_an_empty_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", data_dir=tmp_path, load_demo_data=False)
    runtime = Runtime.create(settings)
    try:
        async with client_of(runtime) as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["schema"] == "the database has no Envoi schema: run envoi migrate"
    finally:
        await runtime.aclose()


async def test_not_ready_at_once_when_postgresql_is_unreachable(tmp_path: Path) -> None:
    url = f"postgresql://envoi:{PASSWORD}@127.0.0.1:{free_port()}/envoi"  # nothing listens there
    settings = Settings(database_url=url, data_dir=tmp_path, load_demo_data=False)
    runtime = Runtime.create(settings)
    try:
        async with client_of(runtime) as client:
            started = time.monotonic()
            response = await client.get("/readyz")
            elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "the database cannot be reached"}
        assert elapsed < 3, elapsed
        assert PASSWORD not in response.text and "127.0.0.1" not in response.text
    finally:
        await runtime.aclose()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word: a database host that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes the handshakes; nobody ever reads
        yield int(listener.getsockname()[1])


async def test_not_ready_within_the_timeout_when_the_database_hangs(tmp_path: Path, silent_server: int) -> None:
    url = f"postgresql://envoi:{PASSWORD}@127.0.0.1:{silent_server}/envoi"
    settings = Settings(database_url=url, data_dir=tmp_path, load_demo_data=False)
    runtime = Runtime.create(settings)
    try:
        async with client_of(runtime) as client:
            started = time.monotonic()
            response = await client.get("/readyz")
            elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "the database did not answer within 2 s"}
        assert 1.5 < elapsed < 4, elapsed
    finally:
        await runtime.aclose()


async def test_not_ready_once_sigterm_arrived(runtime: Runtime) -> None:
    """What uvicorn does at SIGTERM (envoi.server.Server.handle_exit): from then on, 503 'shutting down'."""
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://envoi.test") as client,
    ):
        assert (await client.get("/readyz")).status_code == 200
        server = Server(uvicorn.Config(app), app)
        server.handle_exit(signal.SIGTERM, None)
        response = await client.get("/readyz")
        for _ in range(100):  # the stop is handed to the event loop: it is set on its next turn
            if response.status_code == 503:
                break
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "shutting down"
        assert "shutting down" in response.json()["checks"]["shutdown"]
        assert (await client.get("/healthz")).status_code == 200  # alive: it is finishing what it has in hand
