"""Operators to notify, their API keys, and the application served by a real uvicorn in this process (httpx's
ASGI transport buffers whole responses, so streams need a real server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.access.service import create_api_key
from envoi.app import create_app
from envoi.runtime import Runtime
from envoi.server import Server
from tests.processes import free_port

# Login -> security groups: two supervisors (one also an editor), an editor, and one in no group.
PEOPLE = {
    "sam@example.com": ["delivery_supervisors"],
    "sue@example.com": ["delivery_supervisors", "template_editors"],
    "ed@example.com": ["template_editors"],
    "nobody@example.com": [],
}


@dataclass
class Operators:
    ids: dict[str, int]
    keys: dict[str, str]

    def headers(self, login: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[login]}"}


@pytest.fixture
async def operators(runtime: Runtime) -> Operators:
    ids, keys = {}, {}
    async with runtime.transaction() as session:
        for login, groups in PEOPLE.items():
            operator = await create_operator(session, email=login, name=login.split("@")[0].title(), password="x" * 12)
            for group in groups:
                await add_member(session, group, operator.id)
            ids[login] = operator.id
            _key, keys[login] = await create_api_key(session, login, operator_id=operator.id)
    return Operators(ids, keys)


@contextlib.asynccontextmanager
async def serving(runtime: Runtime) -> AsyncIterator[str]:
    """The application, with its lifespan (the hub and its follower), on a free port; yields its URL."""
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    port = free_port()
    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"), app)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        runtime.notifications.close()  # what a SIGTERM does through Server.handle_exit
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def live(runtime: Runtime) -> AsyncIterator[str]:
    async with serving(runtime) as url:
        yield url


@dataclass
class Received:
    event: str
    data: Any
    id: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Stream:
    """An open SSE stream, read in the background: events in arrival order, each taken once by ``next``."""

    backlog: list[Received] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def _take(self, kind: str | None) -> Received | None:
        for index, received in enumerate(self.backlog):
            if kind is None or received.event == kind:
                return self.backlog.pop(index)
        return None

    async def next(self, timeout: float = 5.0, *, kind: str | None = "notification") -> Received:
        """The first event of that kind not yet taken, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while (found := self._take(kind)) is None:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - time.monotonic()))
        return found

    def pending(self, kind: str = "notification") -> list[Received]:
        found = [received for received in self.backlog if received.event == kind]
        self.backlog = [received for received in self.backlog if received.event != kind]
        return found


async def _read(response: httpx.Response, stream: Stream) -> None:
    fields: dict[str, str] = {}
    try:
        async for line in response.aiter_lines():
            if line.startswith(":"):
                stream.comments.append(line)
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif "data" in fields:
                stream.backlog.append(
                    Received(fields.get("event", "message"), json.loads(fields["data"]), fields.get("id"))
                )
                stream.arrived.set()
                fields = {}
            else:
                fields = {}
    except (httpx.ReadError, httpx.RemoteProtocolError):
        pass
    finally:
        stream.ended.set()


@contextlib.asynccontextmanager
async def open_stream(
    url: str, headers: dict[str, str], *, last_event_id: str | None = None, after: int | None = None
) -> AsyncIterator[Stream]:
    sent = dict(headers) | ({"Last-Event-ID": last_event_id} if last_event_id is not None else {})
    params = {"after": after} if after is not None else {}
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", "/api/v1/notifications/stream", headers=sent, params=params) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream()
        reader = asyncio.create_task(_read(response, stream))
        try:
            # The first unread count says the stream has read its cursor: from here nothing is missed.
            await stream.next(kind="unread")
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
