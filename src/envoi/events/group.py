"""Group commit: concurrent single-event requests share one transaction, and each gets its 202 only once
that transaction has committed. One commit (one fsync) then serves dozens of requests instead of one."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.db.notify import Wakeup
from envoi.db.outage import fail_group
from envoi.errors import EnvoiError
from envoi.events.schemas import EventIn
from envoi.events.service import ingest_many


@dataclass(slots=True)
class _Pending:
    event: EventIn
    api_key_id: int | None
    future: asyncio.Future[int]


class IngestGroup:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        wakeup: Wakeup,
        max_group: int = 1_000,
        region: str | None = None,
    ):
        self._sessionmaker = sessionmaker
        self._region = region  # for phone numbers without a country code
        self._wakeup = wakeup
        self._max_group = max_group
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()  # None: stop once all before it is in
        self._task: asyncio.Task[None] | None = None

    async def submit(self, event: EventIn, api_key_id: int | None) -> int:
        """The new event's id, once it is committed; raises the event's own validation error otherwise."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="envoi-ingest-group")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(event, api_key_id, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            group = [first] if first is not None else []
            stopping = first is None
            # Whatever arrived while the previous group was committing goes in this one.
            while not stopping and len(group) < self._max_group and not self._queue.empty():
                item = self._queue.get_nowait()
                stopping = item is None
                if item is not None:
                    group.append(item)
            if group:
                await self._commit(group)

    async def _commit(self, group: list[_Pending]) -> None:
        try:
            async with self._sessionmaker.begin() as session:
                results = await ingest_many(session, [(p.event, p.api_key_id) for p in group], region=self._region)
        except Exception as error:
            message = "The events could not be stored; try again."
            fail_group((p.future for p in group), error, where="ingest", message=message, events=len(group))
            return
        for pending, result in zip(group, results, strict=True):
            if pending.future.done():  # the client went away; the event is stored all the same
                continue
            if isinstance(result, EnvoiError):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        self._wakeup.ring()

    async def aclose(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
