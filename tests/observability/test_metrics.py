"""``GET /metrics``: events in, messages out, latency histograms, webhook calls and the queue's depth, read by
Prometheus with an API key; and the counts of an ``envoi worker`` process on the ``envoi serve`` process's
/metrics, even after the worker ended.

The in-process tests count in this process alone (no metrics directory is ever set up here: prometheus_client's
choice is process-wide), and compare counts before and after, since other tests count too."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from envoi.access.permissions import Permission
from envoi.access.service import create_api_key
from envoi.events.models import Event, EventStatus
from envoi.observability.multiprocess import LOCK_FILE, join_directory, leave_directory
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.webhooks.sender import WebhookSender
from tests.conftest import drain
from tests.helpers import create_type, published_template, push
from tests.processes import free_port, start_envoi, wait_for_text
from tests.smtp_sink import SmtpSink

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(api: httpx.AsyncClient) -> Samples:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private_networks": True, "webhook_retry_base_seconds": 0.01})


async def test_events_in_messages_out_and_latencies(smtp_runtime: Runtime, smtp_api: httpx.AsyncClient) -> None:
    await published_template(smtp_api)
    await create_type(smtp_api, "no_template")
    before = await scrape(smtp_api)
    await push(smtp_api)
    batch = [{"type": "order_confirmation", "email": f"u{i}@example.com", "ctx": {"orderId": str(i)}} for i in (1, 2)]
    assert (await smtp_api.post("/api/v1/events/batch", json={"events": batch})).status_code == 202
    await push(smtp_api, type="no_template")
    refused = await smtp_api.post("/api/v1/events/batch", json={"events": [*batch, {"type": "nope"}]})
    assert refused.status_code == 422  # stored nothing, counts nothing
    await drain(smtp_runtime)
    after = await scrape(smtp_api)

    assert grew(before, after, "envoi_events_received_total", type="order_confirmation", channel="email") == 3
    assert grew(before, after, "envoi_events_received_total", type="no_template", channel="email") == 1
    assert grew(before, after, "envoi_messages_out_total", channel="email", outcome="sent") == 3
    assert grew(before, after, "envoi_messages_out_total", channel="email", outcome="failed") == 0
    assert grew(before, after, "envoi_events_handled_total", channel="email", status="processed") == 3
    assert grew(before, after, "envoi_events_handled_total", channel="email", status="routing_failed") == 1
    assert grew(before, after, "envoi_event_queue_seconds_count", channel="email") == 4
    assert grew(before, after, "envoi_event_time_to_send_seconds_count", channel="email") == 3
    queued = grew(before, after, "envoi_event_queue_seconds_sum", channel="email")
    assert 0 < queued < 60
    within_a_minute = grew(before, after, "envoi_event_queue_seconds_bucket", channel="email", le="60.0")
    assert within_a_minute == 4  # buckets are cumulative: every event waited less than a minute
    batches = grew(before, after, "envoi_batch_stage_seconds_count", stage="send")
    assert batches >= 1 and grew(before, after, "envoi_batch_stage_seconds_count", stage="claim") == batches
    for status in ("pending", "processing", "paused"):
        assert value(after, "envoi_queue_depth", status=status, channel="email") == 0


async def test_queue_depth_is_read_from_the_database(runtime: Runtime, api: httpx.AsyncClient) -> None:
    await published_template(api)
    ids = [await push(api, ctx={"orderId": str(i)}) for i in range(6)]
    async with runtime.transaction() as session:
        await session.execute(update(Event).where(Event.id == ids[0]).values(status=EventStatus.PROCESSING))
        await session.execute(update(Event).where(Event.id.in_(ids[1:3])).values(status=EventStatus.PAUSED))
        await session.execute(update(Event).where(Event.id == ids[3]).values(channel="sms"))
        await session.execute(update(Event).where(Event.id == ids[4]).values(status=EventStatus.PROCESSED))
        rows = await session.execute(select(Event.status, Event.channel, func.count()).group_by("status", "channel"))
        in_database = {(EventStatus(s).label, c): n for s, c, n in rows if s in (0, 1, 7)}
    samples = await scrape(api)
    depth = {
        (dict(labels)["status"], dict(labels)["channel"]): events
        for (name, labels), events in samples.items()
        if name == "envoi_queue_depth" and events
    }
    assert depth == in_database == {("pending", "email"): 1, ("pending", "sms"): 1, ("processing", "email"): 1,
                                    ("paused", "email"): 2}  # fmt: skip
    assert value(samples, "envoi_queue_depth", status="processing", channel="push") == 0  # listed, at zero


async def test_metrics_need_a_key_that_may_view_events(runtime: Runtime, api: httpx.AsyncClient) -> None:
    async with runtime.transaction() as session:
        _key, pusher = await create_api_key(session, "pusher", scopes=[Permission.PUSH_EVENTS])
        _key, prometheus = await create_api_key(session, "prometheus", scopes=[Permission.VIEW_EVENTS])
    assert (await api.get("/metrics", headers={"Authorization": ""})).status_code == 401
    assert (await api.get("/metrics", headers={"Authorization": f"Bearer {pusher}"})).status_code == 403
    allowed = await api.get("/metrics", headers={"Authorization": f"Bearer {prometheus}"})
    assert allowed.status_code == 200 and "# TYPE envoi_messages_out_total counter" in allowed.text


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


async def test_webhook_calls_by_result(smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, receiver_url: str) -> None:
    await published_template(smtp_api)
    for url in (receiver_url, f"http://127.0.0.1:{free_port()}/closed"):
        created = await smtp_api.post("/api/v1/webhooks", json={"url": url, "changes": ["event.processed"]})
        assert created.status_code == 201, created.text
    await push(smtp_api)
    await drain(smtp_runtime)
    before = await scrape(smtp_api)
    sender = WebhookSender(smtp_runtime.settings, smtp_runtime.sessionmaker)
    try:
        await sender.send_due()  # one call answered, one refused: retried later
        await asyncio.sleep(0.05)
        gave_up = WebhookSender(
            smtp_runtime.settings.model_copy(update={"webhook_retry_hours": 1e-9}), sender.sessionmaker
        )
        await gave_up.send_due()  # refused again, and past the retry period: the subscription is disabled
        await gave_up.pool.aclose()
    finally:
        await sender.pool.aclose()
    after = await scrape(smtp_api)
    assert grew(before, after, "envoi_webhook_calls_total", result="delivered") == 1
    assert grew(before, after, "envoi_webhook_calls_total", result="retry") == 1
    assert grew(before, after, "envoi_webhook_calls_total", result="failed") == 1
    assert grew(before, after, "envoi_webhook_call_seconds_count") == 3


def test_the_first_process_of_a_host_empties_the_directory_and_the_others_keep_it(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    first = join_directory(directory)
    (directory / "counter_1.db").write_bytes(b"")  # an ended process's counts
    second = join_directory(directory)  # another process starts while the first lives: the counts stay
    assert (directory / "counter_1.db").exists()
    leave_directory(directory, first)
    leave_directory(directory, second)
    again = join_directory(directory)  # every process had ended: a fresh start
    assert sorted(p.name for p in directory.iterdir()) == [LOCK_FILE]
    leave_directory(directory, again)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # nothing here switched this process to files


# --- several processes ---------------------------------------------------------------------------------------


def _scrape_process(url: str, key: str) -> Samples:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return parse(response.text)


def _start_api(env: dict[str, str], tmp_path: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    process = start_envoi(["serve", "--no-worker", "--port", str(port)], env=env, cwd=tmp_path, output=log.open("ab"))
    url = f"http://127.0.0.1:{port}"
    wait_for_text(log, f"127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return process, url, (tmp_path / "data" / "api-key").read_text().strip()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)


@pytest.mark.slow
async def test_the_api_process_shows_what_a_worker_process_sent(
    database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    env = {
        "ENVOI_DATABASE_URL": database_url,
        "ENVOI_DATA_DIR": str(tmp_path / "data"),
        "ENVOI_METRICS_DIR": str(tmp_path / "metrics"),
        "ENVOI_SMTP_URL": smtp_sink.url,
        "ENVOI_WORKER_POLL_SECONDS": "0.05",
    }
    api, url, key = _start_api(env, tmp_path, tmp_path / "api.log")
    worker = start_envoi(["worker"], env=env, cwd=tmp_path, output=(tmp_path / "worker.log").open("ab"))
    try:
        wait_for_text(tmp_path / "worker.log", "worker.started")
        reset = {"type": "password_reset", "ctx": {"firstName": "Ada", "resetUrl": "https://example.com/r"}}
        events = [reset | {"email": f"user{i}@example.com"} for i in range(5)]
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{url}/api/v1/events/batch", json={"events": events}, headers=headers).status_code == 202
        await smtp_sink.wait_for(5, timeout=30)
        deadline = time.monotonic() + 10
        while value(samples := _scrape_process(url, key), "envoi_events_handled_total", channel="email",
                    status="processed") < 5:  # fmt: skip
            assert time.monotonic() < deadline, "the worker's counts never showed"
            await asyncio.sleep(0.05)
        assert value(samples, "envoi_events_received_total", type="password_reset", channel="email") == 5  # the API's
        assert value(samples, "envoi_messages_out_total", channel="email", outcome="sent") == 5  # the worker's
        assert value(samples, "envoi_event_queue_seconds_count", channel="email") == 5
        assert value(samples, "envoi_queue_depth", status="pending", channel="email") == 0
        assert "worker.started" not in (tmp_path / "api.log").read_text()  # the API process sent nothing itself
    finally:
        _stop(worker)
    # The worker ended: its counts stay in the sums while the host's other processes live.
    assert value(_scrape_process(url, key), "envoi_messages_out_total", channel="email", outcome="sent") == 5
    _stop(api)

    # Every process had ended: the next one to start begins again from zero, as Prometheus expects of a restart.
    again, url, key = _start_api(env, tmp_path, tmp_path / "api.log")
    try:
        samples = _scrape_process(url, key)
        assert value(samples, "envoi_messages_out_total", channel="email", outcome="sent") == 0
        assert value(samples, "envoi_events_received_total", type="password_reset", channel="email") == 0
    finally:
        _stop(again)
