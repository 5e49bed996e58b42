"""One limit on the size of every request body, enforced as the body arrives.

A Content-Length over the limit is answered 413 before a byte is read; a body sent without one (chunked) is
refused as soon as what was read passes the limit, so no request ever holds more than the limit in memory.
The SOAP router is left to its own, smaller limit, which it answers with a SOAP fault.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_OWN_LIMIT = ("/nl/jsp/",)
CODE = "payload_too_large"  # as envoi.app renders a 413


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_OWN_LIMIT):
            await self.app(scope, receive, send)
            return
        message = f"the request body is larger than {self.max_bytes} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared[:20]) > self.max_bytes:
            await _answer(send, message)
            return
        read = 0

        async def limited() -> Message:
            nonlocal read
            received = await receive()
            read += len(received.get("body", b""))
            if read > self.max_bytes:
                # An HTTPException, which FastAPI lets through its own reading of the body (anything else it
                # calls a body that cannot be parsed); the application renders it as JSON.
                raise HTTPException(413, message)
            return received

        await self.app(scope, limited, send)


async def _answer(send: Send, message: str) -> None:
    body = json.dumps({"error": {"code": CODE, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
