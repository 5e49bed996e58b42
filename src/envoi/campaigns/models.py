"""Profiles (the people marketing emails go to), audiences (saved filters over them), and email deliveries:
a marketing email to an audience, with 1 to 3 variants and, with 2 or more, an A/B test."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, Json, UTCDateTime, utcnow


class Profile(Base):
    """A person. Deduplicated by email (stored lower-case) and by external id, each unique when given."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(35))
    external_id: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_how: Mapped[str | None] = mapped_column(String(100), doc="one-click header, link, API, import.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index(
            "uq_profiles_email",
            "email",
            unique=True,
            postgresql_where=text("email IS NOT NULL"),
            sqlite_where=text("email IS NOT NULL"),
        ),
        Index(
            "uq_profiles_external_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
            sqlite_where=text("external_id IS NOT NULL"),
        ),
    )


class Audience(Base):
    """A saved filter over profiles: who is in it is decided when a delivery is sent, not when it is saved."""

    __tablename__ = "audiences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    filters: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list, doc="Conditions, all must hold.")
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class DeliveryState(enum.StrEnum):
    """``draft`` (editable) -> ``scheduled`` (waits for its time) -> ``testing`` (the A/B test's variants went
    out; the rest waits for the winner) -> ``waiting_for_choice`` (an operator must pick the winner) ->
    ``sent`` (everything handed to the queue). ``cancelled`` from any state: what was not sent yet never is."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    TESTING = "testing"
    WAITING_FOR_CHOICE = "waiting_for_choice"
    SENT = "sent"
    CANCELLED = "cancelled"


class Criterion(enum.StrEnum):
    OPEN_RATE = "open_rate"  # most opens per message sent
    CLICK_RATE = "click_rate"  # most clicks per message sent
    FEWEST_UNSUBSCRIPTIONS = "fewest_unsubscriptions"  # fewest unsubscriptions per message sent


class WinnerMode(enum.StrEnum):
    AUTOMATIC = "automatic"  # the winner goes to the rest of the audience when the test ends
    MANUAL = "manual"  # an operator confirms the winner in the console


class Delivery(Base):
    """A marketing email, or a delivery template (``is_template``: copied into new deliveries)."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    is_template: Mapped[bool] = mapped_column(Boolean, default=False)
    factory: Mapped[bool] = mapped_column(Boolean, default=False, doc="Shipped with Envoi: cannot be deleted.")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    audience_id: Mapped[int | None] = mapped_column(ForeignKey("audiences.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(24), default=DeliveryState.DRAFT)
    notifications: Mapped[bool] = mapped_column(Boolean, default=True, doc="Tell its creator and editors.")
    variants: Mapped[list[dict[str, Any]]] = mapped_column(Json, doc="[{name, from, replyTo, subject, html, text}]")
    test_split: Mapped[list[int]] = mapped_column(Json, default=list, doc="Percent of the audience per variant.")
    criterion: Mapped[str] = mapped_column(String(32), default=Criterion.OPEN_RATE)
    test_duration_seconds: Mapped[int] = mapped_column(Integer, default=4 * 3600)
    winner_mode: Mapped[str] = mapped_column(String(16), default=WinnerMode.AUTOMATIC)
    seed: Mapped[int] = mapped_column(BigId, default=0, doc="Makes the split reproducible.")
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    test_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    winner: Mapped[str | None] = mapped_column(String(1))
    winner_chosen_by: Mapped[str | None] = mapped_column(String(320), doc="An operator's login, or 'automatic'.")
    decision: Mapped[str | None] = mapped_column(Text, doc="Why the winner won, or why a person must choose.")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("uq_deliveries_is_template_name", "is_template", "name", unique=True),
        Index(
            "ix_deliveries_due",
            "state",
            postgresql_where=text("state IN ('scheduled', 'testing')"),
            sqlite_where=text("state IN ('scheduled', 'testing')"),
        ),
    )


class DeliveryRecipient(Base):
    """Who a launched delivery goes to, fixed at launch: a test variant, or null for the rest of the audience,
    who get the winner. ``queued_at``: the event that carries their email was created."""

    __tablename__ = "delivery_recipients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    variant: Mapped[str | None] = mapped_column(String(1))
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("delivery_id", "profile_id"),
        Index("ix_delivery_recipients_variant", "delivery_id", "variant"),
    )
