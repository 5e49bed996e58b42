"""The key that signs tracking and unsubscribe links: the configured one, or a random one made once and kept
in the database so that every process (API, workers, on any machine) signs and verifies alike."""

from __future__ import annotations

import secrets

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from envoi.db.meta import Meta, get_meta
from envoi.settings import Settings

META_KEY = "tracking_secret"
_cache: dict[str, bytes] = {}  # database URL -> its secret: read once per process


def known_tracking_secret(settings: Settings) -> bytes | None:
    """The secret when it is known without the database: configured, or read before by this process."""
    if settings.tracking_secret is not None:
        return settings.tracking_secret.get_secret_value().encode("utf-8")
    return _cache.get(settings.resolved_database_url())


async def tracking_secret(session: AsyncSession, settings: Settings) -> bytes:
    """The secret; made and stored in ``meta`` when there is none yet (does not commit)."""
    known = known_tracking_secret(settings)
    if known is not None:
        return known
    url = settings.resolved_database_url()
    stored = await get_meta(session, META_KEY)
    if stored is None:
        # Two processes may make one at once: the first insert wins and the other reads it (on PostgreSQL the
        # loser's insert waits for the winner's commit; SQLite's transactions run one at a time).
        insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        made = secrets.token_urlsafe(32)
        statement = insert(Meta).values(key=META_KEY, value=made).on_conflict_do_nothing().returning(Meta.value)
        if await session.scalar(statement) is not None:
            _remember_when_committed(session, url, made.encode("utf-8"))  # a rolled-back one must never be used
            return made.encode("utf-8")
        stored = await get_meta(session, META_KEY)
        if stored is None:  # unreachable: the winner's row is committed once our insert returns
            raise RuntimeError("the tracking secret could not be stored")
    _cache[url] = stored.encode("utf-8")
    return _cache[url]


def _remember_when_committed(session: AsyncSession, url: str, secret: bytes) -> None:
    rolled_back = False

    def on_rollback(_session: Session) -> None:
        nonlocal rolled_back
        rolled_back = True

    def on_commit(_session: Session) -> None:
        if not rolled_back:
            _cache[url] = secret

    event.listen(session.sync_session, "after_rollback", on_rollback, once=True)
    event.listen(session.sync_session, "after_commit", on_commit, once=True)


def forget_cached_secrets() -> None:
    """For tests that play several processes in one."""
    _cache.clear()
