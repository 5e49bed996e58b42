"""Per template version figures: of the messages rendered from each version, how many were sent, delivered,
bounced, opened and clicked (one grouped query on the messages' template version index)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.delivery.models import ACCEPTED, Message, MessageStatus
from envoi.templates.service import get_template
from envoi.templates.versions import list_versions


@dataclass(frozen=True, slots=True)
class Figures:
    sent: int = 0  # accepted by the provider
    delivered: int = 0  # confirmed by a delivery receipt (SMS: email has no receipts)
    bounced: int = 0  # sent back for good by the receiving mail server
    opened: int = 0  # opened by a person at least once
    clicked: int = 0  # a link clicked by a person at least once


@dataclass(frozen=True, slots=True)
class VersionFigures:
    version_id: int
    number: int
    published_at: datetime
    live: bool
    figures: Figures


async def figures_by_version(session: AsyncSession, version_ids: list[int]) -> dict[int, Figures]:
    """Each version's figures (zeros for a version that sent nothing)."""
    if not version_ids:
        return {}
    rows = await session.execute(
        select(
            Message.template_version_id,
            func.count(case((Message.status.in_([int(s) for s in ACCEPTED]), 1))),
            func.count(case((Message.status == MessageStatus.DELIVERED, 1))),
            func.count(case((Message.status == MessageStatus.BOUNCED, 1))),
            func.count(Message.opened_at),
            func.count(Message.clicked_at),
        )
        .where(Message.template_version_id.in_(version_ids))
        .group_by(Message.template_version_id)
    )
    found = {version_id: Figures(*(int(n) for n in counts)) for version_id, *counts in rows}
    return {version_id: found.get(version_id, Figures()) for version_id in version_ids}


async def template_figures(session: AsyncSession, template_id: int) -> list[VersionFigures]:
    """Every published version of a template with its figures, oldest first; NotFound for no such template."""
    template = await get_template(session, template_id)
    versions = (await list_versions(session, [template_id]))[template_id]
    figures = await figures_by_version(session, [v.id for v in versions])
    return [
        VersionFigures(v.id, v.number, v.published_at, v.id == template.live_version_id, figures[v.id])
        for v in versions
    ]
