from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import ADDRESS_LENGTH, Base, BigId, Json, UTCDateTime, utcnow


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
    content: Mapped[dict[str, Any]] = mapped_column(
        Json, doc="The draft: {email, variants: {language: partial email}, language, layout: name or null}."
    )
    live_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("template_versions.id", use_alter=True, ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # Deleted templates are kept (hidden) so that every message still shows the version it was rendered from.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

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
    content: Mapped[dict[str, Any]] = mapped_column(
        Json, doc="The draft as published, with the layout and snippets it used frozen in: {layout: {...}, snippets}."
    )
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("template_id", "number"),)


class SeedAddress(Base):
    """A test recipient of a template (Adobe's seed address), with the sample event data to render for it."""

    __tablename__ = "template_seeds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(ADDRESS_LENGTH), doc="An email, a phone number or a push token.")
    platform: Mapped[str | None] = mapped_column(String(16), doc="Push: ios, android or web.")
    external_id: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(35))
    ctx: Mapped[dict[str, Any] | None] = mapped_column(Json, doc="Null: the event type's sample is used.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Layout(Base):
    """A shared frame (header, footer) that templates wrap their body in; ``{{ content }}`` marks the body."""

    __tablename__ = "layouts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    html: Mapped[str | None] = mapped_column(Text)
    mjml: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Snippet(Base):
    """A named piece of Liquid that templates include with ``{% render 'name' %}``."""

    __tablename__ = "snippets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TemplateAuditEntry(Base):
    """Who did what to a template, and when: edits, publications, proofs."""

    __tablename__ = "template_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
