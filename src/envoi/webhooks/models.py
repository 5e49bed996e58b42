"""Status webhooks: subscriptions, the outbox of calls written in the transaction of the status change they
announce, and the record of each attempt to deliver one."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, Json, UTCDateTime, utcnow


class Change(enum.StrEnum):
    """The status changes a subscription can ask for."""

    EVENT_PROCESSED = "event.processed"
    EVENT_FAILED = "event.delivery_failed"
    EVENT_IGNORED = "event.ignored"
    EVENT_ROUTING_FAILED = "event.routing_failed"
    EVENT_TOO_OLD = "event.too_old"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_BOUNCED = "message.bounced"
    MESSAGE_OPENED = "message.opened"
    MESSAGE_CLICKED = "message.clicked"


class CallStatus(enum.StrEnum):
    PENDING = "pending"  # to be sent, now or after a retry delay
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # retried for the whole period, or its subscription was disabled


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    changes: Mapped[list[str]] = mapped_column(Json, doc="The status changes it receives.")
    event_types: Mapped[list[str] | None] = mapped_column(Json, doc="Only these event types; null: all.")
    secret: Mapped[str] = mapped_column(String(200), doc="Signs each call (HMAC-SHA256); shown once.")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="SET NULL"), doc="Told when it is disabled."
    )
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WebhookCall(Base):
    """One status change to announce to one subscription: the outbox the sender drains."""

    __tablename__ = "webhook_calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    change: Mapped[str] = mapped_column(String(40))
    body: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.PENDING)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, doc="Or a sender's lease.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_webhook_calls_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """One try at delivering a call: what the receiver answered, and how fast."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    call_id: Mapped[int] = mapped_column(ForeignKey("webhook_calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, doc="Null: no answer (refused, timed out).")
    latency_ms: Mapped[int] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text, doc="The start of the answer, or why there was none.")

    __table_args__ = (Index("ix_webhook_attempts_webhook_at", "webhook_id", "at"),)
