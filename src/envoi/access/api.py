"""Who is calling, and may they: an API key (``Authorization: Bearer <key>``) or a console session (cookie,
with a CSRF token on every change), turned into a Principal whose permissions each route checks.

Principals are cached per process (access/cache.py): a revoked key, a logged-out session, a deactivated operator
or a changed group is forgotten by every process when its transaction commits (NOTIFY on PostgreSQL), and by the
cache's lifetime at the latest (SQLite); a session is never cached past its own expiry."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from envoi.access.cache import AccessCache, key_change, session_change
from envoi.access.groups import key_principal, operator_principal
from envoi.access.models import Operator
from envoi.access.operators import live_session, session_hash
from envoi.access.permissions import Permission, Principal
from envoi.access.service import authenticate, hash_key
from envoi.errors import Forbidden, Unauthorized
from envoi.runtime import Runtime

SESSION_COOKIE = "envoi_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


_bearer = HTTPBearer(auto_error=False, description="An API key from `envoi apikey create`.")


def csrf_token(session_token: str) -> str:
    """The CSRF token of a console session: forms and scripts send it back; another site cannot read it."""
    return hmac.new(session_token.encode(), b"envoi csrf", hashlib.sha256).hexdigest()


async def principal_of(request: Request) -> Principal:
    """The caller: an API key if one is sent, else the console session of the cookie; 401 without either."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await key_of(request, token)
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token:
        principal = await _cached(
            request, session_change(session_hash(session_token)), lambda: _session_principal(request, session_token)
        )
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), csrf_token(session_token).encode()):
                raise Forbidden(f"a change from the console needs its {CSRF_HEADER} header", field=CSRF_HEADER)
        return principal
    raise Unauthorized("send your API key as 'Authorization: Bearer <key>'", field="Authorization")


async def key_of(request: Request, token: str) -> Principal:
    token = token.strip()
    if not token:
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'", field="Authorization")
    return await _cached(request, key_change(hash_key(token)), lambda: _key_principal(request, token))


async def _key_principal(request: Request, token: str) -> tuple[Principal, datetime | None]:
    runtime: Runtime = request.app.state.runtime
    async with runtime.transaction() as session:
        return await key_principal(session, await authenticate(session, token)), None


async def _session_principal(request: Request, token: str) -> tuple[Principal, datetime | None]:
    """The operator of a live console session, and when the session ends: the cache keeps it no longer."""
    runtime: Runtime = request.app.state.runtime
    async with runtime.transaction() as session:
        row = await live_session(session, token, "console")
        operator = await session.get(Operator, row.operator_id)
        if operator is None or not operator.active:
            raise Unauthorized("this operator is no longer active")
        return await operator_principal(session, operator), row.expires_at


def access_cache(request: Request) -> AccessCache:
    cache: AccessCache = request.app.state.key_cache
    return cache


async def _cached(
    request: Request, key: str, load: Callable[[], Awaitable[tuple[Principal, datetime | None]]]
) -> Principal:
    cache = access_cache(request)
    principal = cache.get(key)
    if principal is not None:
        return principal
    runtime: Runtime = request.app.state.runtime
    cache.watch(runtime.engine)  # from the first use on, this process's own commits empty it at once
    read_at = cache.generation
    principal, ends_at = await load()
    cache.put(key, principal, read_at=read_at, ends_at=ends_at)
    return principal


def allowed(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    async def check(
        request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        principal = await principal_of(request)
        principal.require(permission)
        return principal

    return check


async def authenticate_request(request: Request, permission: Permission = Permission.PUSH_EVENTS) -> Principal:
    """The same check for the hot ingestion routes, which read the request themselves (see events/api.py)."""
    principal = await principal_of(request)
    principal.require(permission)
    return principal


CanView = Annotated[Principal, Depends(allowed(Permission.VIEW_EVENTS))]
CanEditTemplates = Annotated[Principal, Depends(allowed(Permission.EDIT_TEMPLATES))]
CanPublish = Annotated[Principal, Depends(allowed(Permission.PUBLISH))]
CanPushEvents = Annotated[Principal, Depends(allowed(Permission.PUSH_EVENTS))]
CanManageOperators = Annotated[Principal, Depends(allowed(Permission.MANAGE_OPERATORS))]
CanManageDeliveries = Annotated[Principal, Depends(allowed(Permission.MANAGE_DELIVERIES))]
CanManageWorkflows = Annotated[Principal, Depends(allowed(Permission.MANAGE_WORKFLOWS))]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
