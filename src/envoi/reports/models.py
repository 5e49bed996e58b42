from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, UTCDateTime


class QueueSample(Base):
    """The queue's depth at one moment, per event type and channel (sampled every minute)."""

    __tablename__ = "queue_samples"

    at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    processing: Mapped[int] = mapped_column(Integer, default=0)
    paused: Mapped[int] = mapped_column(Integer, default=0)


class ThresholdState(Base):
    """Where a watched figure stands against its warning and alert thresholds: one row per figure, changed by
    a conditional update that only one process wins, in the transaction that notifies the supervisors."""

    __tablename__ = "threshold_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, default=0, doc="0 normal, 1 warning, 2 alert.")
    value: Mapped[float | None] = mapped_column(Float)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
