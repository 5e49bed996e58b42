"""The audit log: who created, changed, published or deleted what, and when. Written in the caller's
transaction, so an action and its entry are stored together or not at all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.models import AuditEntry
from envoi.access.permissions import Principal
from envoi.db.base import utcnow


def audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    object_type: str,
    object_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=principal.actor,
            operator_id=principal.operator_id,
            key_id=principal.key_id,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            details=details,
        )
    )


async def audit_trail(
    session: AsyncSession,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first; ``before_id`` pages back."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == object_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list((await session.scalars(query)).all())
