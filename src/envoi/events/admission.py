"""Admission: whether Envoi takes more events now, before it parses or stores them.

Two guards, each answered 429 with ``Retry-After``:

- the queue: while ``ingest_max_queue_depth`` pushed events are due and waiting for a worker, ingestion refuses
  new ones, so that clients hold them instead of the database growing without end while delivery stalls. The
  depth is read at most every ``_READ_EVERY`` seconds by one request of the process, the others use the last
  reading, and the count stops at the limit: the check costs nothing per request, and a reading no more than the
  limit's entries of the queue's partial index (about half a second for a million, so a queue that large is read
  every ten seconds: ``_READ_SHARE``).
- each caller's rate: a token bucket of ``ingest_rate_per_key`` events per second and ``ingest_burst_per_key``
  at once, per API key (or operator, over SOAP), where a batch takes one token per event. One caller pushing
  too much is refused; the others are not affected. The buckets are rows of ``rate_buckets``, so every API
  process draws from the same one (events/rate_buckets.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy import Select, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.access.permissions import Principal
from envoi.db.base import utcnow
from envoi.db.outage import store_unavailable
from envoi.delivery.claim import CLAIMABLE, PENDING
from envoi.errors import QueueFull, RateLimited
from envoi.events.models import Event, EventMode
from envoi.events.rate_buckets import RateBuckets, TakeGroup, bucket_size
from envoi.settings import Settings

log = structlog.get_logger(__name__)

_READ_EVERY = 1.0  # seconds between two readings of the queue's depth, at least
_READ_SHARE = 0.05  # and a reading may take at most this share of the time (a huge queue is read less often)
# Workers drain about a thousand events a second: a few seconds frees room for thousands if they work, and if
# they do not, a refused retry costs us almost nothing.
_QUEUE_FULL_RETRY_AFTER = 5
_MAX_REMEMBERED = 10_000  # refused callers known to this process; authenticated, so a large fleet of keys at most


async def due_events(session: AsyncSession, at_most: int, now: datetime) -> int:
    """Events pushed by clients that are due and waiting for a worker, counted up to ``at_most``."""
    return int(await session.scalar(queue_depth(at_most, now)) or 0)


def queue_depth(at_most: int, now: datetime) -> Select[int]:
    """Scheduled events are not due yet, and a marketing delivery's events are sent after every pushed one:
    neither is a backlog. Each mode is read in the claim's order: a range of its index the planner prefers to a
    scan of the table, which would read every event ever sent before it counts the queue."""

    def waiting(mode: EventMode) -> Select[int]:
        due = select(Event.id).where(CLAIMABLE, PENDING, Event.mode == mode, Event.next_attempt_at <= now)
        part = due.order_by(Event.next_attempt_at).limit(at_most).subquery()
        return select(part.c.id)

    counted = union_all(waiting(EventMode.REALTIME), waiting(EventMode.BATCH)).limit(at_most).subquery()
    return select(func.count()).select_from(counted)


class Admission:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_depth = settings.ingest_max_queue_depth
        self.rate = settings.ingest_rate_per_key
        self.burst = bucket_size(settings)
        self._buckets = TakeGroup(RateBuckets.of(settings), sessionmaker)
        self._sessionmaker = sessionmaker
        self._clock = clock
        # What this process last learnt of refused callers' buckets: (tokens, when), by the process's clock.
        self._refused: dict[str, tuple[float, float]] = {}
        self.depth: int | None = None  # the last reading; None before the first, or while none succeeds
        self._next_read = -math.inf
        self._reading: asyncio.Task[None] | None = None

    async def check_queue(self) -> None:
        """Raises QueueFull while the last reading of the queue's depth is at the limit."""
        if not self.max_depth:
            return
        if self._reading is None and self._clock() >= self._next_read:
            self._reading = asyncio.create_task(self._read_depth(), name="envoi-queue-depth")
        if self.depth is None and self._reading is not None:
            await asyncio.shield(self._reading)  # the process's first requests wait for its first reading
        if self.depth is not None and self.depth >= self.max_depth:
            raise QueueFull(
                f"The queue holds {self.max_depth:,} or more events waiting to be sent: ingestion is paused until "
                f"the workers catch up. Nothing was stored; try again in {_QUEUE_FULL_RETRY_AFTER} seconds.",
                retry_after=_QUEUE_FULL_RETRY_AFTER,
            )

    async def _read_depth(self) -> None:
        started = self._clock()
        try:
            async with self._sessionmaker.begin() as session:
                self.depth = await due_events(session, self.max_depth, utcnow())
        except Exception as error:  # the database is away: ingestion itself says so (503); admit meanwhile
            unavailable = store_unavailable(error)
            if unavailable is None:
                log.exception("ingest.queue_depth_failed")
            self.depth = None
        finally:
            ended = self._clock()
            self._next_read = ended + max(_READ_EVERY, (ended - started) / _READ_SHARE)
            self._reading = None

    async def take(self, caller: Principal, events: int) -> None:
        """Take ``events`` from the caller's bucket, or raise RateLimited saying when there will be enough.

        A batch larger than the burst is taken when the bucket is full and leaves it in debt, paid back at the
        rate before the next is taken: any batch size gets through, and the average rate holds. The database
        being away raises its error, answered 503 like the ingestion that would have followed."""
        if not self.rate:
            return
        name = f"key {caller.key_id}" if caller.key_id is not None else f"operator {caller.operator_id}"
        needed = min(float(events), self.burst)
        now = self._clock()
        # Other processes only ever take tokens: what the bucket held when last read, plus the refill since, is
        # all it can hold now. A caller refused on that alone is refused without asking the database.
        if (known := self._refused.pop(name, None)) is not None:
            at_most = known[0] + (now - known[1]) * self.rate
            if at_most < needed:
                self._refused[name] = known
                raise self._refusal(caller, needed - at_most)
        tokens = await self._buckets.take(name, float(events), needed)
        if tokens is None:
            return
        if len(self._refused) >= _MAX_REMEMBERED:
            self._forget_full(now)
        self._refused[name] = (tokens, now)  # ``now`` was read before the database's: an upper bound still
        raise self._refusal(caller, needed - tokens)

    def _refusal(self, caller: Principal, missing: float) -> RateLimited:
        wait = max(1, math.ceil(missing / self.rate))
        return RateLimited(
            f"{caller.actor} may push {self.rate:g} events a second ({self.burst:g} at once); "
            f"nothing was stored. Try again in {wait} second{'s' if wait > 1 else ''}.",
            retry_after=wait,
        )

    def _forget_full(self, now: float) -> None:
        for name, (tokens, at) in list(self._refused.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self._refused[name]
        if len(self._refused) >= _MAX_REMEMBERED:
            self._refused.clear()  # forgetting only costs the next requests of those callers a statement each
