from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import ADDRESS_LENGTH, Base, BigId, UTCDateTime, utcnow


class BounceKind(enum.IntEnum):
    IGNORED = 0  # an auto-reply, a delay notice, a report we could not tie to a message
    HARD = 1  # the address does not work and will not: quarantined, the message bounced
    SOFT = 2  # a temporary refusal (mailbox full...): counted, quarantined after too many in a period
    COMPLAINT = 3  # the recipient marked it as spam (a feedback-loop report): quarantined

    @property
    def label(self) -> str:
        return self.name.lower()


class Bounce(Base):
    """One report received by the inbound listener about a message we sent, and what we made of it."""

    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[int] = mapped_column(SmallInteger)
    # A foreign key on SQLite only (messages are partitioned on PostgreSQL); bounces are purged by received_at.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), index=True)
    event_id: Mapped[int | None] = mapped_column(BigId, index=True, doc="Not a foreign key: kept after a purge.")
    address: Mapped[str | None] = mapped_column(String(ADDRESS_LENGTH))
    status_code: Mapped[str | None] = mapped_column(String(16), doc="The enhanced status code, like 5.1.1.")
    diagnostic: Mapped[str | None] = mapped_column(Text, doc="What the remote server said, or why it was ignored.")
    reporter: Mapped[str | None] = mapped_column(String(255), doc="The server that sent the report.")

    # Soft bounces are counted per address over a period.
    __table_args__ = (Index("ix_bounces_address_received_at", "address", "received_at"),)
