"""The delivery worker: loops that claim batches and push them through the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.channels.base import Channel
from envoi.db.base import utcnow
from envoi.db.notify import Wakeup
from envoi.delivery.claim import claim_batch
from envoi.delivery.pipeline import Decision, DeliveryPipeline, load_context
from envoi.observability.metrics import count_batch
from envoi.outbound import OutboundClient
from envoi.settings import Settings

log = structlog.get_logger(__name__)
_RENDER_SLICE = 20


class Worker:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        channels: Mapping[str, Channel[Any]],
        outbound: OutboundClient,
        wakeup: Wakeup | None = None,
    ):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.pipeline = DeliveryPipeline(settings, channels, outbound)
        self.wakeup = wakeup or Wakeup()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def deliver_one_batch(self) -> int:
        """Claim, send and record one batch; returns how many events it handled (0: nothing due)."""
        settings = self.settings
        now = utcnow()
        owner = uuid.uuid4().hex  # one lease per claim: not even this process's other loops may record it
        started = time.perf_counter()
        async with self.sessionmaker.begin() as session:
            events = await claim_batch(
                session,
                owner=owner,
                size=settings.worker_batch_size,
                lease_seconds=settings.worker_lease_seconds,
                now=now,
            )
            if not events:
                return 0
            context = await load_context(session, events, self.settings)
        claimed = time.perf_counter()
        decisions = []
        for start in range(0, len(events), _RENDER_SLICE):
            decisions += self.pipeline.decide(events[start : start + _RENDER_SLICE], context, now)
            await asyncio.sleep(0)  # rendering is CPU: let SMTP replies and API requests in between slices
        rendered = time.perf_counter()
        send_started = utcnow()  # for the reports' sending time, with ``done``
        await self.pipeline.send(decisions)
        sent = time.perf_counter()
        done = utcnow()
        self.pipeline.settle(decisions, done)
        self.pipeline.fall_back(decisions, context, done)
        async with self.sessionmaker.begin() as session:
            recorded = await self.pipeline.record(session, owner, decisions, context, done, send_started)
        if recorded < len(decisions):
            log.warning("delivery.lease_lost", worker=self.name, events=len(decisions) - recorded)
        timings = (started, claimed, rendered, sent, time.perf_counter())
        log_batch(decisions, self.name, [round((b - a) * 1000, 1) for a, b in itertools.pairwise(timings)])
        return len(events)

    async def run(self, stop: asyncio.Event) -> None:
        """Run ``worker_concurrency`` loops until ``stop`` is set; each finishes its batch before leaving."""
        log.info("worker.started", worker=self.name, concurrency=self.settings.worker_concurrency)
        loops = [asyncio.create_task(self._loop(stop)) for _ in range(self.settings.worker_concurrency)]
        await stop.wait()
        self.wakeup.ring()
        await asyncio.gather(*loops)
        log.info("worker.stopped", worker=self.name)

    async def _loop(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                handled = await self.deliver_one_batch()
                failures = 0
            except Exception:
                # The database went away or a bug: the lease returns the batch to the queue; back off and go on.
                failures += 1
                log.exception("worker.batch_failed", worker=self.name, consecutive=failures)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(30.0, 0.5 * 2**failures))
                continue
            if handled == 0:
                await self.wakeup.wait(self.settings.worker_poll_seconds)


def log_batch(decisions: list[Decision], worker: str, stage_ms: list[float]) -> None:
    """One line per batch: how many ended in each status, and milliseconds spent claiming, rendering,
    sending and recording; the same figures for /metrics."""
    counts: dict[str, int] = {}
    for d in decisions:
        counts[d.status.label] = counts.get(d.status.label, 0) + 1
    log.info("delivery.batch_recorded", worker=worker, events=len(decisions), ms=stage_ms, **counts)
    count_batch(decisions, stage_ms)
