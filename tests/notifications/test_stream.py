"""The SSE stream, against a real uvicorn: a notification reaches the open stream of its recipient at once,
from this process or another; a reconnect with Last-Event-ID resumes without losing or repeating one; idle
streams get heartbeats; and a server told to stop ends its open streams instead of waiting for them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from envoi.app import create_app
from envoi.notifications.api import MAX_STREAMS_PER_OPERATOR
from envoi.notifications.service import Recipients, notify
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.notifications.conftest import Operators, open_stream, serving
from tests.processes import free_port, start_envoi, wait_for_text


async def _notify(runtime: Runtime, *logins: str, title: str = "t") -> int:
    async with runtime.transaction() as session:
        made = await notify(session, Recipients(operators=list(logins)), title=title, body="b")
    return made[0].id


async def test_a_notification_reaches_its_recipients_open_stream_at_once(
    live: str, runtime: Runtime, operators: Operators
) -> None:
    async with (
        open_stream(live, operators.headers("sam@example.com")) as sam,
        open_stream(live, operators.headers("sue@example.com")) as sue,
    ):
        started = time.monotonic()
        made = await _notify(runtime, "sam@example.com", title="For Sam")
        received = await sam.next(timeout=1.0)
        assert received.at - started < 1.0
        assert received.id == str(made) and received.data["title"] == "For Sam" and received.data["read"] is False
        assert (await sam.next(kind="unread")).data == {"unread": 1}
        await asyncio.sleep(0.3)
        assert sue.pending() == []  # not hers


async def test_a_new_stream_sends_nothing_old_unless_asked(live: str, runtime: Runtime, operators: Operators) -> None:
    old = [await _notify(runtime, "sam@example.com") for _ in range(3)]
    headers = operators.headers("sam@example.com")
    async with open_stream(live, headers) as fresh:
        await asyncio.sleep(0.3)
        assert fresh.pending() == []
        new = await _notify(runtime, "sam@example.com")
        assert (await fresh.next(timeout=1.0)).id == str(new)
    # A page that shows up to old[0] asks for what came after it.
    async with open_stream(live, headers, after=old[0]) as page:
        assert [(await page.next()).id for _ in range(3)] == [str(old[1]), str(old[2]), str(new)]


async def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(
    live: str, runtime: Runtime, operators: Operators
) -> None:
    """Three writers notify Sam concurrently while his stream drops and reconnects again and again."""
    created: list[int] = []

    async def writer() -> None:
        for _ in range(15):
            created.append(await _notify(runtime, "sam@example.com", "sue@example.com"))
            await asyncio.sleep(random.uniform(0, 0.03))

    writers = asyncio.gather(*(writer() for _ in range(3)))
    received: list[int] = []
    last: str | None = None
    deadline = time.monotonic() + 30
    while (not writers.done() or len(received) < len(created)) and time.monotonic() < deadline:
        async with open_stream(live, operators.headers("sam@example.com"), last_event_id=last or "0") as stream:
            with_this_connection = time.monotonic() + random.uniform(0.05, 0.25)
            while time.monotonic() < with_this_connection:
                try:
                    event = await stream.next(timeout=max(0.01, with_this_connection - time.monotonic()))
                except TimeoutError:
                    break
                received.append(int(event.data["id"]))
                last = event.id
    await writers
    # Sam's notifications ids, as the database holds them: Sue's copies are hers.
    async with runtime.transaction() as session:
        from sqlalchemy import select

        from envoi.notifications.models import Notification

        sams = list(
            await session.scalars(
                select(Notification.id)
                .where(Notification.operator_id == operators.ids["sam@example.com"])
                .order_by(Notification.id)
            )
        )
    assert len(sams) == 45
    assert received == sams  # every one, once, in order


async def test_idle_streams_get_heartbeats_and_read_changes_the_count(
    settings: Settings, operators: Operators, runtime: Runtime
) -> None:
    quick = Runtime.create(settings.model_copy(update={"notification_heartbeat_seconds": 0.2}))
    try:
        await _notify(quick, "sam@example.com")
        async with serving(quick) as url, open_stream(url, operators.headers("sam@example.com")) as stream:
            await asyncio.sleep(0.7)
            assert stream.comments.count(": keep-alive") >= 2
            async with httpx.AsyncClient(base_url=url, headers=operators.headers("sam@example.com")) as client:
                assert (await client.post("/api/v1/notifications/read-all")).status_code == 200
            assert (await stream.next(kind="unread", timeout=1.0)).data == {"unread": 0}
    finally:
        await quick.aclose()


async def test_who_cannot_stream(live: str, runtime: Runtime, operators: Operators) -> None:
    from envoi.access.service import create_api_key

    async with runtime.transaction() as session:
        _key, service_key = await create_api_key(session, "billing")
    async with httpx.AsyncClient(base_url=live) as client:
        refused = await client.get("/api/v1/notifications/stream", headers={"Authorization": f"Bearer {service_key}"})
        assert refused.status_code == 404
        for wrong in (b"x", "\u00b2".encode("latin-1")):  # a superscript two: a digit to str.isdigit(), not int()
            bad = await client.get(
                "/api/v1/notifications/stream", headers=operators.headers("sam@example.com") | {"Last-Event-ID": wrong}
            )
            assert bad.status_code == 422
    # An application whose lifespan never ran (no hub following the database) cannot promise a live stream.
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    runtime.notifications.close()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test") as client:
        idle = await client.get("/api/v1/notifications/stream", headers=operators.headers("sam@example.com"))
        assert idle.status_code == 503 and idle.json()["error"]["code"] == "stream_unavailable"


async def test_envoi_notify_in_another_process_reaches_the_open_stream_within_a_second(
    live: str, runtime: Runtime, operators: Operators, database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")}
    env |= {"ENVOI_DATABASE_URL": database_url, "ENVOI_DATA_DIR": str(tmp_path)}
    async with open_stream(live, operators.headers("sam@example.com")) as stream:
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "envoi", "notify", "--group", "delivery_supervisors", "--title", "From the CLI",
            "--body", "Another process", "--link", "/console/templates/1", "--category", "action_required",
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await command.communicate()
        done = time.monotonic()
        assert command.returncode == 0, output.decode()
        assert "Notified 2 operators." in output.decode()
        received = await stream.next(timeout=2.0)
        assert received.at - done < 1.0, f"{received.at - done:.2f}s after the command ended"
        assert received.data["title"] == "From the CLI" and received.data["category"] == "action_required"
        assert received.data["link"] == "/console/templates/1"


async def test_the_cli_refuses_unknown_targets(database_url: str, tmp_path: Path, operators: Operators) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")}
    env |= {"ENVOI_DATABASE_URL": database_url, "ENVOI_DATA_DIR": str(tmp_path)}
    base = [sys.executable, "-m", "envoi", "notify", "--title", "t", "--body", "b"]
    nobody = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 2 and "--group" in nobody.stdout
    unknown = subprocess.run([*base, "--group", "nope"], env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and "no security group is named 'nope'" in unknown.stdout


@pytest.fixture
async def serve_process(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[subprocess.Popen[bytes], str, str]]:
    """``envoi serve`` as a process, and an API key of an operator of it."""
    env = {"ENVOI_DATABASE_URL": database_url, "ENVOI_DATA_DIR": str(tmp_path / "data")}
    full = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")} | env

    def envoi(*args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [sys.executable, "-m", "envoi", *args], input=stdin, env=full, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    envoi("operator", "create", "--email", "ops@example.com", "--name", "Ops", stdin="a long enough password\n")
    key = envoi("apikey", "create", "--name", "ops", "--operator", "ops@example.com").strip().splitlines()[-1]
    port, log = free_port(), tmp_path / "serve.log"
    process = start_envoi(["serve", "--port", str(port)], env=env, cwd=tmp_path, output=log.open("ab"))
    try:
        wait_for_text(log, "API key:")
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        yield process, url, key
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
async def test_a_server_told_to_stop_ends_its_open_streams(
    serve_process: tuple[subprocess.Popen[bytes], str, str], tmp_path: Path
) -> None:
    process, url, key = serve_process
    async with open_stream(url, {"Authorization": f"Bearer {key}"}) as stream:
        process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        await asyncio.wait_for(stream.ended.wait(), 5)
        for _ in range(100):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert process.poll() in (0, -signal.SIGTERM), "envoi serve still runs 5 s after SIGTERM"
        assert time.monotonic() - stopping < 5
    log = (tmp_path / "serve.log").read_text()
    assert "timeout graceful shutdown exceeded" not in log and "worker.stopped" in log


async def test_an_operator_has_at_most_ten_open_streams(live: str, operators: Operators) -> None:
    headers = operators.headers("sam@example.com")
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(MAX_STREAMS_PER_OPERATOR):
            await streams.enter_async_context(open_stream(live, headers))
        async with httpx.AsyncClient(base_url=live, headers=headers) as client:
            refused = await client.get("/api/v1/notifications/stream")
            assert refused.status_code == 429 and "at most 10" in refused.json()["error"]["message"]
    async with open_stream(live, headers):  # closed ones make room again
        pass
