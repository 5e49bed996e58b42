"""SIGTERM, as a supervisor sends it: the API stops taking connections but answers the requests in flight, the
worker finishes its batch or puts it back in the queue, and the process is gone within its grace period."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from sqlalchemy import select

from envoi.events.models import Event, EventStatus
from envoi.runtime import Runtime
from envoi.server import Server
from tests.helpers import published_template
from tests.processes import free_port, start_envoi, wait_for_text

GRACE = 2.0
# Long enough to tell a process that left within its grace from one that waited for its batch: a send only
# ends by itself when the SMTP client's 30 s timeout runs out.
EXIT_WITHIN = GRACE + 15.0
DONE = (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down


class Relay:
    """An SMTP relay taking ``seconds`` to answer each message: a batch stays in the worker's hands."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.receiving = threading.Event()  # a message's data arrived: a batch is being sent
        self.accepted: list[str] = []  # the Message-ID of each message answered 250
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        self.receiving.set()
        await asyncio.sleep(self.seconds)
        content = envelope.original_content or b""
        self.accepted.append(content.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode())
        return "250 2.0.0 Ok"

    async def wait_receiving(self) -> None:
        for _ in range(600):
            if self.receiving.is_set():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the worker never sent a message")


@pytest.fixture
def relay(request: pytest.FixtureRequest) -> Iterator[Relay]:
    relay = Relay(request.param)
    relay._controller.start()
    yield relay
    relay._controller.stop()


