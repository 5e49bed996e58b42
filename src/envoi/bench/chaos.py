"""``envoi bench --chaos``: faults against real processes, on a fresh PostgreSQL database.

Events are pushed through the API (``envoi serve --no-worker``) while ``workers`` ``envoi worker`` processes
deliver them to the bench's SMTP sink. As the queue drains, a worker holding a batch is SIGKILLed and
restarted ``kills`` times, at spread-out moments, and the sink is taken down once for ``sink_down_seconds``.
Then the run waits for the queue to empty and checks what must hold: every event processed, none left
processing, every processed event at the sink, and no more duplicates than the in-flight window
(see envoi.bench.chaos_report).
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from envoi.bench import processes
from envoi.bench.chaos_report import Window, failures, lease_lost_events, messages_per_event, sink_figures
from envoi.bench.database import create_database, drop_database
from envoi.bench.scenarios import Batch, Endpoint, encode_batches, prepare_template
from envoi.events.models import EventStatus
from envoi.settings import Settings

CHAOS_SEQ = 6 * 10**7
_OUTAGE_AT = 0.45  # share of the events processed when the sink goes down
_WAITING = (EventStatus.PENDING, EventStatus.PROCESSING, EventStatus.PAUSED)


@dataclass(frozen=True)
class ChaosSizes:
    events: int
    workers: int
    kills: int
    sink_down_seconds: float
    lease_seconds: float  # shorter than the default, so the run does not wait minutes for leases
    retry_base_delay: float | None  # None: Envoi's default
    kill_gap_seconds: float  # at least this between two kills, so restarted workers take part
    timeout_seconds: float  # the queue must be empty by then


CHAOS_FULL = ChaosSizes(100_000, 3, 10, 60.0, 10.0, None, 5.0, 1800.0)
CHAOS_QUICK = ChaosSizes(2_000, 2, 3, 5.0, 5.0, 1.0, 1.0, 300.0)


@dataclass
class Kill:
    at_s: float
    pid: int
    held: int  # events the worker held under its lease when it died: the most it can have sent twice


def _stable_port() -> int:
    """A free port below the kernel's ephemeral range: no outgoing connection can take it while the sink is
    down, so the sink comes back on the same port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for port in random.sample(range(10_000, max(low, 10_001)), k=min(200, max(low - 10_000, 1))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return processes.free_port()


def _pid_of(lease_owner: str) -> int | None:
    """The pid in a lease owner, ``<host>:<pid>:<tag>/<claim>`` (envoi.delivery.worker)."""
    try:
        return int(lease_owner.split("/", 1)[0].split(":")[-2])
    except (IndexError, ValueError):
        return None


class _Queries:
    """The harness's own look at the queue, over a connection that comes back if the server restarts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.AsyncConnection[Any] | None = None

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        for _ in range(120):
            try:
                if self.conn is None:
                    self.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                return await (await self.conn.execute(sql, params)).fetchall()
            except psycopg.OperationalError:
                await self.aclose()
                await asyncio.sleep(0.5)
        raise RuntimeError("PostgreSQL did not come back within a minute")

    async def aclose(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None


class ChaosRun:
    def __init__(
        self,
        sizes: ChaosSizes,
        workdir: Path,
        pg_admin_url: str,
        progress: Callable[[int, int], None] | None = None,
        seed: int | None = None,
    ):
        self.sizes, self.workdir, self.pg_admin_url = sizes, workdir, pg_admin_url
        self.progress = progress or (lambda _done, _total: None)
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.random = random.Random(self.seed)
        defaults = Settings.model_fields
        self.batch_size = int(defaults["worker_batch_size"].default)
        self.concurrency = int(defaults["worker_concurrency"].default)
        self.connections = int(defaults["smtp_connections"].default)
        self.url = ""
        self.db = _Queries("")
        self.workers: dict[int, processes.Process] = {}
        self.kills: list[Kill] = []
        self.sink: processes.Process | None = None
        self.sink_port = 0
        self.arrivals = Path()
        self.outage: tuple[float, float | None] | None = None  # (down at, back at)
        self.longest_expired_lease = 0.0
        self.refusals = 0
        self.started = 0.0
        self.timeline: list[str] = []  # what was done when, for the JSON record

    def _note(self, what: str) -> None:
        self.timeline.append(f"{time.monotonic() - self.started:7.2f} s  {what}")

    def _env(self, **extra: str) -> dict[str, str]:
        sizes = self.sizes
        env = {
            "ENVOI_DATABASE_URL": self.url,
            "ENVOI_DATA_DIR": str(self.workdir),
            "ENVOI_LOAD_DEMO_DATA": "false",
            "ENVOI_LOG_LEVEL": "warning",
            "ENVOI_LOG_JSON": "true",
            "ENVOI_WORKER_LEASE_SECONDS": str(sizes.lease_seconds),
            "ENVOI_WORKER_BATCH_SIZE": str(self.batch_size),
            "ENVOI_WORKER_CONCURRENCY": str(self.concurrency),
            "ENVOI_SMTP_CONNECTIONS": str(self.connections),
        }
        if sizes.retry_base_delay is not None:
            env["ENVOI_RETRY_BASE_DELAY"] = str(sizes.retry_base_delay)
        return env | extra

    def _start_worker(self, slot: int) -> processes.Process:
        env = self._env(ENVOI_SMTP_URL=f"smtp://127.0.0.1:{self.sink_port}")
        return processes.start_envoi(f"worker-{slot}", ["worker"], env=env, workdir=self.workdir)

    async def run(self) -> dict[str, Any]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.url = create_database("postgresql", self.workdir, self.pg_admin_url)
        self.db = _Queries(self.url)
        self.sink_port = _stable_port()
        self.sink, _, self.arrivals = processes.start_sink(self.workdir, self.sink_port)
        api = None
        try:
            port = processes.free_port()  # envoi serve migrates the new database before it listens
            api = processes.start_envoi(
                "api", ["serve", "--no-worker", "--port", str(port)], env=self._env(), workdir=self.workdir, port=port
            )
            endpoint = Endpoint("127.0.0.1", port, (self.workdir / "api-key").read_text().strip())
            await prepare_template(endpoint)
            self.workers = {slot: self._start_worker(slot) for slot in range(self.sizes.workers)}
            self.started = time.monotonic()
            pushing = asyncio.create_task(self._push(endpoint))
            timed_out = await self._disturb_until_drained(pushing)
            await pushing
            elapsed = time.monotonic() - self.started
            self._note("queue empty" if not timed_out else "gave up waiting for the queue")
            return await self._figures(timed_out, elapsed)
        finally:
            await self.db.aclose()
            envoi = [*self.workers.values(), *([api] if api else [])]
            for process in envoi:  # all at once: each takes its grace period to finish
                if process.popen.poll() is None:
                    process.popen.send_signal(signal.SIGTERM)
            for process in envoi:
                process.stop()
            if self.sink is not None:
                self.sink.stop()
            drop_database(self.url, self.pg_admin_url)

    async def _push(self, endpoint: Endpoint) -> None:
        """All events, 1,000 per call from 2 clients; a batch refused for load (429, 503) is sent again."""

        async def client(pending: Iterator[Batch]) -> None:
            conn = endpoint.connect()
            try:
                for _chunk, request in pending:
                    while (response := await conn.send(request)).status in (429, 503):
                        self.refusals += 1
                        await conn.close()  # the server may close it after refusing
                        conn = endpoint.connect()
                        await asyncio.sleep(1.0)
                    if response.status != 202:
                        raise RuntimeError(f"batch refused: {response.status} {response.body[:300]!r}")
            finally:
                await conn.close()

        seqs = range(CHAOS_SEQ, CHAOS_SEQ + self.sizes.events)
        for start in range(0, len(seqs), 20_000):  # encode in slices: the harness must not hold every body
            pending = iter(encode_batches(endpoint, seqs[start : start + 20_000], 1_000))
            await asyncio.gather(client(pending), client(pending))
        self._note(f"all {len(seqs):,} events accepted by the API")

    async def _disturb_until_drained(self, pushing: asyncio.Task[None]) -> bool:
        """Kill workers and take the sink down as the queue drains; True if the queue was not empty in time."""
        sizes = self.sizes
        kill_at = [sizes.events * (i + 1) / (sizes.kills + 2) for i in range(sizes.kills)]
        last_kill = 0.0
        deadline = self.started + sizes.timeout_seconds
        while True:
            counts = await self._statuses()
            processed = counts.get(EventStatus.PROCESSED, 0)
            self.progress(processed, sizes.events)
            await self._watch_expired_leases()
            now = time.monotonic()
            if self.outage is None and processed >= sizes.events * _OUTAGE_AT:
                self._sink_down()
            elif self.outage is not None and self.outage[1] is None and now - self.outage[0] >= sizes.sink_down_seconds:
                self._sink_up()
            sink_up = self.outage is None or self.outage[1] is not None
            due = len(self.kills) < sizes.kills and processed >= kill_at[len(self.kills)]
            if due and sink_up and now - last_kill >= sizes.kill_gap_seconds:
                await self._kill_a_busy_worker()
                last_kill = time.monotonic()
            for worker in self.workers.values():
                worker.check_alive()
            if pushing.done() and pushing.exception() is not None:
                return False
            waiting = sum(counts.get(status, 0) for status in _WAITING)
            stored = sum(counts.values())
            disturbed = len(self.kills) == sizes.kills and self.outage is not None and self.outage[1] is not None
            if pushing.done() and stored >= sizes.events and not waiting and disturbed:
                return False
            if now > deadline:
                return True
            await asyncio.sleep(0.25)

    async def _statuses(self) -> dict[int, int]:
        rows = await self.db.rows("SELECT status, count(*) FROM events GROUP BY status")
        return {int(status): int(count) for status, count in rows}

    async def _watch_expired_leases(self) -> None:
        """How long an event has shown processing past its lease's end, at worst. A worker takes it over in its
        turn (claims go by next_attempt_at: behind a backlog, that is minutes), or the recover_leases workflow
        puts it back to pending."""
        [(overdue,)] = await self.db.rows(
            "SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM events "
            "WHERE status = %s AND next_attempt_at < now()",
            (EventStatus.PROCESSING.value,),
        )
        if overdue is not None:
            self.longest_expired_lease = max(self.longest_expired_lease, float(overdue))

    async def _held(self) -> dict[int, int]:
        """Events under lease, by the pid of the worker holding them."""
        rows = await self.db.rows(
            "SELECT lease_owner, count(*) FROM events WHERE status = %s GROUP BY lease_owner",
            (EventStatus.PROCESSING.value,),
        )
        held: dict[int, int] = {}
        for owner, count in rows:
            if owner and (pid := _pid_of(owner)) is not None:
                held[pid] = held.get(pid, 0) + int(count)
        return held

    async def _kill_a_busy_worker(self) -> None:
        """SIGKILL a random worker that holds a batch (any worker if none does within 10 s), then restart it."""
        give_up = time.monotonic() + 10.0
        while True:
            held = await self._held()
            busy = [slot for slot, w in self.workers.items() if held.get(w.pid) and w.popen.poll() is None]
            if busy or time.monotonic() > give_up:
                break
            await asyncio.sleep(0.02)
        slot = self.random.choice(busy or list(self.workers))
        victim = self.workers[slot]
        victim.popen.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.popen.wait, 10)
        await asyncio.sleep(0.2)  # a COMMIT it had already sent still completes on the server
        left = (await self._held()).get(victim.pid, 0)
        self.kills.append(Kill(round(time.monotonic() - self.started, 2), victim.pid, left))
        self._note(f"SIGKILL worker {victim.pid}, holding {left} events; restarting it")
        self.workers[slot] = self._start_worker(slot)

    def _sink_down(self) -> None:
        assert self.sink is not None
        self.sink.popen.send_signal(signal.SIGKILL)  # a relay that crashes: connections reset, nothing said
        self.sink.popen.wait(10)
        self.outage = (time.monotonic(), None)
        self._note("SMTP sink killed")

    def _sink_up(self) -> None:
        assert self.outage is not None
        self.sink, _, _ = processes.start_sink(self.workdir, self.sink_port)
        self.outage = (self.outage[0], time.monotonic())
        self._note("SMTP sink back")

    async def _figures(self, timed_out: bool, elapsed: float) -> dict[str, Any]:
        sizes = self.sizes
        await asyncio.sleep(0.5)  # let the last messages in flight reach the sink's log
        counts = await self._statuses()
        rows = await self.db.rows("SELECT id FROM events WHERE status = %s", (EventStatus.PROCESSED.value,))
        processed_ids = {int(row[0]) for row in rows}
        window = Window(
            kills=len(self.kills),
            outages=1 if self.outage else 0,
            workers=sizes.workers,
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            smtp_connections=self.connections,
        )
        lost_leases = lease_lost_events(sorted(self.workdir.glob("worker-*.log")))
        down, up = self.outage or (0.0, 0.0)
        figures: dict[str, Any] = {
            "events": sizes.events,
            "events_stored": sum(counts.values()),
            "workers": sizes.workers,
            "kills": len(self.kills),
            "kills_mid_batch": sum(1 for kill in self.kills if kill.held),
            "events_held_by_killed_workers": sum(kill.held for kill in self.kills),
            "timeline": self.timeline,
            "sink_down_s": round((up or time.monotonic()) - down, 2) if self.outage else 0.0,
            "statuses": {EventStatus(status).label: count for status, count in sorted(counts.items())},
            "events_not_processed": sizes.events - len(processed_ids),
            "events_left_processing": counts.get(EventStatus.PROCESSING, 0),
            "longest_expired_lease_s": round(self.longest_expired_lease, 2),
            **sink_figures(messages_per_event(self.arrivals), processed_ids),
            "in_flight_window": window.messages,
            "in_flight_window_is": window.explain(),
            "lease_lost_events": lost_leases,
            # What this run can have sent twice: the events the killed workers held, the outage's connections.
            "duplicate_bound": sum(kill.held for kill in self.kills) + window.outage_messages + lost_leases,
            "ingest_refusals": self.refusals,
            "lease_seconds": sizes.lease_seconds,
            "retry_base_delay_s": sizes.retry_base_delay or Settings.model_fields["retry_base_delay"].default,
            "shortened": self._shortened(),
            "seed": self.seed,
            "timed_out": timed_out,
            "timeout_s": sizes.timeout_seconds,
            "elapsed_s": round(elapsed, 1),
        }
        figures["failures"] = failures(figures)
        figures["passed"] = not figures["failures"]
        return figures

    def _shortened(self) -> str:
        """What the run sets shorter than Envoi's defaults, said in the output."""
        defaults = Settings.model_fields
        lease, retry = defaults["worker_lease_seconds"].default, defaults["retry_base_delay"].default
        said = [f"worker lease {self.sizes.lease_seconds:g} s (default {lease:g} s)"]
        if self.sizes.retry_base_delay is not None:
            said.append(f"retry base delay {self.sizes.retry_base_delay:g} s (default {retry:g} s)")
        return "Shortened for the run: " + ", ".join(said)
