"""Slowing down password guessing: failed console logins are counted per login and per client address over a
window, in the LoginAttempt table (shared by every process). Services never commit."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from envoi.access.models import LoginAttempt
from envoi.db.base import utcnow


def login_key(login: str) -> str:
    """Logins compare without case or surrounding spaces, as operators' emails do."""
    return login.strip().lower()[:320]


async def _failures(session: AsyncSession, whose: ColumnElement[bool], since: datetime) -> list[datetime]:
    rows = await session.scalars(
        select(LoginAttempt.at).where(whose, LoginAttempt.succeeded.is_(False), LoginAttempt.at > since)
        .order_by(LoginAttempt.at)
    )  # fmt: skip
    return list(rows.all())


def _minutes_until_allowed(failures: list[datetime], limit: int, window: timedelta, now: datetime) -> int:
    """0 when fewer than ``limit`` failures are in the window, else the minutes until enough of them leave it."""
    if len(failures) < limit:
        return 0
    leaves_at = failures[len(failures) - limit] + window
    return max(1, math.ceil((leaves_at - now).total_seconds() / 60))


async def minutes_to_wait(
    session: AsyncSession,
    login: str,
    address: str,
    *,
    per_login: int,
    per_address: int,
    window: timedelta,
) -> int:
    """How long this login from this address must wait (0: it may try now). A successful login forgives the
    failures of its login before it (not those of the address)."""
    now = utcnow()
    since = now - window
    last_success = await session.scalar(
        select(func.max(LoginAttempt.at)).where(LoginAttempt.login == login, LoginAttempt.succeeded.is_(True))
    )
    login_since = max(since, last_success) if last_success else since
    return max(
        _minutes_until_allowed(
            await _failures(session, LoginAttempt.login == login, login_since), per_login, window, now
        ),
        _minutes_until_allowed(
            await _failures(session, LoginAttempt.address == address, since), per_address, window, now
        ),
    )


async def record_attempt(session: AsyncSession, login: str, address: str, *, succeeded: bool, keep: timedelta) -> None:
    """Store the attempt, and forget this login's and this address's attempts older than ``keep``."""
    now = utcnow()
    await session.execute(delete(LoginAttempt).where(LoginAttempt.login == login, LoginAttempt.at < now - keep))
    await session.execute(delete(LoginAttempt).where(LoginAttempt.address == address, LoginAttempt.at < now - keep))
    session.add(LoginAttempt(login=login, address=address, succeeded=succeeded, at=now))
    await session.flush()
