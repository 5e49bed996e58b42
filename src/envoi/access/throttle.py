"""Slowing down password guessing: failed console logins are counted per login and per client address over a
window, in the LoginAttempt table (shared by every process). Services never commit."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from envoi.access.models import LoginAttempt, Operator
from envoi.access.operators import check_login, login_of
from envoi.db.base import utcnow
from envoi.errors import TooManyRequests, Unauthorized


def login_key(login: str) -> str:
    """The login as operators' emails are compared: another spelling of the same address counts as it."""
    return login_of(login)


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


async def throttled_login(
    sessionmaker: async_sessionmaker[AsyncSession],
    login: str,
    password: str,
    address: str,
    *,
    per_login: int,
    per_address: int,
    window: timedelta,
) -> Operator:
    """``check_login`` behind the same throttle as the console's form (for SOAP's logins): raises
    TooManyRequests while the login or the address must wait. Its own unit of work: a failed attempt is
    recorded (committed) even though the caller's request fails."""
    key = login_key(login)
    async with sessionmaker.begin() as session:
        wait = await minutes_to_wait(session, key, address, per_login=per_login, per_address=per_address, window=window)
        if wait:
            raise TooManyRequests(f"Too many failed logins; try again in {wait} minute{'s' if wait > 1 else ''}.")
        try:
            operator = await check_login(session, login, password)
        except Unauthorized as refused:
            failure: Unauthorized | None = refused
        else:
            failure = None
        await record_attempt(session, key, address, succeeded=failure is None, keep=timedelta(days=1))
    if failure is not None:
        raise failure
    return operator
