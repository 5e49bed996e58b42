"""The loads: batch ingest, single-event ingest with 64 clients, and end to end at full and at half load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envoi.bench.httpload import Connection, percentile
from envoi.bench.workload import EVENT_TYPE, TEMPLATE, event

Progress = Callable[[int], None]


@dataclass
class Endpoint:
    host: str
    port: int
    api_key: str

    def connect(self) -> Connection:
        return Connection(self.host, self.port, self.api_key)


async def prepare_template(endpoint: Endpoint) -> None:
    conn = endpoint.connect()
    try:
        created = await conn.send(conn.encode("POST", "/api/v1/event-types", {"name": EVENT_TYPE, "label": "Bench"}))
        if created.status not in (201, 409):
            raise RuntimeError(f"creating the event type failed: {created.status} {created.body[:300]!r}")
        template = await conn.send(conn.encode("POST", "/api/v1/templates", TEMPLATE))
        if template.status != 201:
            raise RuntimeError(f"creating the template failed: {template.status} {template.body[:300]!r}")
        template_id = int(template.body.split(b'"id":', 1)[1].split(b",", 1)[0])
        published = await conn.send(conn.encode("POST", f"/api/v1/templates/{template_id}/publish"))
        if published.status != 200:
            raise RuntimeError(f"publishing failed: {published.status} {published.body[:300]!r}")
    finally:
        await conn.close()


Batch = tuple[range, bytes]


def encode_batches(endpoint: Endpoint, seqs: range, batch: int) -> list[Batch]:
    """Request bytes for every batch, built before any clock starts."""
    encoder = endpoint.connect()
    return [
        (chunk, encoder.encode("POST", "/api/v1/events/batch", {"events": [event(s) for s in chunk]}))
        for chunk in (seqs[i : i + batch] for i in range(0, len(seqs), batch))
    ]


async def push_batches(
    endpoint: Endpoint, batches: list[Batch], *, clients: int, progress: Progress | None = None
) -> dict[int, float]:
    """Push pre-encoded batches from ``clients`` connections as fast as the server takes them.
    Returns each seq's accepted time (when its batch's 202 arrived)."""
    accepted: dict[int, float] = {}
    pending = iter(batches)

    async def client() -> None:
        conn = endpoint.connect()
        try:
            for chunk, request in pending:
                response = await conn.send(request)
                if response.status != 202:
                    raise RuntimeError(f"batch refused: {response.status} {response.body[:300]!r}")
                for seq in chunk:
                    accepted[seq] = response.accepted_at
                if progress:
                    progress(len(chunk))
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return accepted


async def timed_batches(endpoint: Endpoint, batches: list[Batch], *, clients: int, progress: Progress) -> float:
    """Events per second through the batch endpoint."""
    started = time.perf_counter()
    accepted = await push_batches(endpoint, batches, clients=clients, progress=progress)
    return len(accepted) / (time.perf_counter() - started)


@dataclass
class SingleResult:
    events_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


async def single_ingest(endpoint: Endpoint, seqs: range, *, clients: int, progress: Progress) -> SingleResult:
    """One event per request from ``clients`` keep-alive connections, closed loop."""
    connections = [endpoint.connect() for _ in range(clients)]
    for conn in connections:
        await conn.open()
    requests = [connections[0].encode("POST", "/api/v1/events", event(s)) for s in seqs]
    pending = iter(requests)
    latencies: list[float] = []
    errors = 0

    async def client(conn: Connection) -> None:
        nonlocal errors
        for request in pending:
            started = time.perf_counter()
            response = await conn.send(request)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 202:
                errors += 1
            progress(1)

    started = time.perf_counter()
    await asyncio.gather(*(client(conn) for conn in connections))
    elapsed = time.perf_counter() - started
    for conn in connections:
        await conn.close()
    return SingleResult(len(seqs) / elapsed, percentile(latencies, 50), percentile(latencies, 99), errors)


async def paced_batches(
    endpoint: Endpoint, first_seq: int, *, rate: float, seconds: float, tick: float = 0.01
) -> dict[int, float]:
    """Open loop: every ``tick`` seconds, push the events due by then, whatever the server's pace."""
    accepted: dict[int, float] = {}
    pool = [endpoint.connect() for _ in range(8)]
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in pool:
        free.put_nowait(conn)
    tasks: list[asyncio.Task[None]] = []

    async def send(chunk: range) -> None:
        conn = await free.get()
        try:
            response = await conn.send(
                conn.encode("POST", "/api/v1/events/batch", {"events": [event(s) for s in chunk]})
            )
            if response.status != 202:
                raise RuntimeError(f"batch refused: {response.status}")
            for seq in chunk:
                accepted[seq] = response.accepted_at
        finally:
            free.put_nowait(conn)

    started = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate) - sent
        if due > 0:
            tasks.append(asyncio.create_task(send(range(first_seq + sent, first_seq + sent + due))))
            sent += due
        await asyncio.sleep(tick)
    await asyncio.gather(*tasks)
    for conn in pool:
        await conn.close()
    return accepted


def read_arrivals(path: Path) -> dict[int, float]:
    arrivals: dict[int, float] = {}
    with path.open() as log:
        for line in log:
            parts = line.split()
            if len(parts) >= 2:  # time, seq (and the event id)
                arrivals[int(parts[1])] = float(parts[0])
    return arrivals


async def wait_arrivals(
    path: Path, seqs: set[int], *, within: float, progress: Progress | None = None
) -> dict[int, float]:
    deadline = time.monotonic() + within
    seen = 0
    while True:
        arrivals = read_arrivals(path)
        count = sum(1 for s in seqs if s in arrivals)
        if progress and count > seen:
            progress(count - seen)
            seen = count
        if count >= len(seqs):
            return arrivals
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {len(seqs)} messages reached the sink in {within}s")
        await asyncio.sleep(0.2)


@dataclass
class EndToEnd:
    messages_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def end_to_end(accepted: dict[int, float], arrivals: dict[int, float]) -> EndToEnd:
    latencies = [(arrivals[s] - t) * 1000 for s, t in accepted.items()]
    span = max(arrivals[s] for s in accepted) - min(accepted.values())
    return EndToEnd(
        len(accepted) / span,
        percentile(latencies, 50),
        percentile(latencies, 95),
        percentile(latencies, 99),
    )
