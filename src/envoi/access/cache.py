"""Who a credential is, remembered for a few seconds per process, and forgotten everywhere the moment it changes.

Checking an API key or a console session costs a transaction; the hot ingestion routes cannot pay it on every
request, so each process keeps the resulting Principal briefly. Whatever can make a cached Principal wrong (a key
revoked, a session logged out, an operator deactivated or moved between groups, a group's permissions changed)
calls ``announce_access_change`` inside its transaction, the way notifications/hub.py's ``announce`` does: at
commit this process's caches drop the matching entries (an engine event), and on PostgreSQL a NOTIFY, delivered
only if the transaction commits, makes every other process drop them too (envoi.db.listen). The lifetime stays as
a safety net: SQLite has no NOTIFY and another process (the CLI) may write the same file, and a NOTIFY sent while a
process was reconnecting is lost (the listener empties the cache after reconnecting, but the gap is not zero).

Changes never carry a secret: ``key:<sha256 of the key>``, ``session:<sha256 of the token>``,
``operator:<id>``, ``all``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from envoi.access.permissions import Principal
from envoi.db.base import utcnow
from envoi.db.listen import Listener
from envoi.db.notify import announce_at_commit, on_commit

CHANNEL = "envoi_access"
CACHE_SECONDS = 10.0  # the longest a cached Principal is trusted without a database read (see the module's doc)
_LIMIT = 10_000  # callers choose the keys: the cache must not grow without end
_PENDING = "envoi.access_changes"  # in the connection's info until its transaction ends
EVERYTHING = "all"

# The caches to empty at each engine's commits: several applications may share one engine (tests do).
_watchers: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[AccessCache]] = weakref.WeakKeyDictionary()


def key_change(key_hash: str) -> str:
    return "key:" + key_hash


def session_change(token_hash: str) -> str:
    return "session:" + token_hash


def operator_change(operator_id: int) -> str:
    return f"operator:{operator_id}"


async def announce_access_change(session: AsyncSession, changes: Iterable[str]) -> None:
    """Once the caller's transaction commits (and only then), every process forgets these credentials."""
    found = set(changes)
    await announce_at_commit(session, CHANNEL, _PENDING, {EVERYTHING} if EVERYTHING in found else sorted(found))


class AccessCache:
    """Principals by credential (``key:<hash>`` or ``session:<hash>``), each with the moment it stops counting."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()
        # Bumped by every change heard: a Principal read before a change must not be stored after it.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Principal | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[1] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return hit[0]

    def put(self, key: str, principal: Principal, *, read_at: int, ends_at: datetime | None = None) -> None:
        """Keep ``principal`` unless a change was heard since it was read (``read_at``, a ``generation``); never
        past ``ends_at``, the end of the credential itself (a session's expiry)."""
        if read_at != self.generation:
            return
        seconds = self.seconds
        if ends_at is not None:
            seconds = min(seconds, (ends_at - utcnow()).total_seconds())
        if seconds <= 0:
            return
        if len(self._entries) >= _LIMIT:
            self._entries.clear()
        self._entries[key] = (principal, time.monotonic() + seconds)

    def forget(self, changes: Iterable[str]) -> None:
        """Drop what each change makes wrong; an unknown change empties the cache (wrong is worse than slow)."""
        self.generation += 1
        for change in changes:
            kind, _, value = change.partition(":")
            if kind in ("key", "session") and value:
                self._entries.pop(change, None)
            elif kind == "operator" and value.isdigit():
                operator_id = int(value)
                for key in [k for k, (p, _) in self._entries.items() if p.operator_id == operator_id]:
                    self._entries.pop(key, None)
            else:
                self._entries.clear()
                return

    def heard(self, payload: str) -> None:
        """A NOTIFY from another process (or this one's own, which costs nothing)."""
        self.forget(change for change in payload.split(",") if change)

    def clear(self) -> None:
        """After the listener reconnects: whatever changed while it was away is unknown."""
        self.generation += 1
        self._entries.clear()

    def watch(self, engine: AsyncEngine) -> None:
        """Forget, at commit, what this process's own transactions on ``engine`` announced. Idempotent."""
        sync_engine = engine.sync_engine
        if sync_engine in self._engines:
            return
        self._engines.add(sync_engine)
        caches = _watchers.get(sync_engine)
        if caches is None:
            caches = _watchers[sync_engine] = weakref.WeakSet()
            _listen_for_commits(sync_engine, caches)
        caches.add(self)


def _listen_for_commits(engine: Engine, caches: weakref.WeakSet[AccessCache]) -> None:
    def committed(changes: set[str]) -> None:
        for cache in list(caches):
            cache.forget(changes)

    on_commit(engine, _PENDING, committed)


def hear_access_changes(listener: Listener, cache: AccessCache) -> None:
    """PostgreSQL: forget what other processes changed; after a reconnection, everything."""
    listener.on(CHANNEL, cache.heard, cache.clear)
