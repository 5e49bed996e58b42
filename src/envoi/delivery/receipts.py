"""Delivery receipts: what the network says later about a sent message becomes the message's status.

A receipt can come back before the batch that sent the message has recorded it (an SMSC answers in
milliseconds), so a receipt that finds no message yet is tried again for a while before it is dropped.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.channels.base import Receipt
from envoi.db.base import utcnow
from envoi.delivery.models import Message, MessageStatus

log = structlog.get_logger(__name__)
_WAITS = (0.1, 0.3, 1.0, 2.0, 5.0, 10.0, 20.0)  # about 40 s in all: longer than a batch takes to record


async def record_receipt(session: AsyncSession, channel: str, receipt: Receipt) -> int:
    """Set the status of the message the receipt is about; returns how many messages it matched (0 or 1).

    Providers reuse their ids (an SMSC restarted, another SMSC configured): the receipt is for the newest sent
    message with that id that has no receipt yet."""
    status = MessageStatus.DELIVERED if receipt.delivered else MessageStatus.UNDELIVERED
    newest = (
        select(func.max(Message.id))
        .where(
            Message.channel == channel,
            Message.provider_id == receipt.provider_id,
            Message.status == MessageStatus.SENT,
        )
        .scalar_subquery()
    )
    result = await session.execute(
        update(Message)
        .where(Message.id == newest)
        .values(
            status=status,
            error=None if receipt.delivered else f"not delivered: {receipt.status}",
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


class ReceiptRecorder:
    """A channel's ``on_receipt``: records each receipt, waiting for its message to be recorded if need be."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], channel: str):
        self.sessionmaker = sessionmaker
        self.channel = channel
        self._waiting: set[asyncio.Task[None]] = set()

    async def __call__(self, receipt: Receipt) -> None:
        if await self._record(receipt):
            return
        task = asyncio.create_task(self._later(receipt))  # not awaited: the receipts behind it must not wait
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _record(self, receipt: Receipt) -> bool:
        async with self.sessionmaker.begin() as session:
            return await record_receipt(session, self.channel, receipt) > 0

    async def _later(self, receipt: Receipt) -> None:
        for wait in _WAITS:
            await asyncio.sleep(wait)
            if await self._record(receipt):
                return
        log.warning("delivery.receipt_unmatched", channel=self.channel, provider_id=receipt.provider_id)

    async def aclose(self) -> None:
        """Stop waiting (before the database closes): a receipt still unmatched now is dropped."""
        for task in list(self._waiting):
            task.cancel()
        await asyncio.gather(*self._waiting, return_exceptions=True)
