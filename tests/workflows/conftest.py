"""Workflow tests: a real HTTP peer on 127.0.0.1 whose answer a test sets, operators in security groups, the
scheduler ticked by hand."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.access.service import create_api_key
from envoi.db.base import utcnow
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.workflows.models import RunStatus, WorkflowRun
from envoi.workflows.scheduler import Scheduler
from tests.conftest import make_client
from tests.smtp_sink import SmtpSink

# Login -> security groups: two workflow supervisors, a delivery supervisor, an operator in no group.
PEOPLE = {
    "wendy@example.com": ["workflow_supervisors"],
    "walt@example.com": ["workflow_supervisors", "template_editors"],
    "dora@example.com": ["delivery_supervisors"],
    "nobody@example.com": [],
}
SUPERVISORS = {"wendy@example.com", "walt@example.com"}


class _Peer(ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    calls: list[tuple[str, str, bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: _Peer

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.calls.append((self.command, self.path, body))
        reply = f"answer {self.server.status}".encode()
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class HttpPeer:
    server: _Peer
    calls: list[tuple[str, str, bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, status: int) -> None:
        self.server.status = status


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    server = _Peer(("127.0.0.1", 0), _Handler)
    server.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HttpPeer(server, server.calls)
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Workflows may call the peer on 127.0.0.1."""
    return settings.model_copy(update={"workflow_http_allow_private_networks": True})


@pytest.fixture
async def wf_runtime(settings: Settings, smtp_sink: SmtpSink) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(settings.model_copy(update={"smtp_url": SecretStr(smtp_sink.url)}))
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def wf_api(wf_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with await make_client(wf_runtime) as client:
        yield client


@dataclass
class Operators:
    ids: dict[str, int]
    keys: dict[str, str]

    def headers(self, login: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[login]}"}


@pytest.fixture
async def people(wf_runtime: Runtime) -> Operators:
    ids, keys = {}, {}
    async with wf_runtime.transaction() as session:
        for login, groups in PEOPLE.items():
            operator = await create_operator(session, email=login, name=login.split("@")[0].title(), password="x" * 12)
            for group in groups:
                await add_member(session, group, operator.id)
            ids[login] = operator.id
            _key, keys[login] = await create_api_key(session, login, operator_id=operator.id)
    return Operators(ids, keys)


async def settle(runtime: Runtime, *, ticks: int = 20) -> None:
    """Tick the scheduler until no run is due now (a run waiting for later stays waiting)."""
    scheduler = Scheduler(runtime.settings, runtime.sessionmaker)
    for _ in range(ticks):
        await scheduler.tick()
        async with runtime.transaction() as session:
            due = await session.scalar(
                select(func.count())
                .select_from(WorkflowRun)
                .where(WorkflowRun.status == RunStatus.RUNNING, WorkflowRun.resume_at <= utcnow())
            )
        if not due:
            return
    raise AssertionError(f"runs still due after {ticks} ticks")


def definition(*activities: dict[str, Any]) -> dict[str, Any]:
    return {"activities": list(activities)}


def calling(url: str, *, cron: str = "0 6 * * *") -> dict[str, Any]:
    """scheduler -> http_request(url) -> end."""
    return definition(
        {"name": "start", "kind": "scheduler", "settings": {"cron": cron}, "next": ["call"]},
        {"name": "call", "kind": "http_request", "settings": {"url": url, "timeout": 5}, "next": ["end"]},
        {"name": "end", "kind": "end"},
    )
