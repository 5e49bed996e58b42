"""Envoi behind PgBouncer in transaction mode (Debian's 1.18: no protocol-level prepared statements), the way
production runs it: the pool through the pooler, LISTEN and the scheduler's lock on a direct URL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from envoi.db.engine import create_engine
from envoi.settings import Settings
from tests.conftest import pg_database
from tests.processes import free_port, start_envoi, wait_for_port, wait_for_text
from tests.smtp_sink import SmtpSink

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
EVENTS = 300
SERVER_CONNECTIONS = 4  # fewer than the clients' pools: PgBouncer lends each transaction whichever is free


@contextlib.contextmanager
def pgbouncer(database_url: str, log: Path) -> Iterator[str]:
    """A pgbouncer process in transaction mode in front of ``database_url``'s database; yields the URL through it."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    port = free_port()
    # Its own folder, readable by the unprivileged user pgbouncer drops to (it refuses to run as root).
    folder = Path(tempfile.mkdtemp(prefix="envoi-pgbouncer-"))
    folder.chmod(0o755)
    try:
        (folder / "users.txt").write_text(f'"{info["user"]}" ""\n')
        (folder / "pgbouncer.ini").write_text(
            f"[databases]\n{info['dbname']} = host={info['host']} port={info['port']} dbname={info['dbname']}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {folder / 'users.txt'}\nadmin_users = {info['user']}\n"
            f"pool_mode = transaction\ndefault_pool_size = {SERVER_CONNECTIONS}\nmax_client_conn = 200\n"
        )
        for name in ("users.txt", "pgbouncer.ini"):
            (folder / name).chmod(0o644)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with log.open("ab") as output:
            process = subprocess.Popen(
                [PGBOUNCER, *user, str(folder / "pgbouncer.ini")], stdout=output, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(port, timeout=10)
            yield f"postgresql://{info['user']}@127.0.0.1:{port}/{info['dbname']}"
        finally:
            process.send_signal(signal.SIGINT)  # SIGINT: a safe shutdown, waiting for no client
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _pooler_clients(bouncer_url: str) -> list[str]:
    """The application_name of each client connected to the pooler (its admin console speaks psql's protocol)."""
    info = psycopg.conninfo.conninfo_to_dict(bouncer_url)
    where = ["-h", "127.0.0.1", "-p", str(info["port"]), "-U", str(info["user"]), "-d", "pgbouncer"]
    output = subprocess.run(
        ["psql", *where, "-AtF|", "-c", "SHOW CLIENTS"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    # SHOW CLIENTS columns: type|user|database|state|addr|port|local_addr|local_port|connect_time|request_time|
    # wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name
    return [line.split("|")[17] for line in output.splitlines() if line.count("|") >= 17]


def _event(i: int) -> dict[str, object]:
    """A password reset of the demo data that ``envoi serve`` loads."""
    ctx = {"firstName": f"U{i}", "resetUrl": f"https://shop.test/reset/{i}"}
    return {"type": "password_reset", "email": f"user{i}@example.com", "ctx": ctx}


async def _statuses(database_url: str) -> dict[int, int]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute("SELECT status, count(*) FROM events GROUP BY status")).fetchall()
    return {status: count for status, count in rows}


@pytest.mark.slow
async def test_serve_and_worker_behind_pgbouncer_in_transaction_mode_deliver_each_event_once(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    with pg_database("envoi_bouncer") as direct_url, pgbouncer(direct_url, tmp_path / "pgbouncer.log") as pooled:
        env = {
            "ENVOI_DATABASE_URL": pooled,
            "ENVOI_DATABASE_DIRECT_URL": direct_url,  # prepared statements are then off by default
            "ENVOI_DATABASE_POOL_SIZE": "4",
            "ENVOI_DATABASE_MAX_OVERFLOW": "2",
            "ENVOI_SMTP_URL": smtp_sink.url,
            "ENVOI_DATA_DIR": str(tmp_path / "data"),
            "ENVOI_WORKER_BATCH_SIZE": "20",  # many small batches: each statement runs far more than 5 times
            "ENVOI_SCHEDULER_TICK_SECONDS": "0.2",
        }
        migrate_log = tmp_path / "migrate.log"
        migrate = start_envoi(["migrate"], env=env, cwd=tmp_path, output=migrate_log.open("wb"))
        assert migrate.wait(timeout=120) == 0, migrate_log.read_text()

        port = free_port()
        logs = {name: tmp_path / f"{name}.log" for name in ("serve", "worker")}
        serve = start_envoi(
            ["serve", "--no-worker", "--port", str(port)], env=env, cwd=tmp_path, output=logs["serve"].open("wb")
        )
        worker = start_envoi(["worker"], env=env, cwd=tmp_path, output=logs["worker"].open("wb"))
        processes = [serve, worker]
        try:
            wait_for_port(port, timeout=60)
            wait_for_text(logs["worker"], "workflows.scheduler_leading", timeout=30)  # its lock: a direct session
            key = (tmp_path / "data" / "api-key").read_text().strip()
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as client:

                async def push(i: int) -> None:
                    response = await client.post("/api/v1/events", json=_event(i))
                    assert response.status_code == 202, response.text

                for start in range(0, EVENTS // 2, 25):  # one at a time, 25 requests in flight
                    await asyncio.gather(*(push(i) for i in range(start, start + 25)))
                for start in range(EVENTS // 2, EVENTS, 50):  # and in batches
                    batch = [_event(i) for i in range(start, start + 50)]
                    response = await client.post("/api/v1/events/batch", json={"events": batch})
                    assert response.status_code == 202, response.text

            await smtp_sink.wait_for(EVENTS, timeout=120)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while (statuses := await _statuses(direct_url)) != {2: EVENTS} and loop.time() < deadline:
                await asyncio.sleep(0.2)
            clients = _pooler_clients(pooled)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(timeout=60) for process in processes]

        assert codes[0] in (0, -signal.SIGTERM) and codes[1] == 0  # uvicorn re-raises the signal once shut down
        assert statuses == {2: EVENTS}  # every event processed
        recipients = Counter(rcpt for mail in smtp_sink.messages for rcpt in mail.rcpt_tos)
        assert set(recipients) == {f"user{i}@example.com" for i in range(EVENTS)}
        assert max(recipients.values()) == 1  # and sent once
        # Both processes' pools really went through the pooler, which had only a few server sessions to lend.
        assert any(name.startswith("envoi serve ") for name in clients), clients
        assert any(name.startswith("envoi worker ") for name in clients), clients
        for name, log in logs.items():
            output = log.read_text()
            assert "prepared statement" not in output, f"{name}: {output[-3000:]}"
            assert "Traceback" not in output, f"{name}: {output[-3000:]}"


async def _run_queries(settings: Settings, clients: int, transactions: int) -> None:
    """``clients`` pooled connections each running the same query in ``transactions`` transactions."""
    engine = create_engine(settings)
    try:

        async def client() -> None:
            async with engine.connect() as conn:
                for _ in range(transactions):
                    await conn.execute(text("SELECT count(*) FROM pg_class WHERE relkind = :kind"), {"kind": "r"})
                    await conn.commit()
                    await asyncio.sleep(0)

        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await engine.dispose()


async def test_prepared_statements_break_behind_pgbouncer_unless_turned_off(tmp_path: Path) -> None:
    """What happens without the setting (explicitly on): PostgreSQL's own words about prepared statements, on
    the first query after psycopg's fifth run of it; with it off, the same load runs clean."""
    with pg_database("envoi_bouncer") as direct_url, pgbouncer(direct_url, tmp_path / "pgbouncer.log") as pooled:
        settings = Settings(database_url=pooled, data_dir=tmp_path, database_pool_size=6, database_max_overflow=0)
        with pytest.raises(DBAPIError, match=r"prepared statement \"_pg3_\d+\" (does not exist|already exists)"):
            forced = {"database_prepared_statements": True, "database_direct_url": direct_url}
            await _run_queries(settings.model_copy(update=forced), 6, 20)
        await _run_queries(settings.model_copy(update={"database_prepared_statements": False}), 6, 20)
        # Unset, a direct URL is the sign of a pooler: prepared statements are off.
        await _run_queries(settings.model_copy(update={"database_direct_url": direct_url}), 6, 20)
