from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, SmallInteger, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, Json, UTCDateTime, utcnow


class EventStatus(enum.IntEnum):
    """The event state machine; numbers are ours and are what SOAP callers see. See delivery/README."""

    PENDING = 0
    PROCESSING = 1
    PROCESSED = 2
    IGNORED = 3
    DELIVERY_FAILED = 4
    ROUTING_FAILED = 5
    TOO_OLD = 6
    PAUSED = 7

    @property
    def label(self) -> str:
        return self.name.lower()


# Not ended yet: still to be sent (or sending, or held by a paused template). Such an event has no ended_at,
# counts in the queue's gauges and is never purged.
UNENDED = (EventStatus.PENDING, EventStatus.PROCESSING, EventStatus.PAUSED)


class EventMode(enum.IntEnum):
    """Real-time events are claimed before batch events, and both before marketing emails; the number is the
    claim priority."""

    REALTIME = 0
    BATCH = 1
    MARKETING = 2  # one recipient of an email delivery: never pushed by a client

    @property
    def label(self) -> str:
        return self.name.lower()


MARKETING_EVENT_TYPE = "email_delivery"  # the type of the events an email delivery queues, one per recipient


class EventType(Base):
    __tablename__ = "event_types"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    json_schema: Mapped[dict[str, Any] | None] = mapped_column("schema", Json)
    sample: Mapped[dict[str, Any] | None] = mapped_column(Json)
    default_channel: Mapped[str | None] = mapped_column(String(16), doc="For events that wish for none; null: email.")
    fallback_channel: Mapped[str | None] = mapped_column(
        String(16), doc="Tried when the first channel fails for good or the event has no usable address for it."
    )
    profile_based: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), doc="Its events must name a profile by externalId."
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Event(Base):
    """One occurrence pushed by a client; also the queue entry the worker claims."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    mode: Mapped[int] = mapped_column(SmallInteger, default=EventMode.REALTIME)
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(SmallInteger, default=EventStatus.PENDING)
    email: Mapped[str | None] = mapped_column(String(320))
    mobile_phone: Mapped[str | None] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(255))
    origin: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(35))
    country: Mapped[str | None] = mapped_column(String(35))
    email_format: Mapped[int | None] = mapped_column(SmallInteger, doc="Adobe's: 0 unknown, 1 text, 2 HTML.")
    registration_token: Mapped[str | None] = mapped_column(Text, doc="A push target, with mobile_app_uuid.")
    mobile_app_uuid: Mapped[str | None] = mapped_column(String(64))
    platform: Mapped[str | None] = mapped_column(String(16), doc="Push: ios, android or web.")
    correlation_id: Mapped[str | None] = mapped_column(String(255))
    ctx: Mapped[dict[str, Any]] = mapped_column(Json)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    # Shown with the event; what makes a key unique is its row in idempotency_keys.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # On PostgreSQL the table is partitioned by day on created_at (envoi.db.partitions): its primary key there is
    # (id, created_at), and writes by id say created_at too so that only one day's partition is read.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the event may next be claimed: its schedule, its next retry, or the end of a worker's lease.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # For the reports: when a worker first took the event (queue time ends) and when it reached its final
    # status (processing time ends); null until then.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    error_count: Mapped[int] = mapped_column(SmallInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("templates.id", ondelete="SET NULL"))
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("template_versions.id", ondelete="SET NULL"))
    # Not foreign keys: the queue checks nothing more per insert, and a profile's deletion leaves its events.
    profile_id: Mapped[int | None] = mapped_column(BigId, doc="The profile its externalId matched, when one did.")
    delivery_id: Mapped[int | None] = mapped_column(BigId, doc="Marketing: the email delivery it is one send of.")
    variant: Mapped[str | None] = mapped_column(String(1), doc="Marketing: the delivery's variant it gets.")

    __table_args__ = (
        # The queue: claims read this index in priority order and stay O(batch) however many are done.
        Index(
            "ix_events_claim",
            "mode",
            "next_attempt_at",
            postgresql_where=text("status IN (0, 1)"),
            sqlite_where=text("status IN (0, 1)"),
        ),
        # Abandoned work: a dead worker's events, found by the end of their lease before any new event.
        Index(
            "ix_events_leases",
            "next_attempt_at",
            postgresql_where=text("status = 1"),
            sqlite_where=text("status = 1"),
        ),
        Index(
            "ix_events_paused",
            "template_id",
            postgresql_where=text("status = 7"),
            sqlite_where=text("status = 7"),
        ),
        Index("ix_events_created_at", "created_at"),
        Index(
            "ix_events_delivery_id",
            "delivery_id",
            "profile_id",  # a delivery's figures find each recipient's event by both
            postgresql_where=text("delivery_id IS NOT NULL"),
            sqlite_where=text("delivery_id IS NOT NULL"),
        ),
    )


class EventStatusChange(Base):
    """The timeline: every status an event reached after it was received, with why."""

    __tablename__ = "event_status_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # A foreign key on SQLite only: see envoi.db.partitions (partitioned by day on ``at`` on PostgreSQL).
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    status: Mapped[int] = mapped_column(SmallInteger)
    # Indexed for the failure-rate check, which reads the last minutes of the timeline (appends only: cheap).
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    reason: Mapped[str | None] = mapped_column(Text)


class IdempotencyKey(Base):
    """A client's Idempotency-Key and the event it made. Unique here, not in events: a table partitioned by day
    cannot hold a unique index across its days. Deleted with its event by the purge."""

    __tablename__ = "idempotency_keys"

    event_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    # NULL: a key of Envoi's own (a recycled event's); like any NULL, it never conflicts with another NULL.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True, doc="Its event's.")

    __table_args__ = (Index("uq_idempotency_keys", "api_key_id", "key", unique=True),)


class RateBucket(Base):
    """One caller's token bucket for ingestion (ENVOI_INGEST_RATE_PER_KEY), shared by every API process.

    A bucket that has filled up again says nothing a missing one would not, so the purge deletes those."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(64), primary_key=True, doc="'key <id>' or 'operator <id>'.")
    tokens: Mapped[float] = mapped_column(Float, doc="Below zero after a batch larger than the burst: a debt.")
    # Seconds since the epoch by the database's clock, never the process's: API processes on several machines
    # refill one bucket, and their clocks need not agree.
    counted_at: Mapped[float] = mapped_column(Float)
