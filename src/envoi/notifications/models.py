from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, UTCDateTime, utcnow


class Notification(Base):
    """One operator's copy of something that needs them (``action_required``) or that they should know (``info``)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(2000), doc="The console page of its object.")
    object_type: Mapped[str | None] = mapped_column(String(64))  # template, event, workflow, delivery...
    object_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # An operator's list, newest first, and their unread count.
    __table_args__ = (Index("ix_notifications_operator_id_id", "operator_id", "id"),)


class FailureAlert(Base):
    """When an event type last alerted its supervisors that its events keep failing: one row per type, updated
    by a conditional upsert that only one process wins per window."""

    __tablename__ = "failure_alerts"

    event_type: Mapped[str] = mapped_column(String(100), primary_key=True)
    alerted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    failed: Mapped[int] = mapped_column()
    ended: Mapped[int] = mapped_column()
