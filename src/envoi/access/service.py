"""Create, list, revoke and check API keys. Services never commit."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.cache import announce_access_change, key_change
from envoi.access.models import ApiKey
from envoi.access.permissions import ALL, Permission
from envoi.db.base import utcnow
from envoi.errors import NotFound, Unauthorized

KEY_PREFIX = "envoi_"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession,
    name: str,
    *,
    operator_id: int | None = None,
    scopes: Iterable[Permission] = ALL,
) -> tuple[ApiKey, str]:
    """Returns the stored key and its plaintext, which is shown once and never again. A key with no operator
    belongs to a service account named ``name``; an operator's key never does more than the operator may."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        prefix=plaintext[: len(KEY_PREFIX) + 6],
        key_hash=hash_key(plaintext),
        operator_id=operator_id,
        scopes=sorted(Permission(scope).value for scope in scopes),
    )
    session.add(key)
    await session.flush()
    return key, plaintext


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def revoke_api_key(session: AsyncSession, key_id: int) -> ApiKey:
    """Every process refuses the key from the commit on (the API, the console and ``envoi apikey revoke``)."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} does not exist")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    await announce_access_change(session, [key_change(key.key_hash)])
    return key


async def authenticate(session: AsyncSession, plaintext: str) -> ApiKey:
    key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext)))
    if key is None or key.revoked_at is not None:
        raise Unauthorized("the API key is unknown or revoked")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        # Recorded to the minute: one write per key per minute, not one per request.
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        key.last_used_at = now
    return key


async def is_valid_key(session: AsyncSession, plaintext: str) -> bool:
    key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext)))
    return key is not None and key.revoked_at is None
