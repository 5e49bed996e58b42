"""Addresses that must not be sent to, per channel."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import utcnow
from envoi.delivery.models import QuarantinedAddress
from envoi.errors import NotFound


async def quarantined(session: AsyncSession, channel: str, addresses: Iterable[str]) -> dict[str, str]:
    """The quarantined addresses among ``addresses``, with why."""
    wanted = set(addresses)
    if not wanted:
        return {}
    rows = await session.execute(
        select(QuarantinedAddress.address, QuarantinedAddress.reason).where(
            QuarantinedAddress.channel == channel, QuarantinedAddress.address.in_(wanted)
        )
    )
    return {address: reason for address, reason in rows}


async def add_to_quarantine(session: AsyncSession, entries: list[tuple[str, str, str]]) -> None:
    """(channel, address, reason) each; an address already there keeps its first reason."""
    if not entries:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    rows = [{"channel": c, "address": a, "reason": r, "created_at": now} for c, a, r in entries]
    await session.execute(insert(QuarantinedAddress).on_conflict_do_nothing(), rows)


async def list_quarantine(session: AsyncSession, channel: str | None = None) -> list[QuarantinedAddress]:
    query = select(QuarantinedAddress).order_by(QuarantinedAddress.id.desc())
    if channel:
        query = query.where(QuarantinedAddress.channel == channel)
    return list((await session.scalars(query)).all())


async def release_from_quarantine(session: AsyncSession, channel: str, address: str) -> None:
    result = await session.execute(
        delete(QuarantinedAddress).where(QuarantinedAddress.channel == channel, QuarantinedAddress.address == address)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"{address} is not in quarantine for {channel}")
