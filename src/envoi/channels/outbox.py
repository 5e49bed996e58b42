"""The built-in outbox: captures emails, SMS and push notifications in the database instead of sending them
(the embedded default)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from envoi.channels.base import EmailMessage, Outcome, Retry, Sent
from envoi.channels.push import PushMessage
from envoi.channels.sms import SmsMessage
from envoi.db.base import ADDRESS_LENGTH, Base, BigId, Json, UTCDateTime, utcnow
from envoi.db.outage import store_unavailable


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(ADDRESS_LENGTH), index=True)
    reply_to: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(
        Json, doc='[{"filename", "contentType", "size"}], not the bytes; null in rows older than the column.'
    )
    push: Mapped[dict[str, Any] | None] = mapped_column(Json, doc='Push: {"platform", "data", "badge", "sound"}.')
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxChannel:
    """Every message is accepted and kept; ``GET /api/v1/outbox`` shows them."""

    name = "outbox"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self._sessionmaker = sessionmaker

    async def send_many(self, messages: Sequence[EmailMessage | SmsMessage | PushMessage]) -> list[Outcome]:
        if not messages:
            return []
        now = utcnow()
        rows = [_row(m) | {"created_at": now} for m in messages]
        try:
            async with self._sessionmaker.begin() as session:
                ids = (
                    await session.scalars(
                        insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True), rows
                    )
                ).all()
        except Exception as error:  # the database is away: like a provider that is down, try again later
            if (unavailable := store_unavailable(error)) is None:
                raise
            retry = Retry(f"the outbox cannot store it: {unavailable.details['cause']}", unavailable.retry_after)
            return [retry] * len(messages)
        return [Sent(provider_id=f"outbox-{i}") for i in ids]

    async def aclose(self) -> None:
        return None


def _row(message: EmailMessage | SmsMessage | PushMessage) -> dict[str, Any]:
    if isinstance(message, PushMessage):
        return {
            "channel": "push",
            "sender": "",
            "recipient": message.token,
            "reply_to": None,
            "subject": message.title,
            "html": None,
            "text": message.body,
            "message_id": None,
            "attachments": [],
            "push": {
                "platform": message.platform,
                "data": dict(message.data),
                "badge": message.badge,
                "sound": message.sound,
            },
        }
    if isinstance(message, SmsMessage):
        return {
            "channel": "sms",
            "sender": message.sender or "",
            "recipient": message.to,
            "reply_to": None,
            "subject": None,
            "html": None,
            "text": message.text,
            "message_id": None,
            "attachments": [],
        }
    return {
        "channel": "email",
        "sender": message.sender,
        "recipient": message.to,
        "reply_to": message.reply_to,
        "subject": message.subject,
        "html": message.html,
        "text": message.text,
        "message_id": message.message_id,
        "attachments": [
            {"filename": a.filename, "contentType": a.content_type, "size": len(a.data)} for a in message.attachments
        ],
    }
