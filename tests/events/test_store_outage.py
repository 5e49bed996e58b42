"""The database goes away under load: a real ``envoi serve`` keeps answering, 202 only for what it stored and
503 with Retry-After for the rest, and everything resumes by itself once the database is back.

PostgreSQL: the test suite's own server is restarted in the middle of the run (and left running). SQLite: the data
directory is a small filesystem (tmpfs) that fills up, then is grown while Envoi runs. Clients push single events
(grouped commits and Idempotency-Key requests), batches and SOAP PushEvents, each with its own externalId, so the
database says which events exist."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from lxml import etree

from tests.conftest import pg_database
from tests.processes import free_port, start_envoi, wait_for_port, wait_for_text
from tests.smtp_sink import SmtpSink, start_sink

KINDS = ("single", "idempotent", "batch", "soap")
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass
class Answers:
    """Every answer the clients got: externalIds by what became of them."""

    accepted: dict[str, int] = field(default_factory=dict)  # externalId -> the event id Envoi returned
    refused: set[str] = field(default_factory=set)  # answered 503 with Retry-After
    accepted_after_refusal: int = 0  # accepted once at least one request was refused: ingestion resumed

    def record(self, status: int, ids: list[str], event_ids: list[int]) -> None:
        if status == 503:
            self.refused.update(ids)
            return
        self.accepted.update(zip(ids, event_ids, strict=True))
        self.accepted_after_refusal += bool(self.refused)


def _soap_body(external_id: str, ctx: str) -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:urn="urn:nms:rtEvent"><soapenv:Body><urn:PushEvent>'
        f"<urn:sessiontoken></urn:sessiontoken><urn:domEvent>"
        f'<rtEvent type="order_confirmation" email="{external_id}@example.com" externalId="{external_id}">'
        f"<ctx><orderId>{external_id}</orderId><note>{ctx}</note></ctx></rtEvent>"
        f"</urn:domEvent></urn:PushEvent></soapenv:Body></soapenv:Envelope>"
    ).encode()


async def push_once(client: httpx.AsyncClient, kind: str, ids: list[str], answers: Answers, note: str) -> int:
    """One request of ``kind`` for the externalIds ``ids``; returns the status after checking the answer's form."""
    events = [{"type": "order_confirmation", "email": f"{i}@example.com", "externalId": i,
               "ctx": {"orderId": i, "note": note}} for i in ids]  # fmt: skip
    if kind == "batch":
        response = await client.post("/api/v1/events/batch", json={"events": events})
    elif kind == "soap":
        response = await client.post(
            "/nl/jsp/soaprouter.jsp",
            content=_soap_body(ids[0], note),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "nms:rtEvent#PushEvent"},
        )
    else:
        headers = {"Idempotency-Key": ids[0]} if kind == "idempotent" else {}
        response = await client.post("/api/v1/events", json=events[0], headers=headers)
    status = response.status_code
    if status == 503:
        assert int(response.headers["Retry-After"]) > 0, response.text
        if kind == "soap":
            assert b"<faultcode>SOAP-ENV:Server</faultcode>" in response.content, response.text
        else:
            assert response.json()["error"]["code"] == "store_unavailable", response.text
        assert "postgres" not in response.text.lower() and "sqlite" not in response.text.lower(), response.text
        answers.record(status, ids, [])
    elif kind == "soap":
        assert status == 200, response.text
        answers.record(status, ids, [int(etree.fromstring(response.content).findtext(".//plId") or 0)])
    else:
        assert status == 202, response.text
        body = response.json()
        answers.record(status, ids, body["ids"] if kind == "batch" else [body["id"]])
    return status


async def push_until(stop: asyncio.Event, client: httpx.AsyncClient, answers: Answers, name: str, note: str) -> None:
    for n, kind in enumerate(itertools.cycle(KINDS)):
        if stop.is_set():
            return
        ids = [f"{name}-{n}-{i}" for i in range(3 if kind == "batch" else 1)]
        if await push_once(client, kind, ids, answers, note) == 503:
            await asyncio.sleep(0.05)  # a client honouring Retry-After would wait longer; this one keeps probing


async def push_around(
    base_url: str, key: str, disrupt: Callable[[Answers], Awaitable[None]], *, note: str = "", clients: int = 6
) -> Answers:
    """Clients push all along while ``disrupt`` runs, then until ingestion has visibly resumed after it."""
    answers, stop = Answers(), asyncio.Event()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        pushing = [asyncio.create_task(push_until(stop, client, answers, f"c{i}", note)) for i in range(clients)]
        try:
            await disrupt(answers)
            assert answers.refused, "the disruption refused no request: it did not happen while clients pushed"
            for _ in range(600):
                if answers.accepted_after_refusal >= 20 or any(task.done() for task in pushing):
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.gather(*pushing)  # raises what a client found wrong
    assert answers.accepted_after_refusal >= 20, "ingestion did not resume"
    return answers


