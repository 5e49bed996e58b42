"""The ``http_request`` activity: calls a URL. Guarded like every outbound request (public addresses only,
unless allowed, checked at connect time) and limited to ``ENVOI_WORKFLOW_HTTP_ALLOWED_HOSTS`` when set; an
answer outside 2xx (or outside ``expected_statuses``) fails the activity."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any, Literal

import httpcore
import httpx
from pydantic import Field, field_validator

from envoi.outbound import GuardedBackend, OutboundError
from envoi.settings import Settings
from envoi.workflows.activities.base import Activity, ActivityFailed, ActivitySettings, Done, RunContext

_EXCERPT = 300
_SET_BY_ENVOI = {"host", "content-length", "transfer-encoding", "connection"}  # a second one would garble the request


class HttpRequestSettings(ActivitySettings):
    url: str = Field(min_length=1, max_length=2000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(None, description="Sent as JSON when set.")
    timeout: float = Field(30.0, gt=0, le=300)
    expected_statuses: list[int] = Field(
        default_factory=list,
        description="The answers that count as success (a test after it can branch on them); empty: any 2xx.",
    )

    @field_validator("expected_statuses")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        if any(not 100 <= status <= 599 for status in value):
            raise ValueError("HTTP statuses are 100 to 599")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as error:
            raise ValueError(f"not a valid URL: {error}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("an http or https URL with a host")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not name.isascii() or not name.replace("-", "").isalnum() or any(c in header for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: a name of letters, digits and -, a value on one line")
            if name.lower() in _SET_BY_ENVOI:
                raise ValueError(f"header {name!r} is set by Envoi from the URL and the body")
        return value


def host_allowed(host: str, settings: Settings) -> bool:
    allowed = [h.lower().strip() for h in settings.workflow_http_allowed_hosts]
    host = host.lower()
    return not allowed or any(host == a or (a.startswith(".") and host.endswith(a)) for a in allowed)


class HttpRequestActivity(Activity[HttpRequestSettings]):
    kind = "http_request"
    settings_model = HttpRequestSettings
    description = "Calls a URL; an answer outside 2xx, a timeout or a refused address is an error."

    async def run(self, settings: HttpRequestSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        url = httpx.URL(settings.url)
        shown = f"{url.scheme}://{url.netloc.decode()}{url.path}"
        if not host_allowed(url.host, context.settings):
            raise ActivityFailed(f"{url.host} is not among the allowed hosts (ENVOI_WORKFLOW_HTTP_ALLOWED_HOSTS)")
        headers = [(b"Host", url.netloc), (b"User-Agent", b"Envoi workflow")]
        headers += [(name.encode(), value.encode()) for name, value in settings.headers.items()]
        content = b""
        if settings.body is not None:
            content = json.dumps(settings.body).encode()
            headers.append((b"Content-Type", b"application/json"))
        backend = GuardedBackend(
            allow_private=context.settings.workflow_http_allow_private_networks, allowed_networks=()
        )
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), settings.timeout)
        async with httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(), network_backend=backend, retries=0
        ) as pool:
            try:
                async with asyncio.timeout(settings.timeout):
                    status, excerpt = await _call(pool, settings, url, headers, content, timeouts)
            except OutboundError as error:
                raise ActivityFailed(f"{settings.method} {shown}: {error.reason}") from None
            except (TimeoutError, httpcore.TimeoutException):
                raise ActivityFailed(f"{settings.method} {shown}: no answer within {settings.timeout:g}s") from None
            except httpcore.NetworkError as error:
                raise ActivityFailed(f"{settings.method} {shown}: {type(error).__name__}: {error}") from None
            except httpcore.ProtocolError as error:
                raise ActivityFailed(f"{settings.method} {shown}: {error}") from None
        context.log(f"{settings.method} {shown}: HTTP {status}" + (f": {excerpt}" if excerpt else ""))
        expected = status in settings.expected_statuses if settings.expected_statuses else 200 <= status < 300
        if not expected:
            raise ActivityFailed(f"{settings.method} {shown} answered HTTP {status}")
        return Done(output={"status": status}, count=status)


async def _call(
    pool: httpcore.AsyncConnectionPool,
    settings: HttpRequestSettings,
    url: httpx.URL,
    headers: list[tuple[bytes, bytes]],
    content: bytes,
    timeouts: dict[str, float],
) -> tuple[int, str]:
    """The status and the start of the body: the rest is never read, however large."""
    target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
    async with pool.stream(
        settings.method, target, headers=headers, content=content, extensions={"timeout": timeouts}
    ) as response:
        start = b""
        async for chunk in response.aiter_stream():
            start += chunk
            if len(start) >= _EXCERPT:
                break
    return response.status, start[:_EXCERPT].decode("utf-8", "replace").strip()
