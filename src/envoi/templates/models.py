from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, Json, UTCDateTime, utcnow


class TemplateState(enum.StrEnum):
    DRAFT = "draft"  # never published, or unpublished: events of its type and channel fail routing
    PUBLISHED = "published"  # its live version renders every new event
    PAUSED = "paused"  # published, but its events wait with status paused until it is resumed


class Template(Base):
    """A template's editable draft; what is sent comes from its live, immutable version."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(ForeignKey("event_types.name", onupdate="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=TemplateState.DRAFT)
    content: Mapped[dict[str, Any]] = mapped_column(Json, doc="The draft, in the API's shape for its channel.")
    live_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("template_versions.id", use_alter=True, ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        # At most one template per event type and channel is live (published or paused).
        Index(
            "uq_templates_live_route",
            "event_type",
            "channel",
            unique=True,
            postgresql_where=text("state <> 'draft'"),
            sqlite_where=text("state <> 'draft'"),
        ),
    )


class TemplateVersion(Base):
    """A published snapshot. Never updated: every message records the version it was rendered from."""

    __tablename__ = "template_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column()
    content: Mapped[dict[str, Any]] = mapped_column(Json)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("template_id", "number"),)
