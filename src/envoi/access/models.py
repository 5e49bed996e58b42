from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, Json, UTCDateTime, utcnow


class ApiKey(Base):
    """A bearer key. Only its SHA-256 is stored: keys are 256-bit random, so a slow hash buys nothing."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), doc="The first characters, to tell keys apart in lists.")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), index=True, doc="Null: a service account's key."
    )
    scopes: Mapped[list[str]] = mapped_column(Json, doc="The permissions it carries (an operator's: at most theirs).")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Operator(Base):
    """A person who uses the console or the SOAP API. Login is the email; the password is hashed with argon2."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OperatorSession(Base):
    """A session token (Adobe's xtk:session#Logon); only its SHA-256 is stored."""

    __tablename__ = "operator_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(
        String(16), server_default="soap", doc="console or soap: a token opens only the door it was made for."
    )
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SecurityGroup(Base):
    """A set of permissions given to its members; the built-in ones cannot be deleted or renamed."""

    __tablename__ = "security_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    built_in: Mapped[bool] = mapped_column(default=False)
    permissions: Mapped[list[str]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("security_groups.id", ondelete="CASCADE"), primary_key=True)
    operator_id: Mapped[int] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AuditEntry(Base):
    """Who created, changed, published or deleted what, and when (templates keep their own detailed trail)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(400))
    operator_id: Mapped[int | None] = mapped_column(BigId)
    key_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(64))  # created, changed, deleted, published, revoked...
    object_type: Mapped[str] = mapped_column(String(64))  # operator, group, api_key, provider, template...
    object_id: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)

    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)


class LoginAttempt(Base):
    """A console login attempt, kept a while to slow down password guessing (per login and per address)."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(320))
    address: Mapped[str] = mapped_column(String(64), doc="The client's IP address.")
    succeeded: Mapped[bool] = mapped_column()
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_login_attempts_login_at", "login", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )
