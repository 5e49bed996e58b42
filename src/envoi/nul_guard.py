"""The NUL character (U+0000) refused in every request's path, query and JSON body, with a 422 that names the
field: PostgreSQL cannot store it in text or JSON (it failed with a 500 wherever a route passed it on), while
SQLite would keep it, so the guard makes both backends answer alike, for every route at once.

A JSON body is read whole (through envoi.body_limit, which sits outside) and only parsed again when it holds
the escape ``\\u0000``, so a request without one pays for a byte search; the SOAP router is left to its XML
parser, which refuses NUL itself.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envoi.errors import invalid

MESSAGE = "text must not contain NUL characters"
_OWN_PARSER = ("/nl/jsp/",)
_JSON_NUL = b"\\u0000"


class NulGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_OWN_PARSER):
            await self.app(scope, receive, send)
            return
        field = _in_path(scope) or _in_query(scope["query_string"])
        if field is None and _is_json(scope):
            messages, failure = await _read_body(receive)
            if failure is None:
                field = _in_body(b"".join(message.get("body", b"") for message in messages))
            receive = _replay(messages, failure, receive)
        if field is None:
            await self.app(scope, receive, send)
        else:
            await _refuse(send, field)


def _in_path(scope: Scope) -> str | None:
    """The path parameter holding NUL, found by the routes' templates in the OpenAPI document (``/x/{name}``)."""
    path = scope["path"]
    if "\x00" not in path:
        return None
    document = scope["app"].openapi() if hasattr(scope.get("app"), "openapi") else {}
    for template in document.get("paths", {}):
        names = re.findall(r"{(\w+)}", template)
        pattern = re.sub(r"\\{\w+\\}", "([^/]*)", re.escape(template))
        match = re.fullmatch(pattern, path)
        if match and names:
            return next((name for name, value in zip(names, match.groups(), strict=True) if "\x00" in value), "path")
    return "path"


def _in_query(query: bytes) -> str | None:
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return "query"


def _is_json(scope: Scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    return b"json" in content_type.lower()


async def _read_body(receive: Receive) -> tuple[list[Message], Exception | None]:
    """The body's messages, read through the limit of envoi.body_limit (outside this guard), and the error
    that stopped the reading, if any."""
    messages: list[Message] = []
    try:
        while not messages or (messages[-1]["type"] == "http.request" and messages[-1].get("more_body", False)):
            messages.append(await receive())
    except Exception as failure:  # the body is too large: the application meets the same error as it reads
        return messages, failure
    return messages, None


def _replay(messages: list[Message], failure: Exception | None, receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        if failure is not None:
            raise failure
        return await receive()

    return replayed


def _in_body(body: bytes) -> str | None:
    if _JSON_NUL not in body:
        return None
    try:
        document = json.loads(body)
    except ValueError:  # the route reports what is wrong with it
        return None
    return _first_nul(document, [])


def _first_nul(value: Any, path: list[str]) -> str | None:
    """The path of the first key or string holding NUL, as the API names fields (``events.3.ctx.note``)."""
    if isinstance(value, str):
        return ".".join(path) or "body" if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return ".".join(path) or "body"
        if (found := _first_nul(item, [*path, str(key)])) is not None:
            return found
    return None


async def _refuse(send: Send, field: str) -> None:
    failure = invalid([(field, MESSAGE)], prefix=True)
    body = json.dumps({"error": failure.to_dict()}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": failure.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
