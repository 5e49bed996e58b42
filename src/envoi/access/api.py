"""Who is calling, and may they: an API key (``Authorization: Bearer <key>``) or a console session (cookie,
with a CSRF token on every change), turned into a Principal whose permissions each route checks."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from envoi.access.groups import key_principal, operator_principal
from envoi.access.models import Operator
from envoi.access.operators import check_session
from envoi.access.permissions import Permission, Principal
from envoi.access.service import authenticate, hash_key
from envoi.errors import Forbidden, Unauthorized
from envoi.runtime import Runtime

_CACHE_SECONDS = 10.0  # a revoked key or a changed group takes effect within this many seconds in every process
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
            request, "session:" + session_token, lambda: _session_principal(request, session_token)
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
    return await _cached(request, hash_key(token), lambda: _key_principal(request, token))


async def _key_principal(request: Request, token: str) -> Principal:
    runtime: Runtime = request.app.state.runtime
    async with runtime.transaction() as session:
        return await key_principal(session, await authenticate(session, token))


async def _session_principal(request: Request, token: str) -> Principal:
    runtime: Runtime = request.app.state.runtime
    async with runtime.transaction() as session:
        operator = await session.get(Operator, await check_session(session, token, "console"))
        if operator is None or not operator.active:
            raise Unauthorized("this operator is no longer active")
        return await operator_principal(session, operator)


async def _cached(request: Request, key: str, load: Callable[[], Awaitable[Principal]]) -> Principal:
    cache: dict[str, tuple[Principal, float]] = request.app.state.key_cache
    hit = cache.get(key)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    principal = await load()
    if len(cache) > 10_000:  # callers choose the keys: the cache must not grow without end
        cache.clear()
    cache[key] = (principal, time.monotonic() + _CACHE_SECONDS)
    return principal


def forget_session(request: Request, session_token: str) -> None:
    """At logout: this process stops accepting the session at once (the others, whose caches still hold it,
    within _CACHE_SECONDS: the session row is revoked)."""
    request.app.state.key_cache.pop("session:" + session_token, None)


def forget_key(request: Request, key_hash: str) -> None:
    """At a key's revocation: this process refuses it at once (the others within _CACHE_SECONDS)."""
    request.app.state.key_cache.pop(key_hash, None)


def forget_operator(request: Request, operator_id: int) -> None:
    """When an operator is deactivated or changes groups: this process reads their sessions and keys afresh at once
    (the others within _CACHE_SECONDS)."""
    cache: dict[str, tuple[Principal, float]] = request.app.state.key_cache
    for key in [key for key, (principal, _) in cache.items() if principal.operator_id == operator_id]:
        cache.pop(key, None)


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