class Envoi:
    """``envoi serve`` or ``envoi worker`` as a real process, with a short grace period."""

    def __init__(self, args: list[str], database_url: str, tmp_path: Path, relay: Relay, **env: str) -> None:
        self.port = free_port()
        self.log = tmp_path / f"{args[0]}.log"
        env = {
            "ENVOI_DATABASE_URL": database_url,
            "ENVOI_DATA_DIR": str(tmp_path / "data"),
            "ENVOI_SMTP_URL": f"smtp://127.0.0.1:{relay.port}",
            "ENVOI_SMTP_CONNECTIONS": "1",
            "ENVOI_WORKER_BATCH_SIZE": "4",
            "ENVOI_WORKER_CONCURRENCY": "1",
            "ENVOI_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        } | env
        command = [*args, "--port", str(self.port)] if args[0] == "serve" else args
        self.process = start_envoi(command, env=env, cwd=tmp_path, output=self.log.open("ab"))

    def key(self) -> str:
        """The API key ``envoi serve`` printed, once it listens."""
        key = wait_for_text(self.log, "API key:", timeout=60).split("API key: ", 1)[1].split()[0]
        for _ in range(600):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return key
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.05)
        raise AssertionError(f"envoi serve never listened on {self.port}")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def exit_code(self) -> int:
        try:
            return self.process.wait(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            tail = self.log.read_text()[-3000:]
            raise AssertionError(f"still running {EXIT_WITHIN} s after SIGTERM:\n{tail}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _events(count: int, tag: str) -> list[dict[str, Any]]:
    return [
        {"type": "order_confirmation", "email": f"{tag}{n}@example.com", "ctx": {"firstName": "Ada", "orderId": str(n)}}
        for n in range(count)
    ]


class HalfSentRequest:
    """A batch whose headers and first half reached the server: a request in flight, until ``finish``."""

    def __init__(self, port: int, key: str, events: list[dict[str, Any]]) -> None:
        self.port, self.key = port, key
        self.body = json.dumps({"events": events}).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def start(self) -> HalfSentRequest:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"POST /api/v1/events/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + self.body[: len(self.body) // 2])
        await self.writer.drain()
        return self

    async def finish(self) -> tuple[int, dict[str, Any]]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.body[len(self.body) // 2 :])
        await self.writer.drain()
        response = await asyncio.wait_for(self.reader.read(), 30)  # the server closes: it is shutting down
        self.writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), json.loads(body)


async def _refused(port: int) -> bool:
    """Whether a new connection is refused within 5 s."""
    for _ in range(100):
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await asyncio.sleep(0.05)
    return False


async def _statuses(runtime: Runtime) -> dict[int, tuple[int, str | None]]:
    async with runtime.transaction() as session:
        rows = await session.execute(select(Event.id, Event.status, Event.lease_owner))
    return {event_id: (status, owner) for event_id, status, owner in rows}


@pytest.mark.slow
@pytest.mark.parametrize("relay", [120.0], indirect=True)
async def test_serve_answers_requests_in_flight_refuses_new_ones_and_returns_the_batch_in_hand(
    database_url: str, runtime: Runtime, relay: Relay, tmp_path: Path
) -> None:
    serve = Envoi(["serve"], database_url, tmp_path, relay)
    try:
        key = serve.key()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{serve.port}", timeout=30) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            queued = await client.post("/api/v1/events/batch", json={"events": _events(6, "queued")})
            assert queued.status_code == 202, queued.text
            await relay.wait_receiving()  # the worker holds a batch the relay will not answer for minutes
            in_flight = [await HalfSentRequest(serve.port, key, _events(50, f"late{n}-")).start() for n in range(3)]
            assert (await client.get("/healthz")).status_code == 200  # the server has read what came before
        serve.terminate()
        refused = await _refused(serve.port)
        answers = [await request.finish() for request in in_flight]
        code = serve.exit_code()
    finally:
        serve.kill()

    assert refused, "a new connection was accepted after SIGTERM"
    assert [status for status, _ in answers] == [202, 202, 202], answers
    accepted = {event_id for _, body in answers for event_id in body["ids"]}
    assert code in DONE, serve.log.read_text()[-3000:]
    statuses = await _statuses(runtime)
    assert accepted <= statuses.keys() and len(accepted) == 150  # every answered request's events are stored
    # The batch in hand was put back in the queue, not left for its lease to run out; nothing else was sent.
    assert all(status == EventStatus.PENDING and owner is None for status, owner in statuses.values()), statuses
    assert relay.accepted == []
    assert "worker.batch_returned" in serve.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("relay", [0.3], indirect=True)
async def test_serve_lets_the_worker_finish_the_batch_it_is_sending(
    database_url: str, runtime: Runtime, relay: Relay, tmp_path: Path
) -> None:
    serve = Envoi(["serve"], database_url, tmp_path, relay, ENVOI_SHUTDOWN_GRACE_SECONDS="20")
    try:
        key = serve.key()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{serve.port}", timeout=30) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            queued = await client.post("/api/v1/events/batch", json={"events": _events(8, "queued")})
            assert queued.status_code == 202, queued.text
        await relay.wait_receiving()  # a batch of 4 is being sent, 0.3 s a message
        serve.terminate()
        code = serve.exit_code()
    finally:
        serve.kill()

    assert code in DONE, serve.log.read_text()[-3000:]
    statuses = sorted(status for status, _ in (await _statuses(runtime)).values())
    # The batch in hand was sent and recorded; the worker claimed nothing after the signal.
    assert statuses == [EventStatus.PENDING] * 4 + [EventStatus.PROCESSED] * 4, statuses
    assert len(relay.accepted) == len(set(relay.accepted)) == 4


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("relay", [120.0], indirect=True)
async def test_worker_process_returns_its_batch_and_exits_within_its_grace(
    api: httpx.AsyncClient, runtime: Runtime, database_url: str, relay: Relay, tmp_path: Path
) -> None:
    await published_template(api)
    queued = await api.post("/api/v1/events/batch", json={"events": _events(6, "queued")})
    assert queued.status_code == 202, queued.text
    worker = Envoi(["worker"], database_url, tmp_path, relay)
    try:
        await relay.wait_receiving()
        held = [owner for _, owner in (await _statuses(runtime)).values() if owner]
        worker.terminate()
        code = worker.exit_code()
    finally:
        worker.kill()

    assert code == 0, worker.log.read_text()[-3000:]
    assert len(held) == 4 and all(f":{worker.process.pid}:" in owner for owner in held)  # the lease names it
    statuses = await _statuses(runtime)
    assert all(status == EventStatus.PENDING and owner is None for status, owner in statuses.values()), statuses
    assert "worker.batch_returned" in worker.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("relay", [0.0], indirect=True)
async def test_serve_drains_behind_a_load_balancer_before_it_stops_accepting(
    database_url: str, runtime: Runtime, relay: Relay, tmp_path: Path
) -> None:
    """ENVOI_SHUTDOWN_DRAIN_SECONDS: after SIGTERM /readyz says 503 while everything else is served as before, so
    a balancer takes the process out of rotation before connections are refused; then the usual stop."""
    serve = Envoi(["serve"], database_url, tmp_path, relay, ENVOI_SHUTDOWN_DRAIN_SECONDS="4")
    try:
        key = serve.key()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{serve.port}", timeout=30) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            assert (await client.get("/readyz")).status_code == 200
            serve.terminate()
            for _ in range(100):  # the signal is handled between two steps of the loop: soon, not at once
                ready = await client.get("/readyz")
                if ready.status_code == 503:
                    break
                await asyncio.sleep(0.02)
            assert ready.status_code == 503 and ready.json()["status"] == "shutting down", ready.text
            during = await client.post("/api/v1/events/batch", json={"events": _events(3, "draining")})
            assert during.status_code == 202, during.text  # still served: the balancer may not have looked yet
            assert serve.process.poll() is None
        refused = await _refused(serve.port)
        code = serve.exit_code()
    finally:
        serve.kill()

    assert refused, "connections were never refused after the drain"
    assert code in DONE, serve.log.read_text()[-3000:]
    statuses = await _statuses(runtime)
    assert set(during.json()["ids"]) <= statuses.keys()


async def test_a_second_signal_during_the_drain_stops_once() -> None:
    """The second SIGTERM ends the drain at once; the drain's own timer must not stop the server a second time
    (uvicorn would re-raise the signal twice, and a second SIGINT forces the exit, cutting the grace short)."""
    app = FastAPI()
    stops: list[float] = []
    app.state.stop_soon = lambda: stops.append(time.monotonic())
    server = Server(uvicorn.Config(app), app, drain_seconds=0.2)
    server.started = True
    server.handle_exit(signal.SIGTERM, None)
    await asyncio.sleep(0.05)
    assert (app.state.draining, stops, server.should_exit) == (True, [], False)  # draining: still serving
    server.handle_exit(signal.SIGTERM, None)
    assert len(stops) == 1 and server.should_exit
    await asyncio.sleep(0.4)  # past the drain's timer
    assert len(stops) == 1 and server._captured_signals == [signal.SIGTERM]
