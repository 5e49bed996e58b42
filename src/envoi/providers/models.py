from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, Json, UTCDateTime, utcnow


class Provider(Base):
    """A provider configured through the API (those of the environment and the settings file are not stored)."""

    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str | None] = mapped_column(String(16), doc="default, backup, or null: configured but unused.")
    settings: Mapped[dict[str, Any]] = mapped_column(Json, doc="The kind's settings, secrets included.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
