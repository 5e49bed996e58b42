from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import ADDRESS_LENGTH, Base, BigId, UTCDateTime, utcnow


class MessageStatus(enum.IntEnum):
    RETRYING = 0  # the provider asked us to try again later
    SENT = 1  # accepted by the provider
    FAILED = 2  # refused for good, or retries exhausted
    DELIVERED = 3  # the network confirmed it reached the phone (a delivery receipt)
    UNDELIVERED = 4  # the network gave up on it after accepting it (a delivery receipt)
    BOUNCED = 5  # the receiving mail server sent it back for good (a hard bounce report)

    @property
    def label(self) -> str:
        return self.name.lower()


# Accepted by the provider, whatever became of the message afterwards: what reports and statistics call sent.
ACCEPTED = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.BOUNCED)


class Message(Base):
    """One rendered template version sent to one address (Adobe's broadLog)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # A foreign key on SQLite only: see envoi.db.partitions (partitioned by day on created_at on PostgreSQL).
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("template_versions.id", ondelete="SET NULL"))
    language: Mapped[str | None] = mapped_column(String(35), doc="The template variant it was rendered in.")
    status: Mapped[int] = mapped_column(SmallInteger)
    subject: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(64), doc="The name of the provider that took it.")
    provider_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(SmallInteger, default=1)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the provider was handed the message: sending time is sent_at - send_started_at.
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The first open, click and unsubscription by a person (bots are not counted): what A/B tests compare.
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Delivery receipts find their message by the provider's id.
    # Per template version figures read a version's messages.
    __table_args__ = (
        Index("ix_messages_channel_provider_id", "channel", "provider_id"),
        Index("ix_messages_template_version_id", "template_version_id"),
    )


class QuarantinedAddress(Base):
    """An address that must not be sent to on a channel, and why."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("channel", "address"),)
