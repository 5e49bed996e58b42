from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, UTCDateTime, utcnow


class HitKind(enum.StrEnum):
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"


class TrackingHit(Base):
    """One open, click or unsubscription recorded against a message. Bots (a scanner fetching links as the
    email arrives) are kept, flagged, and not counted."""

    __tablename__ = "tracking_hits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # A foreign key on SQLite only (messages are partitioned on PostgreSQL): the purge deletes a message's hits.
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(String(500))
    bot: Mapped[str | None] = mapped_column(String(200), doc="Why it was taken for a bot; null: a person.")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
