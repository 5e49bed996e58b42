"""A template's audit trail: who changed, published or proofed it, and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import utcnow
from envoi.templates.models import TemplateAuditEntry


def record(
    session: AsyncSession, template_id: int, actor: str, action: str, details: dict[str, Any] | None = None
) -> None:
    session.add(TemplateAuditEntry(template_id=template_id, actor=actor, action=action, details=details, at=utcnow()))


async def trail(session: AsyncSession, template_id: int, *, limit: int = 200) -> list[TemplateAuditEntry]:
    """The newest entries first."""
    rows = await session.scalars(
        select(TemplateAuditEntry)
        .where(TemplateAuditEntry.template_id == template_id)
        .order_by(TemplateAuditEntry.id.desc())
        .limit(limit)
    )
    return list(rows)
