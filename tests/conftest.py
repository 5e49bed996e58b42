"""Every database test runs on SQLite and on the real PostgreSQL, each in a database it creates and drops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from envoi.access.service import create_api_key
from envoi.app import create_app
from envoi.db.engine import create_engine
from envoi.db.migrate import upgrade_database
from envoi.delivery.worker import Worker
from envoi.events.models import Event, EventStatus
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.smsc import SmscPeer
from tests.smtp_sink import SmtpSink, start_sink

PG_ADMIN_URL = os.environ.get("ENVOI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:  # fail, never skip: PostgreSQL is part of the suite
        pytest.fail(f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {error}", pytrace=False)


@contextlib.contextmanager
def pg_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of ``template``), dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield _pg_url(name)
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(url: str, data_dir: Path) -> None:
    async def run() -> None:
        engine = create_engine(Settings(database_url=url, data_dir=data_dir))
        try:
            await upgrade_database(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Migrate once per run; each test then copies the result (a file, or CREATE DATABASE ... TEMPLATE)."""
    folder = tmp_path_factory.mktemp("template-db")
    sqlite_file = folder / "template.db"
    _migrate(f"sqlite:///{sqlite_file}", folder)
    with pg_database("envoi_tpl") as url:
        _migrate(url, folder)
        yield {"sqlite": str(sqlite_file), "postgresql": url.rpartition("/")[2]}


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, migrated_templates: dict[str, str], tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        target = tmp_path / "envoi.db"
        shutil.copy(migrated_templates["sqlite"], target)
        yield f"sqlite:///{target}"
        return
    with pg_database("envoi_test", template=migrated_templates["postgresql"]) as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Fast retries and polls, so failure paths run in milliseconds."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        retry_base_delay=0.05,
        retry_max_delay=0.2,
        worker_poll_seconds=0.05,
        load_demo_data=False,
        smtp_url=None,
    )


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = start_sink()
    yield sink
    sink.stop()


@pytest.fixture
async def smsc() -> AsyncIterator[SmscPeer]:
    """A real SMPP server (SMSC) on 127.0.0.1."""
    peer = SmscPeer()
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(settings)
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def smtp_runtime(settings: Settings, smtp_sink: SmtpSink) -> AsyncIterator[Runtime]:
    """A runtime whose emails go to the real SMTP sink on 127.0.0.1."""
    runtime = Runtime.create(settings.model_copy(update={"smtp_url": SecretStr(smtp_sink.url)}))
    yield runtime
    await runtime.aclose()


async def make_client(runtime: Runtime) -> httpx.AsyncClient:
    async with runtime.transaction() as session:
        _key, plaintext = await create_api_key(session, "tests")
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://envoi.test",
        headers={"Authorization": f"Bearer {plaintext}"},
    )


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with await make_client(runtime) as client:
        yield client


@pytest.fixture
async def smtp_api(smtp_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with await make_client(smtp_runtime) as client:
        yield client


async def drain(runtime: Runtime, *, timeout: float = 20.0) -> None:
    """Run the worker until no event is pending or processing (waiting out retries), or fail."""
    worker = Worker(runtime.settings, runtime.sessionmaker, runtime.channels, runtime.outbound)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await worker.deliver_one_batch():
            continue
        async with runtime.transaction() as session:
            waiting = await session.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.status.in_((EventStatus.PENDING, EventStatus.PROCESSING)))
            )
        if not waiting:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{waiting} events still waiting after {timeout}s")
        await asyncio.sleep(0.02)
