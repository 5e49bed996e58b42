"""Authentication of API calls: ``Authorization: Bearer <key>``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from envoi.access.service import authenticate, hash_key
from envoi.errors import Unauthorized
from envoi.runtime import Runtime

_CACHE_SECONDS = 10.0  # a revoked key stops working within this many seconds in every process


async def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


_bearer = HTTPBearer(auto_error=False, description="An API key from `envoi apikey create`.")


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> int:
    """The calling key's id; 401 without a valid key."""
    return await key_of(request, credentials.credentials if credentials else "")


async def authenticate_request(request: Request) -> int:
    """The same check for the hot ingestion routes, which read the header themselves (see events/api.py)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return await key_of(request, token if scheme.lower() == "bearer" else "")


async def key_of(request: Request, token: str) -> int:
    token = token.strip()
    if not token:
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'", field="Authorization")
    cache: dict[str, tuple[int, float]] = request.app.state.key_cache
    digest = hash_key(token)
    hit = cache.get(digest)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    runtime: Runtime = request.app.state.runtime
    async with runtime.transaction() as session:
        key = await authenticate(session, token)
    cache[digest] = (key.id, time.monotonic() + _CACHE_SECONDS)
    return key.id


ApiKeyId = Annotated[int, Depends(require_api_key)]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
