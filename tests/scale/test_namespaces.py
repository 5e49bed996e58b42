"""Scale-out across hosts: 2 ``envoi serve --no-worker`` and 3 ``envoi worker`` processes, each in a network
namespace of its own, share one PostgreSQL over a virtual network. Every event pushed through either API is
delivered exactly once, and every process takes a share of the work.

ENVOI_TEST_SCALE_EVENTS sets how many events (10,000 by default; 100,000 by hand, see the README).
Run alone: ``.venv/bin/pytest tests/scale -x -q -s`` (``-s`` shows the figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from envoi.bench.chaos_report import messages_per_event
from envoi.bench.processes import Process, start_sink
from envoi.bench.scenarios import Endpoint, encode_batches, prepare_template, push_batches
from envoi.delivery.models import MessageStatus
from envoi.events.models import EventStatus
from tests.conftest import pg_database
from tests.processes import wait_for_text
from tests.scale.netns import VirtualNetwork, missing_tools, virtual_network, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.serial]

EVENTS = int(os.environ.get("ENVOI_TEST_SCALE_EVENTS", "10000"))
FIRST_SEQ = 7 * 10**7  # the sink reads seq from the subject; far from the other runs' numbers
BATCH = 500  # events per API call
CLIENTS_PER_API = 2
POOL_SIZE = 3  # max_connections is 100 on the shared server, and other tests run beside this one
API_PORT, PG_PORT, SINK_PORT = 8000, 5432, 2525  # on the namespaces' and the bridge's addresses
APIS = ("api0", "api1")
WORKERS = ("worker0", "worker1", "worker2")
DEADLINE_S = 300 + EVENTS * 0.006  # 6 minutes at 10,000, 15 at 100,000: the CPUs are shared


@pytest.fixture
def network() -> Iterator[VirtualNetwork]:
    if why := missing_tools():
        pytest.fail(f"the namespace test cannot build its network: {why}", pytrace=False)
    with virtual_network([*APIS, *WORKERS]) as net:
        yield net


@pytest.fixture
def database(migrated_templates: dict[str, str]) -> Iterator[str]:
    """A migrated database of its own (a copy of the session's template), as seen from the root namespace."""
    with pg_database("envoi_scale", template=migrated_templates["postgresql"]) as url:
        yield url


def _via_bridge(url: str, network: VirtualNetwork) -> str:
    """The same database, reached through the forwarder on the bridge (what the namespaces can reach)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{network.address}:{PG_PORT}"))


def _env(role: str, database_url: str, workdir: Path) -> dict[str, str]:
    """Each process gets a data dir of its own, as on a machine of its own (API key file, metrics)."""
    return {
        "ENVOI_DATABASE_URL": database_url,
        "ENVOI_DATABASE_POOL_SIZE": str(POOL_SIZE),
        "ENVOI_DATA_DIR": str(workdir / role),
        "ENVOI_LOAD_DEMO_DATA": "false",
        "ENVOI_LOG_JSON": "true",
        "ENVOI_LOG_LEVEL": "info",  # workers log each batch they record, with their name: the share of each
    }


def _problems(process: Process) -> list[str]:
    """The lines of a process's log that say error: structlog's JSON, the standard library's, tracebacks."""
    found = []
    for line in process.log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            if record.get("level") in ("error", "critical", "exception"):
                found.append(line)
        elif line.startswith(("ERROR", "CRITICAL", "Traceback")):
            found.append(line)
    return [f"{process.name}: {line[:500]}" for line in found]


def _processed_by(worker: Process) -> int:
    """Events this worker recorded as processed, from its delivery.batch_recorded lines. The hostname is the
    same in every namespace; the pid in the worker's name (``<host>:<pid>:<tag>``) tells the processes apart."""
    total = 0
    for line in worker.log.read_text(errors="replace").splitlines():
        if '"delivery.batch_recorded"' not in line:
            continue
        record = json.loads(line)
        assert int(record["worker"].split(":")[-2]) == worker.pid, f"{worker.name} logged for another: {line}"
        total += int(record.get(EventStatus.PROCESSED.label, 0))
    return total


class _Watch:
    """The harness's look at the queue while it drains, over its own connection from the root namespace."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], database: str) -> None:
        self.conn, self.database = conn, database
        self.peak_connections = 0
        self.lease_pids: set[int] = set()

    async def sample(self) -> dict[int, int]:
        rows = await (await self.conn.execute("SELECT status, count(*) FROM events GROUP BY status")).fetchall()
        (connections,) = await (
            await self.conn.execute("SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = %s", (self.database,))
        ).fetchone() or (0,)
        self.peak_connections = max(self.peak_connections, int(connections))
        owners = await (
            await self.conn.execute(
                "SELECT DISTINCT lease_owner FROM events WHERE status = %s", (EventStatus.PROCESSING.value,)
            )
        ).fetchall()
        self.lease_pids |= {int(owner.split("/", 1)[0].split(":")[-2]) for (owner,) in owners if owner}
        return {int(status): int(count) for status, count in rows}

    async def until_drained(self, processes: list[Process], pushing: asyncio.Task[Any], deadline: float) -> None:
        """Samples while the events are pushed too, so the peak of connections includes the APIs' ingest."""
        while True:
            for process in processes:
                process.check_alive()
            if pushing.done():
                pushing.result()  # a batch refused fails the test here
            counts = await self.sample()
            waiting = sum(counts.get(s, 0) for s in (EventStatus.PENDING, EventStatus.PROCESSING))
            if pushing.done() and sum(counts.values()) >= EVENTS and not waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the queue was not empty after {DEADLINE_S:.0f} s: {counts}")
            await asyncio.sleep(0.5)


async def _push(endpoints: list[Endpoint], seqs: range) -> list[int]:
    """Batches alternate between the APIs, each pushed by its own clients; returns the events each accepted."""
    chunks = [seqs[i : i + BATCH] for i in range(0, len(seqs), BATCH)]
    apis = len(endpoints)
    per_api = [
        [batch for chunk in chunks[k::apis] for batch in encode_batches(endpoint, chunk, BATCH)]
        for k, endpoint in enumerate(endpoints)
    ]
    accepted = await asyncio.gather(
        *(push_batches(e, batches, clients=CLIENTS_PER_API) for e, batches in zip(endpoints, per_api, strict=True))
    )
    return [len(seqs_accepted) for seqs_accepted in accepted]


def _stop(processes: list[Process], timeout: float = 60.0) -> None:
    """One SIGTERM to all at once (each takes its grace period), then wait; a second SIGTERM would find the
    signal handler gone and kill a process that was shutting down well."""
    for process in processes:
        if process.popen.poll() is None:
            process.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()


async def test_two_apis_and_three_workers_on_separate_hosts_deliver_each_event_exactly_once(
    network: VirtualNetwork, database: str, tmp_path: Path
) -> None:
    sink, sink_port, arrivals = start_sink(tmp_path)
    try:
        network.forward(PG_PORT, urlsplit(database).port or 5432)
        network.forward(SINK_PORT, sink_port)
        await _run(network, database, tmp_path, arrivals)
    finally:
        sink.stop()


async def _run(network: VirtualNetwork, database: str, workdir: Path, arrivals: Path) -> None:
    ns = network.namespaces
    # Each namespace's loopback is its own: PostgreSQL is reachable only over the virtual network.
    assert not network.can_connect("worker0", "127.0.0.1", PG_PORT), "a namespace reached the host's PostgreSQL"
    assert network.can_connect("worker0", network.address, PG_PORT), "PostgreSQL is not reachable over the bridge"

    bridged_url = _via_bridge(database, network)
    apis = [
        network.start(
            role,
            role,
            ["-m", "envoi", "serve", "--no-worker", "--host", ns[role].address, "--port", str(API_PORT)],
            env=_env(role, bridged_url, workdir),
            workdir=workdir,
        )
        for role in APIS
    ]
    sink_url = f"smtp://{network.address}:{SINK_PORT}"
    workers = [
        network.start(
            role,
            role,
            ["-m", "envoi", "worker"],
            env=_env(role, bridged_url, workdir) | {"ENVOI_SMTP_URL": sink_url},
            workdir=workdir,
        )
        for role in WORKERS
    ]
    everyone = [*apis, *workers]
    try:
        for api in apis:  # from the root namespace, over the bridge
            wait_for_port(ns[api.name].address, API_PORT, api.popen, api.name, 180)
        for worker in workers:
            wait_for_text(worker.log, "worker.started", timeout=180)
        for process in everyone:  # each really runs in its namespace, not in the root one
            assert os.stat(f"/proc/{process.pid}/ns/net").st_ino == ns[process.name].inode(), process.name

        key = (workdir / "api0" / "api-key").read_text().strip()
        endpoints = [Endpoint(ns[role].address, API_PORT, key) for role in APIS]
        await prepare_template(endpoints[0])
        seqs = range(FIRST_SEQ, FIRST_SEQ + EVENTS)

        name = urlsplit(database).path.lstrip("/")
        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            watch = _Watch(conn, name)
            started = time.monotonic()
            pushing = asyncio.create_task(_push(endpoints, seqs))
            pushed_at: list[float] = []
            pushing.add_done_callback(lambda _: pushed_at.append(time.monotonic()))
            try:
                await watch.until_drained(everyone, pushing, started + DEADLINE_S)
            finally:
                pushing.cancel()  # when the wait failed; a no-op once it is done
            elapsed = time.monotonic() - started
            accepted, pushed_s = pushing.result(), pushed_at[0] - started
            await asyncio.sleep(1.0)  # a message sent twice would arrive late: give it a moment to show
            retried = await _check_database(conn)
            event_ids = {int(r[0]) for r in await (await conn.execute("SELECT id FROM events")).fetchall()}
        _stop(everyone)
        per_worker = {w.name: _processed_by(w) for w in workers}
        print(
            f"\n{EVENTS:,} events through {len(apis)} APIs and {len(workers)} workers in namespaces: "
            f"{elapsed:.1f} s end to end ({EVENTS / elapsed:,.0f} events/s); ingest {pushed_s:.1f} s "
            f"({EVENTS / pushed_s:,.0f} events/s). Accepted per API {dict(zip(APIS, accepted, strict=True))}; "
            f"processed per worker {per_worker}; workers seen holding leases {len(watch.lease_pids)}; "
            f"peak connections to the database {watch.peak_connections} (pool size {POOL_SIZE}); "
            f"events that needed a retry {retried}"
        )

        _check_sink(arrivals, seqs, event_ids)
        assert sum(accepted) == EVENTS and all(accepted), f"accepted per API: {accepted}"
        assert sum(per_worker.values()) == EVENTS, f"processed per worker: {per_worker}"
        assert all(per_worker.values()), f"a worker took no share: {per_worker}"
        # Each process: its pool and as many again at peaks, its LISTEN session, and a worker's scheduler lock.
        budget = len(everyone) * (2 * POOL_SIZE + 2)
        assert watch.peak_connections <= budget, f"{watch.peak_connections} connections, over {budget}"
        problems = [line for process in everyone for line in _problems(process)]
        assert not problems, "\n".join(problems)
        exits = {p.name: p.popen.returncode for p in everyone}
        assert set(exits.values()) <= {0, -signal.SIGTERM}, f"exit codes after SIGTERM: {exits}"  # uvicorn re-raises it
    finally:
        _stop(everyone)


async def _check_database(conn: psycopg.AsyncConnection[Any]) -> int:
    """Every event processed, with exactly one message, sent; returns how many events needed a retry."""
    rows = await (
        await conn.execute(
            "SELECT e.status, count(m.id), min(m.status), max(m.status), e.error_count FROM events e "
            "LEFT JOIN messages m ON m.event_id = e.id GROUP BY e.id, e.status, e.error_count"
        )
    ).fetchall()
    assert len(rows) == EVENTS, f"{len(rows)} events stored for {EVENTS} accepted"
    statuses = Counter(EventStatus(row[0]).label for row in rows)
    assert statuses == {EventStatus.PROCESSED.label: EVENTS}, f"event statuses: {statuses}"
    messages = Counter(int(row[1]) for row in rows)
    assert messages == {1: EVENTS}, f"events by number of messages: {messages}"
    sent = MessageStatus.SENT.value
    assert all(row[2] == sent and row[3] == sent for row in rows), "a message is not in status sent"
    return sum(1 for row in rows if row[4])


def _check_sink(arrivals: Path, seqs: range, event_ids: set[int]) -> None:
    """Each event's message reached the SMTP sink once: by event id (Message-ID) and by seq (Subject)."""
    per_event = messages_per_event(arrivals)
    twice = {event_id: n for event_id, n in per_event.items() if n != 1}
    missing = event_ids - per_event.keys()
    assert not twice, f"{len(twice)} events sent more than once (or unmatched), e.g. {list(twice.items())[:5]}"
    assert not missing, f"{len(missing)} events never reached the sink, e.g. {sorted(missing)[:5]}"
    assert per_event.keys() == event_ids, "the sink received messages of events that were not pushed"
    with arrivals.open() as log:
        per_seq = Counter(int(line.split()[1]) for line in log if line.strip())
    assert per_seq == Counter(seqs), "the messages at the sink are not one per pushed event"
