"""Token buckets in the database (``rate_buckets``), so that every API process draws from the same one.

One statement per request refills the bucket by the time since it was last counted (by the database's clock: the
processes' clocks need not agree), caps it at the burst, and takes the request's cost only if enough is there.
Concurrent requests of a process share one transaction, as their events share one (events/group.py): a commit,
and its flush to disk, serves them all rather than one each.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Delete, Float, cast, delete, extract, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from envoi.db.outage import fail_group
from envoi.events.models import RateBucket
from envoi.settings import Settings


def bucket_size(settings: Settings) -> float:
    """The burst: ``ingest_burst_per_key``, or a second of the rate (one event at least)."""
    return float(settings.ingest_burst_per_key or max(settings.ingest_rate_per_key, 1.0))


class RateBuckets:
    """The statements on ``rate_buckets``, written for the database's clock and dialect (SQLite spells LEAST and
    GREATEST as MIN and MAX)."""

    @classmethod
    def of(cls, settings: Settings) -> RateBuckets:
        return cls(sqlite=settings.is_sqlite, rate=settings.ingest_rate_per_key, burst=bucket_size(settings))

    def __init__(self, *, sqlite: bool, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.sqlite = sqlite
        # Seconds since the epoch. PostgreSQL's clock_timestamp() is read once the row is locked, so a request
        # that waited for another never counts time before it.
        self.now: ColumnElement[float] = (
            (func.julianday("now") - 2440587.5) * 86400.0
            if sqlite
            else cast(extract("epoch", func.clock_timestamp()), Float)
        )

    def _least(self, *values: ColumnElement[float] | InstrumentedAttribute[float]) -> ColumnElement[float]:
        return func.min(*values) if self.sqlite else func.least(*values)

    def _greatest(self, *values: ColumnElement[float] | InstrumentedAttribute[float]) -> ColumnElement[float]:
        return func.max(*values) if self.sqlite else func.greatest(*values)

    def refilled(self) -> ColumnElement[float]:
        """The bucket's tokens now: what it held plus the rate since, up to the burst."""
        elapsed = self._greatest(literal(0.0), self.now - RateBucket.counted_at)
        return self._least(literal(self.burst), RateBucket.tokens + elapsed * self.rate)

    async def take(self, session: AsyncSession, name: str, cost: float, needed: float) -> float | None:
        """Takes ``cost`` tokens if ``needed`` are there, in one statement; None when taken, else the tokens the
        bucket holds (``needed`` is at most the burst, which a new bucket holds: a first request is admitted)."""
        refilled = self.refilled()
        insert = sqlite_insert if self.sqlite else postgresql_insert
        upsert = insert(RateBucket).values(key=name, tokens=self.burst - cost, counted_at=self.now)
        taken = upsert.on_conflict_do_update(
            index_elements=[RateBucket.key],
            set_={"tokens": refilled - cost, "counted_at": self._greatest(RateBucket.counted_at, self.now)},
            where=refilled >= needed,  # otherwise the row is left as it was and nothing is returned
        ).returning(RateBucket.key)
        if (await session.execute(taken)).first() is not None:
            return None
        held = await session.scalar(select(refilled).where(RateBucket.key == name))
        return float(held or 0.0)  # the row is there: the upsert locked it (SQLite: the transaction did)

    def stale(self) -> Delete:
        """Buckets full again, which say nothing a missing one would not (all of them when rates are off)."""
        if not self.rate:
            return delete(RateBucket)
        return delete(RateBucket).where(self.refilled() >= self.burst)


@dataclass(slots=True)
class _Take:
    name: str
    cost: float
    needed: float
    future: asyncio.Future[float | None]


class TakeGroup:
    """Runs the takes of concurrent requests in one transaction; each gets its answer once it has committed."""

    def __init__(self, buckets: RateBuckets, sessionmaker: async_sessionmaker[AsyncSession], max_group: int = 500):
        self._buckets = buckets
        self._sessionmaker = sessionmaker
        self._max_group = max_group
        self._queue: asyncio.Queue[_Take] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def take(self, name: str, cost: float, needed: float) -> float | None:
        """As RateBuckets.take; raises StoreUnavailable (503) when the database cannot take it now."""
        future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Take(name, cost, needed, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="envoi-rate-buckets")
        return await future

    async def _run(self) -> None:
        """Until no take waits (then it ends: no task outlives the requests, and the next take starts one)."""
        while not self._queue.empty():
            group = [self._queue.get_nowait()]
            while len(group) < self._max_group and not self._queue.empty():  # what came during the last commit
                group.append(self._queue.get_nowait())
            await self._commit(group)

    async def _take_all(self, session: AsyncSession, takes: list[_Take]) -> dict[int, float | None]:
        """One bucket's takes, in the order they came. A busy caller's requests are taken by one statement
        when all of them fit (as many statements as requests would be taken one after the other otherwise)."""
        if len(takes) > 1:
            total, needed = 0.0, 0.0  # all fit if the bucket holds, for each, what it needs after those before it
            for take in takes:
                needed, total = max(needed, total + take.needed), total + take.cost
            if (
                needed <= self._buckets.burst
                and await self._buckets.take(session, takes[0].name, total, needed) is None
            ):
                return dict.fromkeys(map(id, takes))
        return {id(t): await self._buckets.take(session, t.name, t.cost, t.needed) for t in takes}

    async def _commit(self, group: list[_Take]) -> None:
        try:
            async with self._sessionmaker.begin() as session:
                if not self._buckets.sqlite:
                    # A crash losing the last takes only hands a few tokens back: not worth waiting for the disk.
                    await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
                answers: dict[int, float | None] = {}
                # Buckets are locked in the order of their names in every process, so two groups never deadlock.
                for _name, takes in itertools.groupby(sorted(group, key=lambda t: t.name), key=lambda t: t.name):
                    answers |= await self._take_all(session, list(takes))
        except asyncio.CancelledError:  # the process stops: the requests waiting stop with it
            for pending in group:
                pending.future.cancel()
            raise
        except Exception as error:
            message = "The request could not be admitted; try again."
            fail_group((p.future for p in group), error, where="rate_limit", message=message, requests=len(group))
            return
        for pending in group:
            if not pending.future.done():  # the client went away: its tokens are spent all the same
                pending.future.set_result(answers[id(pending)])
