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
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.channels.base import Channel
from envoi.db.base import utcnow
from envoi.db.notify import Wakeup
from envoi.db.outage import retry_while_unavailable
from envoi.delivery.claim import ClaimedEvent, claim_batch
from envoi.delivery.pipeline import BatchContext, Decision, DeliveryPipeline, load_context
from envoi.events.models import Event, EventStatus
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
        # One lease per claim (not even this process's other loops may record it), named after this worker so
        # that an operator can tell which process holds a batch (64 characters at most).
        owner = f"{self.name[-47:]}/{uuid.uuid4().hex[:16]}"
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
        try:
            return await self._send_and_record(events, context, owner, now, started)
        except asyncio.CancelledError:
            await self._return_to_queue(owner, [e.id for e in events])
            raise

    async def _send_and_record(
        self, events: list[ClaimedEvent], context: BatchContext, owner: str, now: datetime, started: float
    ) -> int:
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

        async def record() -> int:
            async with self.sessionmaker.begin() as session:
                return await self.pipeline.record(session, owner, decisions, context, done, send_started)

        # What was sent is recorded once the database is back from a restart, rather than sent again at lease end.
        lease = self.settings.worker_lease_seconds
        recorded = await retry_while_unavailable(record, within=lease, what="delivery.record")
        if recorded < len(decisions):
            log.warning("delivery.lease_lost", worker=self.name, events=len(decisions) - recorded)
        timings = (started, claimed, rendered, sent, time.perf_counter())
        log_batch(decisions, self.name, [round((b - a) * 1000, 1) for a, b in itertools.pairwise(timings)])
        return len(events)

    async def _return_to_queue(self, owner: str, event_ids: list[int]) -> None:
        """A batch stopped before it was recorded goes back to the queue now rather than when its lease ends.
        Messages it had already sent are sent again, as after a crash: the documented in-flight window."""
        now = utcnow()
        try:
            async with asyncio.timeout(5.0), self.sessionmaker.begin() as session:
                released = await session.execute(
                    update(Event)
                    .where(Event.id.in_(event_ids), Event.lease_owner == owner, Event.status == EventStatus.PROCESSING)
                    .values(status=EventStatus.PENDING, lease_owner=None, next_attempt_at=now, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            count = int(released.rowcount or 0)  # type: ignore[attr-defined]
            log.warning("worker.batch_returned", worker=self.name, events=count)
        except Exception:  # the database is gone too: the lease returns the batch when it ends
            log.exception("worker.batch_return_failed", worker=self.name, events=len(event_ids))

    async def run(self, stop: asyncio.Event) -> None:
        """Run ``worker_concurrency`` loops until ``stop`` is set. Each finishes the batch in hand if it can
        within ``shutdown_grace_seconds``; a batch still unfinished then is stopped and goes back to the queue."""
        log.info("worker.started", worker=self.name, concurrency=self.settings.worker_concurrency)
        loops = [asyncio.create_task(self._loop(stop)) for _ in range(self.settings.worker_concurrency)]
        await stop.wait()
        self.wakeup.ring()
        _finished, unfinished = await asyncio.wait(loops, timeout=self.settings.shutdown_grace_seconds)
        for loop in unfinished:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        log.info("worker.stopped", worker=self.name, batches_returned=len(unfinished))

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
