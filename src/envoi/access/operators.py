"""Operators and their session tokens: create, check a login, open and close sessions. Never commits."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.cache import announce_access_change, operator_change, session_change
from envoi.access.models import Operator, OperatorSession
from envoi.addresses import normalize_email
from envoi.db.base import utcnow
from envoi.errors import Conflict, NotFound, Unauthorized, ValidationFailed

_hasher = PasswordHasher()
# Verified against when the login is unknown, so that a wrong login costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
INVALID_LOGIN = "Invalid login or password"
_VERIFYING = asyncio.Semaphore(2)  # password checks at once per process: a flood of logins waits its turn


def login_of(email: str) -> str:
    """A login as operators are stored and throttled: the normalized email, or the text itself if it is none."""
    try:
        return _login(email)
    except ValueError:
        return email.strip().lower()[:320]


def _login(email: str) -> str:
    """Logins are emails compared without case: nobody expects Ops@ and ops@ to be two people."""
    return normalize_email(email).lower()


def session_hash(token: str) -> str:
    """What is stored, cached and announced of a session token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


async def create_operator(session: AsyncSession, *, email: str, name: str, password: str) -> Operator:
    try:
        email = _login(email)
    except ValueError as error:
        raise ValidationFailed(f"not a valid email address: {error}", field="email") from error
    if len(password) < 12:
        raise ValidationFailed("a password needs at least 12 characters", field="password")
    if await session.scalar(select(Operator.id).where(Operator.email == email)) is not None:
        raise Conflict(f"an operator with the email {email} already exists", field="email")
    operator = Operator(email=email, name=name.strip() or email, password_hash=_hasher.hash(password))
    session.add(operator)
    await session.flush()
    return operator


async def find_operator(session: AsyncSession, email: str) -> Operator:
    try:
        login = _login(email)
    except ValueError:
        login = email.strip()
    operator = await session.scalar(select(Operator).where(Operator.email == login))
    if operator is None:
        raise NotFound(f"no operator has the email {email}", field="email")
    return operator


async def check_login(session: AsyncSession, login: str, password: str) -> Operator:
    try:
        email = _login(login)
    except ValueError:
        email = login.strip()
    operator = await session.scalar(select(Operator).where(Operator.email == email))
    try:
        async with _VERIFYING:  # argon2 takes tens of milliseconds of CPU: never on the event loop
            await asyncio.to_thread(_hasher.verify, operator.password_hash if operator else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise Unauthorized(INVALID_LOGIN) from None
    if operator is None or not operator.active:
        raise Unauthorized(INVALID_LOGIN)
    return operator


async def set_active(session: AsyncSession, operator: Operator, active: bool) -> None:
    """Deactivated, an operator's sessions end: reactivating them later must not bring old sessions back. Every
    process forgets their sessions and keys at commit."""
    operator.active = active
    if not active:
        await session.execute(
            update(OperatorSession)
            .where(OperatorSession.operator_id == operator.id, OperatorSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    await announce_access_change(session, [operator_change(operator.id)])


async def open_session(session: AsyncSession, operator: Operator, lifetime: timedelta, kind: str) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        OperatorSession(
            token_hash=session_hash(token),
            kind=kind,
            operator_id=operator.id,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await session.flush()
    return token


async def live_session(session: AsyncSession, token: str, kind: str) -> OperatorSession:
    """The session of a token that is neither expired nor logged off (its ``expires_at`` bounds any cache)."""
    row = await session.scalar(select(OperatorSession).where(OperatorSession.token_hash == session_hash(token)))
    if row is None or row.kind != kind or row.revoked_at is not None or row.expires_at <= utcnow():
        raise Unauthorized("the session token is unknown, expired or logged off; log on again")
    return row


async def check_session(session: AsyncSession, token: str, kind: str) -> int:
    """The operator id behind a live session token."""
    return (await live_session(session, token, kind)).operator_id


async def close_session(session: AsyncSession, token: str) -> None:
    """Log off: every process stops accepting the token at commit."""
    await session.execute(
        update(OperatorSession)
        .where(OperatorSession.token_hash == session_hash(token), OperatorSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await announce_access_change(session, [session_change(session_hash(token))])
