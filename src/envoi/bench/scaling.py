"""``envoi bench --workers 1,2,4``: how end-to-end throughput on PostgreSQL grows with worker processes, and
where the CPU goes.

For each worker count, on a fresh database: the events are pushed through ``envoi serve --no-worker`` while no
worker runs, then held (their next attempt moved a day ahead) while the workers start, import and connect, so
that no worker starts ahead of the others and start-up costs stay out of the figures. The queue is released in
one statement, NOTIFY wakes every worker, and the run ends when the database shows every event processed and
the SMTP sink logged every message. Throughput is events over the span from the first to the last arrival at
the sink; CPU seconds are counted per kind of process over the same drain (envoi.bench.cpu), along with the
whole machine's busy time, so what other programs took is visible.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from rich.progress import Progress

from envoi.bench import processes
from envoi.bench.cpu import CpuMeter, load_average, postgres_pids, process_cpu_seconds
from envoi.bench.database import create_database, drop_database, server_version
from envoi.bench.scenarios import Endpoint, encode_batches, prepare_template, push_batches
from envoi.db.notify import CHANNEL
from envoi.events.models import EventStatus
from envoi.settings import Settings

SCALING_SEQ = 7 * 10**7
_WAITING = f"({EventStatus.PENDING.value}, {EventStatus.PROCESSING.value})"


@dataclass(frozen=True)
class ScalingSizes:
    events: int
    timeout_seconds: float  # for one drain


SCALING_FULL = ScalingSizes(30_000, 900.0)
SCALING_QUICK = ScalingSizes(2_000, 300.0)


def worker_settings() -> dict[str, int]:
    """The worker's knobs as this run uses them: Envoi's defaults unless ENVOI_* variables set them."""
    settings = Settings()
    return {
        "worker_batch_size": settings.worker_batch_size,
        "worker_concurrency": settings.worker_concurrency,
        "smtp_connections": settings.smtp_connections,
        "database_pool_size": settings.database_pool_size,
    }


class _ArrivalCounter:
    """Lines the sink appended to its log since the last look, without reading the whole log each time."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.count = path, 0, 0

    def read(self) -> int:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1  # a line half written is counted next time
        self.offset += complete
        self.count += chunk.count(b"\n", 0, complete)
        return self.count


