"""One benchmark run on one backend: baselines, ingest, end to end, memory, in that order."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import Progress, TaskID

from envoi.bench import processes
from envoi.bench.baselines import bench_messages, insert_baseline, smtp_baseline
from envoi.bench.database import clear_events, create_database, drop_database, server_version
from envoi.bench.scenarios import (
    Endpoint,
    encode_batches,
    end_to_end,
    paced_batches,
    prepare_template,
    push_batches,
    single_ingest,
    timed_batches,
    wait_arrivals,
)


@dataclass(frozen=True)
class Sizes:
    insert_rows: int
    smtp_messages: int
    batch_events: int
    single_events: int
    e2e_events: int
    half_load_seconds: float
    queued_events: int
    drain_seconds: float


QUICK = Sizes(20_000, 3_000, 20_000, 5_000, 5_000, 5.0, 50_000, 5.0)
FULL = Sizes(200_000, 20_000, 200_000, 50_000, 30_000, 15.0, 1_000_000, 20.0)

# Seq ranges per phase, so the sink's log tells which push each arrival belongs to.
BATCH_SEQ, SINGLE_SEQ, FULL_SEQ, HALF_SEQ, QUEUE_SEQ = 10**7, 2 * 10**7, 3 * 10**7, 4 * 10**7, 5 * 10**7


class Run:
    def __init__(self, backend: str, sizes: Sizes, workdir: Path, pg_admin_url: str, progress: Progress):
        self.backend, self.sizes, self.workdir = backend, sizes, workdir
        self.pg_admin_url, self.progress = pg_admin_url, progress
        self.figures: dict[str, Any] = {}
        self.url = ""

    def _task(self, label: str, total: float) -> tuple[TaskID, Any]:
        task = self.progress.add_task(f"[{self.backend}] {label}", total=total)
        return task, lambda n: self.progress.advance(task, n)

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            "ENVOI_DATABASE_URL": self.url,
            "ENVOI_DATA_DIR": str(self.workdir),
            "ENVOI_LOAD_DEMO_DATA": "false",
            "ENVOI_LOG_LEVEL": "warning",
            "ENVOI_INGEST_MAX_QUEUE_DEPTH": "0",  # the memory scenario queues a million events: measure, never refuse
        } | extra

    def _envoi(self, name: str, args: list[str], **env: str) -> tuple[processes.Process, Endpoint | None]:
        port = processes.free_port() if args[0] == "serve" else None
        command = [*args, "--port", str(port)] if port else args
        process = processes.start_envoi(name, command, env=self._env(**env), workdir=self.workdir, port=port)
        if port is None:
            return process, None
        return process, Endpoint("127.0.0.1", port, (self.workdir / "api-key").read_text().strip())

    async def run(self) -> dict[str, Any]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.url = create_database(self.backend, self.workdir, self.pg_admin_url)
        sink, sink_port, arrivals = processes.start_sink(self.workdir)
        smtp_url = f"smtp://127.0.0.1:{sink_port}"
        try:
            migrate = processes.start_envoi("migrate", ["migrate"], env=self._env(), workdir=self.workdir)
            if migrate.popen.wait(120) != 0:
                migrate.check_alive()
            self.figures["database"] = server_version(self.url)
            await self._baselines(sink_port)
            await self._ingest()
            await self._end_to_end(smtp_url, arrivals)
            await self._memory(smtp_url)
        finally:
            sink.stop()
            drop_database(self.url, self.pg_admin_url)
        return self.figures

    async def _baselines(self, sink_port: int) -> None:
        sizes = self.sizes
        task, _ = self._task("baselines: raw insert, raw SMTP", 2)
        self.figures["insert_baseline_rows_per_s"] = await insert_baseline(self.url, sizes.insert_rows)
        self.progress.advance(task)
        messages = bench_messages(sizes.smtp_messages)
        self.figures["smtp_baseline_messages_per_s"] = await smtp_baseline(sink_port, messages, connections=4)
        self.progress.advance(task)

    async def _ingest(self) -> None:
        sizes = self.sizes
        api, endpoint = self._envoi("api", ["serve", "--no-worker"])
        assert endpoint is not None
        try:
            await prepare_template(endpoint)
            batches = encode_batches(endpoint, range(BATCH_SEQ, BATCH_SEQ + sizes.batch_events), 1_000)
            _, advance = self._task("batch ingest (1,000 per call)", sizes.batch_events)
            self.figures["batch_ingest_events_per_s"] = await timed_batches(
                endpoint, batches, clients=2, progress=advance
            )
            _, advance = self._task("single-event ingest (64 clients)", sizes.single_events)
            single = await single_ingest(
                endpoint, range(SINGLE_SEQ, SINGLE_SEQ + sizes.single_events), clients=64, progress=advance
            )
            self.figures |= {
                "single_ingest_events_per_s": single.events_per_s,
                "single_ingest_p50_ms": single.p50_ms,
                "single_ingest_p99_ms": single.p99_ms,
                "single_ingest_errors": single.errors,
                "api_peak_rss_mb_ingest": api.peak_rss_mb(),
            }
        finally:
            api.stop()
        clear_events(self.url)

    async def _end_to_end(self, smtp_url: str, arrivals_log: Path) -> None:
        sizes = self.sizes
        server, endpoint = self._envoi("serve", ["serve"], ENVOI_SMTP_URL=smtp_url)
        assert endpoint is not None
        try:
            seqs = range(FULL_SEQ, FULL_SEQ + sizes.e2e_events)
            batches = encode_batches(endpoint, seqs, 100)
            _, advance = self._task("end to end, full load", sizes.e2e_events)
            accepted = await push_batches(endpoint, batches, clients=2)
            arrivals = await wait_arrivals(arrivals_log, set(seqs), within=600, progress=advance)
            full = end_to_end(accepted, arrivals)
            rate = full.messages_per_s / 2
            half_task, advance = self._task(f"end to end, half load ({rate:,.0f}/s)", sizes.half_load_seconds)
            ticker = asyncio.create_task(_tick(advance, sizes.half_load_seconds))
            accepted = await paced_batches(endpoint, HALF_SEQ, rate=rate, seconds=sizes.half_load_seconds)
            ticker.cancel()
            self.progress.update(half_task, completed=sizes.half_load_seconds)
            arrivals = await wait_arrivals(arrivals_log, set(accepted), within=300)
            half = end_to_end(accepted, arrivals)
            self.figures |= {
                "e2e_messages_per_s": full.messages_per_s,
                "e2e_p50_ms": full.p50_ms,
                "e2e_p95_ms": full.p95_ms,
                "e2e_p99_ms": full.p99_ms,
                "e2e_half_load_messages_per_s": rate,
                "e2e_p50_ms_half_load": half.p50_ms,
                "e2e_p95_ms_half_load": half.p95_ms,
                "e2e_p99_ms_half_load": half.p99_ms,
                "serve_peak_rss_mb_e2e": server.peak_rss_mb(),
            }
        finally:
            server.stop()
        clear_events(self.url)

    async def _memory(self, smtp_url: str) -> None:
        sizes = self.sizes
        api, endpoint = self._envoi("api-queue", ["serve", "--no-worker"])
        assert endpoint is not None
        try:
            _, advance = self._task(f"queueing {sizes.queued_events:,} events", sizes.queued_events)
            seqs = range(QUEUE_SEQ, QUEUE_SEQ + sizes.queued_events)
            for start in range(0, len(seqs), 50_000):  # encode in slices: the harness must not hold 1 M bodies
                await push_batches(
                    endpoint, encode_batches(endpoint, seqs[start : start + 50_000], 1_000), clients=2, progress=advance
                )
            worker, _ = self._envoi("worker", ["worker"], ENVOI_SMTP_URL=smtp_url)
            task, _ = self._task("draining with 1 worker (memory)", sizes.drain_seconds)
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < sizes.drain_seconds:
                worker.check_alive()
                self.progress.update(task, completed=elapsed)
                await asyncio.sleep(0.25)
            self.figures |= {
                "queued_events": sizes.queued_events,
                "api_peak_rss_mb_queued": api.peak_rss_mb(),
                "worker_peak_rss_mb_draining": worker.peak_rss_mb(),
            }
            worker.stop()
        finally:
            api.stop()
        self.figures["peak_rss_mb"] = max(
            self.figures[k]
            for k in (
                "api_peak_rss_mb_ingest",
                "serve_peak_rss_mb_e2e",
                "api_peak_rss_mb_queued",
                "worker_peak_rss_mb_draining",
            )
        )


async def _tick(advance: Any, seconds: float) -> None:
    for _ in range(int(seconds * 4)):
        await asyncio.sleep(0.25)
        advance(0.25)
