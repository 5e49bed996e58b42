"""Delivery receipts: what the network says later about a sent message becomes the message's status.

A receipt can come back before the batch that sent the message has recorded it (an SMSC answers in
milliseconds), so a receipt that finds no message yet is tried again for a while before it is dropped.
"""

from __future__ import annotations

import asyncio
import functools

import structlog
from sqlalchemy import func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.channels.base import Receipt, ReceiptHandler
from envoi.db.base import utcnow
from envoi.db.outage import store_unavailable
from envoi.delivery.models import Message, MessageStatus
from envoi.webhooks.models import Change
from envoi.webhooks.outbox import announce_message

log = structlog.get_logger(__name__)
_WAITS = (0.1, 0.3, 1.0, 2.0, 5.0, 10.0, 20.0)  # about 40 s in all: longer than a batch takes to record


async def record_receipt(session: AsyncSession, channel: str, provider: str | None, receipt: Receipt) -> int:
    """Set the status of the message the receipt is about; returns how many messages it matched (0 or 1).

    Providers reuse their ids (an SMSC restarted): the receipt is for the newest message sent through that
    provider with that id that has no receipt yet (messages sent before providers were recorded match any)."""
    status = MessageStatus.DELIVERED if receipt.delivered else MessageStatus.UNDELIVERED
    newest = (
        select(func.max(Message.id))
        .where(
            Message.channel == channel,
            Message.provider_id == receipt.provider_id,
            Message.status == MessageStatus.SENT,
            or_(Message.provider == provider, Message.provider.is_(None)) if provider else true(),
        )
        .scalar_subquery()
    )
    now = utcnow()
    matched = (
        await session.execute(
            update(Message)
            .where(Message.id == newest)
            .values(
                status=status, error=None if receipt.delivered else f"not delivered: {receipt.status}", updated_at=now
            )
            .returning(Message.id, Message.event_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if matched and receipt.delivered:
        message_id, event_id = matched[0]
        about = {"id": message_id, "channel": channel, "status": "delivered"}
        await announce_message(session, Change.MESSAGE_DELIVERED, event_id=event_id, message=about, now=now)
    return len(matched)


class ReceiptRecorder:
    """Records the receipts of every provider, waiting for a receipt's message to be recorded if need be."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self.sessionmaker = sessionmaker
        self._waiting: set[asyncio.Task[None]] = set()

    def handler(self, channel: str, provider: str | None) -> ReceiptHandler:
        """The ``on_receipt`` of one provider of a channel."""
        return functools.partial(self.record, channel, provider)

    async def record(self, channel: str, provider: str | None, receipt: Receipt) -> None:
        if await self._record(channel, provider, receipt):
            return
        # Not awaited: the receipts behind it must not wait.
        task = asyncio.create_task(self._later(channel, provider, receipt))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _record(self, channel: str, provider: str | None, receipt: Receipt) -> bool:
        async with self.sessionmaker.begin() as session:
            return await record_receipt(session, channel, provider, receipt) > 0

    async def _later(self, channel: str, provider: str | None, receipt: Receipt) -> None:
        for wait in _WAITS:
            await asyncio.sleep(wait)
            try:
                if await self._record(channel, provider, receipt):
                    return
            except Exception as error:  # the database is away for a moment: the next try may find it back
                if store_unavailable(error) is None:
                    raise
        log.warning("delivery.receipt_unmatched", channel=channel, provider=provider, provider_id=receipt.provider_id)

    async def aclose(self) -> None:
        """Stop waiting (before the database closes): a receipt still unmatched now is dropped."""
        for task in list(self._waiting):
            task.cancel()
        await asyncio.gather(*self._waiting, return_exceptions=True)