class ScalingRun:
    def __init__(
        self,
        sizes: ScalingSizes,
        counts: list[int],
        workdir: Path,
        pg_admin_url: str,
        progress: Progress,
        profile_dir: Path | None = None,
    ):
        self.sizes, self.counts, self.workdir = sizes, counts, workdir
        self.pg_admin_url, self.progress, self.profile_dir = pg_admin_url, progress, profile_dir

    async def run(self) -> dict[str, Any]:
        runs = [await self._one(count) for count in self.counts]
        versions = {run.pop("database") for run in runs}
        return {
            "events_per_run": self.sizes.events,
            "cores": os.cpu_count(),
            "settings": worker_settings(),
            "database": ", ".join(sorted(versions)),
            "runs": runs,
        }

    def _env(self, url: str, workdir: Path, **extra: str) -> dict[str, str]:
        passed = {k: v for k, v in os.environ.items() if k.startswith(("ENVOI_WORKER_", "ENVOI_SMTP_CONNECTIONS"))}
        return (
            passed  # tuning under test (batch size, connections) reaches the workers
            | {
                "ENVOI_DATABASE_URL": url,
                "ENVOI_DATA_DIR": str(workdir),
                "ENVOI_LOAD_DEMO_DATA": "false",
                "ENVOI_LOG_LEVEL": "warning",
                "ENVOI_INGEST_MAX_QUEUE_DEPTH": "0",
            }
            | extra
        )

    def _start_worker(self, slot: int, count: int, url: str, workdir: Path, smtp_port: int) -> processes.Process:
        env = self._env(url, workdir, ENVOI_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}")
        if self.profile_dir is not None and slot == 0:  # one worker per run under cProfile: where its time goes
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            target = self.profile_dir / f"worker-of-{count}.prof"
            args = ["-m", "cProfile", "-o", str(target), "-m", "envoi", "worker"]
            return processes.start(f"worker-{slot}", args, env=env, workdir=workdir)
        return processes.start_envoi(f"worker-{slot}", ["worker"], env=env, workdir=workdir)

    async def _one(self, count: int) -> dict[str, Any]:
        workdir = self.workdir / f"workers-{count}"
        workdir.mkdir(parents=True, exist_ok=True)
        url = create_database("postgresql", workdir, self.pg_admin_url)
        sink, smtp_port, arrivals = processes.start_sink(workdir)
        workers: list[processes.Process] = []
        api: processes.Process | None = None
        try:
            port = processes.free_port()  # envoi serve migrates the new database before it listens
            api = processes.start_envoi(
                "api",
                ["serve", "--no-worker", "--port", str(port)],
                env=self._env(url, workdir),
                workdir=workdir,
                port=port,
            )
            endpoint = Endpoint("127.0.0.1", port, (workdir / "api-key").read_text().strip())
            await prepare_template(endpoint)
            seqs = range(SCALING_SEQ, SCALING_SEQ + self.sizes.events)
            task = self.progress.add_task(f"[{count} worker(s)] queueing {len(seqs):,} events", total=len(seqs))
            batches = encode_batches(endpoint, seqs, 1_000)
            await push_batches(endpoint, batches, clients=2, progress=lambda n: self.progress.advance(task, n))
            with psycopg.connect(url, autocommit=True) as db:
                _hold(db, len(seqs))
                workers = [self._start_worker(slot, count, url, workdir, smtp_port) for slot in range(count)]
                await _settle(workers)
                figures = await self._drain(db, count, workers, api, sink, arrivals)
                figures["database"] = server_version(url)
            figures |= _arrival_figures(arrivals, seqs, figures.pop("released_at"))
            return figures
        finally:
            for process in workers:  # all at once: each finishes its batch in hand
                if process.popen.poll() is None:
                    process.popen.send_signal(signal.SIGTERM)
            for process in [*workers, *([api] if api else []), sink]:
                process.stop()
            drop_database(url, self.pg_admin_url)

    async def _drain(
        self,
        db: psycopg.Connection[Any],
        count: int,
        workers: list[processes.Process],
        api: processes.Process,
        sink: processes.Process,
        arrivals: Path,
    ) -> dict[str, Any]:
        events = self.sizes.events
        task = self.progress.add_task(f"[{count} worker(s)] draining", total=events)
        meter = CpuMeter()
        meter.add("workers", [w.pid for w in workers])
        meter.add("sink", [sink.pid])
        meter.add("api", [api.pid])
        backends, background = postgres_pids(db)
        meter.add("postgres", backends)
        meter.add("postgres_background", background)
        load_before, harness_before = load_average(), _own_cpu_seconds()
        meter.start()
        released_at = time.time()
        db.execute(f"UPDATE events SET next_attempt_at = now() WHERE status IN {_WAITING}")
        db.execute(f"NOTIFY {CHANNEL}")  # as the API does on commit: every worker wakes now
        counter = _ArrivalCounter(arrivals)
        deadline = time.monotonic() + self.sizes.timeout_seconds
        while True:
            await asyncio.sleep(0.25)
            for worker in workers:
                worker.check_alive()
            backends, background = postgres_pids(db)  # the workers' pools open connections as they need them
            meter.add("postgres", backends)
            meter.add("postgres_background", background)
            arrived = counter.read()
            self.progress.update(task, completed=min(arrived, events))
            row = db.execute(f"SELECT count(*) FROM events WHERE status IN {_WAITING}").fetchone()
            if arrived >= events and row is not None and row[0] == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} worker(s): only {arrived:,} of {events:,} messages arrived in time")
        cpu = meter.stop()
        cpu["harness"] = round(_own_cpu_seconds() - harness_before, 3)
        statuses = dict(db.execute("SELECT status, count(*) FROM events GROUP BY status").fetchall())
        return {
            "workers": count,
            "released_at": released_at,
            "cpu_s": cpu,
            "metered_s": round(meter.wall_seconds, 3),  # release to the last status recorded: the CPU's span
            "machine_busy_cpu_s": round(meter.machine_seconds, 3),
            "other_programs_cpu_s": round(max(0.0, meter.machine_seconds - sum(cpu.values())), 3),
            "load_1m_before": load_before,
            "load_1m_after": load_average(),
            "statuses": {EventStatus(int(s)).label: int(n) for s, n in sorted(statuses.items())},
            "events_not_processed": events - int(statuses.get(EventStatus.PROCESSED.value, 0)),
        }


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _hold(db: psycopg.Connection[Any], expected: int) -> None:
    """Keep the queued events out of reach while the workers start; vacuum so each run starts equal."""
    held = db.execute(
        f"UPDATE events SET next_attempt_at = now() + interval '1 day' WHERE status IN {_WAITING}"
    ).rowcount
    if held != expected:
        raise RuntimeError(f"{held:,} events queued, {expected:,} pushed: a worker ran, or the API lost events")
    db.execute("VACUUM ANALYZE events")


async def _settle(workers: list[processes.Process], within: float = 120.0) -> None:
    """Wait until every worker has imported, connected and gone idle: its CPU time stops growing."""
    deadline = time.monotonic() + within
    await asyncio.sleep(1.0)
    last = [process_cpu_seconds(w.pid) or 0.0 for w in workers]
    quiet = 0
    while quiet < 3:  # 1.5 s in a row of idle polling only
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers were still busy {within:g} s after starting, with nothing to do")
        await asyncio.sleep(0.5)
        for worker in workers:
            worker.check_alive()
        now = [process_cpu_seconds(w.pid) or 0.0 for w in workers]
        quiet = quiet + 1 if all(b - a < 0.05 for a, b in zip(last, now, strict=True)) else 0
        last = now


def _arrival_figures(arrivals: Path, seqs: range, released_at: float) -> dict[str, Any]:
    """Throughput from the sink's log, and whether each event's message arrived exactly once."""
    times: list[float] = []
    per_seq: Counter[int] = Counter()
    with arrivals.open() as log:
        for line in log:
            parts = line.split()
            if len(parts) >= 2:
                times.append(float(parts[0]))
                per_seq[int(parts[1])] += 1
    wanted = set(seqs)
    first, last = min(times), max(times)
    return {
        "messages": len(times),
        "messages_missing": sum(1 for s in wanted if s not in per_seq),
        "messages_sent_twice": sum(n - 1 for s, n in per_seq.items() if s in wanted and n > 1),
        "messages_unexpected": sum(n for s, n in per_seq.items() if s not in wanted),
        "drain_s": round(last - first, 3),
        "messages_per_s": round(len(seqs) / (last - first), 1),
        "from_release_s": round(last - released_at, 3),
        "messages_per_s_from_release": round(len(seqs) / (last - released_at), 1),
    }