def check_stored(answers: Answers, read_events: Callable[[], dict[str, tuple[int, int]]]) -> None:
    """Every accepted event exists with the id it was given, no refused one does, and all end processed."""
    deadline = time.monotonic() + 180  # a batch claimed just before the outage waits for its lease at worst
    while True:
        stored = read_events()
        assert not answers.refused & stored.keys(), "answered 503 but stored"
        missing = {e for e, event_id in answers.accepted.items() if stored.get(e, (0, 0))[0] != event_id}
        assert not missing, f"answered 2xx but not stored (or with another id): {sorted(missing)[:10]}"
        waiting = [e for e in answers.accepted if stored[e][1] != 2]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"{len(waiting)} accepted events never ended processed"
        time.sleep(0.5)


@contextlib.contextmanager
def envoi_serve(cwd: Path, data_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A running ``envoi serve``: its address and the API key it printed. It must still be running at the end."""
    port, log = free_port(), cwd / "serve.log"
    server = start_envoi(
        ["serve", "--port", str(port)], env={"ENVOI_DATA_DIR": str(data_dir)} | env, cwd=cwd, output=log.open("ab")
    )
    try:
        wait_for_text(log, "worker.started", timeout=60)
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", (data_dir / "api-key").read_text().strip()
        assert server.poll() is None, f"envoi serve ended during the outage:\n{log.read_text(errors='replace')}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- PostgreSQL: a restart ------------------------------------------------------------------------------------

CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect"]


def _cluster() -> list[str]:
    (version,) = [path.name for path in Path("/etc/postgresql").iterdir()]
    return [version, "main"]


def wait_for_postgresql(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


@pytest.mark.serial  # it restarts the shared PostgreSQL: whatever ran beside it would fail
def test_postgresql_restart_mid_run(tmp_path: Path, migrated_templates: dict[str, str]) -> None:
    async def restart(_answers: Answers) -> None:
        await asyncio.sleep(2)  # a steady flow first, and events being sent when the server goes
        await asyncio.to_thread(subprocess.run, [*CLUSTER, *_cluster(), "restart"], check=True, capture_output=True)

    sink = start_sink()
    try:
        with pg_database("envoi_outage", template=migrated_templates["postgresql"]) as url:
            env = {"ENVOI_DATABASE_URL": url, "ENVOI_SMTP_URL": sink.url}
            try:
                with envoi_serve(tmp_path, tmp_path / "data", env) as (base_url, key):
                    answers = asyncio.run(push_around(base_url, key, restart))
                    check_stored(answers, lambda: _postgresql_events(url))
                    _check_sent_once(sink, answers)
            finally:  # the suite's server: whatever happened, leave it running
                if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode != 0:
                    subprocess.run([*CLUSTER, *_cluster(), "start"], check=False, capture_output=True)
                wait_for_postgresql()
    finally:
        sink.stop()


def _postgresql_events(url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(url, connect_timeout=5) as connection:
        rows = connection.execute("SELECT external_id, id, status FROM events WHERE external_id IS NOT NULL")
        return {external_id: (event_id, status) for external_id, event_id, status in rows}


def _check_sent_once(sink: SmtpSink, answers: Answers) -> None:
    received = [mail.rcpt_tos[0] for mail in list(sink.messages)]
    assert set(received) == {f"{e}@example.com" for e in answers.accepted}
    assert len(received) == len(set(received)), "a message was sent twice: its batch was not recorded"


# --- SQLite: a full disk ----------------------------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 10 MB filesystem (tmpfs: we run as root), which the test grows to 256 MB."""
    mount_point = Path(tempfile.mkdtemp(prefix="envoi-small-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m,mode=0700", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)
        mount_point.rmdir()


def test_sqlite_disk_full(tmp_path: Path, small_disk: Path, migrated_templates: dict[str, str]) -> None:
    async def fill_then_grow(answers: Answers) -> None:
        for _ in range(1200):  # until the disk has refused a good number of requests
            if len(answers.refused) >= 50:
                break
            await asyncio.sleep(0.1)
        mount = ["mount", "-o", "remount,size=256m", str(small_disk)]
        await asyncio.to_thread(subprocess.run, mount, check=True)

    shutil.copy(migrated_templates["sqlite"], small_disk / "envoi.db")
    env = {"ENVOI_RETRY_BASE_DELAY": "1", "ENVOI_RETRY_MAX_DELAY": "5"}  # the outbox was full too: retried soon
    with envoi_serve(tmp_path, small_disk, env) as (base_url, key):
        answers = asyncio.run(push_around(base_url, key, fill_then_grow, note="x" * 12_000))
        check_stored(answers, lambda: _sqlite_events(small_disk / "envoi.db"))


def _sqlite_events(path: Path) -> dict[str, tuple[int, int]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as connection:
        rows = connection.execute("SELECT external_id, id, status FROM events WHERE external_id IS NOT NULL")
        return {external_id: (event_id, status) for external_id, event_id, status in rows}
