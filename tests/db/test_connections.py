"""The connections one busy ``envoi serve`` opens to PostgreSQL stay within the budget docs/operations.md gives,
and each says in pg_stat_activity which process and which role it belongs to."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest

from envoi.db.engine import connection_budget
from envoi.settings import Settings
from tests.processes import free_port, start_envoi, wait_for_port, wait_for_text
from tests.smtp_sink import SmtpSink

EVENTS = 300
POOL, OVERFLOW = 2, 1  # small: other tests share this server's 100 connections


async def _sample(database_url: str, peaks: Counter[str], stop: asyncio.Event) -> int:
    """Every 20 ms, the connections to the test's database by application_name (the highest count of each in
    ``peaks``); returns the highest total. Nothing else uses this database but the process under test."""
    highest = 0
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while not stop.is_set():
            rows = await (
                await conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY application_name"
                )
            ).fetchall()
            for name, count in rows:
                peaks[name] = max(peaks[name], count)
            highest = max(highest, sum(count for _name, count in rows))
            await asyncio.sleep(0.02)
    return highest


def _event(i: int) -> dict[str, object]:
    ctx = {"firstName": f"U{i}", "resetUrl": f"https://shop.test/reset/{i}"}
    return {"type": "password_reset", "email": f"user{i}@example.com", "ctx": ctx}


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_busy_serve_stays_within_its_documented_connection_budget(
    database_url: str, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    env = {
        "ENVOI_DATABASE_URL": database_url,
        "ENVOI_DATABASE_POOL_SIZE": str(POOL),
        "ENVOI_DATABASE_MAX_OVERFLOW": str(OVERFLOW),
        "ENVOI_WORKER_CONCURRENCY": "4",  # more batches in flight than pooled connections
        "ENVOI_WORKER_BATCH_SIZE": "10",
        "ENVOI_SMTP_URL": smtp_sink.url,
        "ENVOI_DATA_DIR": str(tmp_path / "data"),
        "ENVOI_SCHEDULER_TICK_SECONDS": "0.2",
    }
    budget = connection_budget(
        Settings(database_url=database_url, database_pool_size=POOL, database_max_overflow=OVERFLOW), worker=True
    )
    port, log = free_port(), tmp_path / "serve.log"
    server = start_envoi(["serve", "--port", str(port)], env=env, cwd=tmp_path, output=log.open("wb"))
    peaks: Counter[str] = Counter()
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(database_url, peaks, stop))
    try:
        wait_for_text(log, "workflows.scheduler_leading", timeout=60)
        wait_for_port(port)
        key = (tmp_path / "data" / "api-key").read_text().strip()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:

            async def push(i: int) -> None:
                response = await client.post("/api/v1/events", json=_event(i))
                assert response.status_code == 202, response.text

            for start in range(0, EVENTS, 30):  # 30 requests in flight while the worker sends
                await asyncio.gather(*(push(i) for i in range(start, start + 30)))
        await smtp_sink.wait_for(EVENTS, timeout=120)
    finally:
        stop.set()
        highest = await sampler
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    pid = f"{socket.gethostname()}:{server.pid}"
    assert highest <= budget, (highest, budget, dict(peaks))
    # The pool went as far as it may, never further: the load was enough to need every connection it allows.
    assert peaks[f"envoi serve {pid}"] == POOL + OVERFLOW, dict(peaks)
    assert peaks[f"envoi serve scheduler {pid}"] == 1, dict(peaks)  # the leader's lock, beside the pool
