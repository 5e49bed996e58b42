"""The activities, each run for real by the scheduler through the API: query and push_events on events pushed
through the API, test on counts and statuses, wait, http_request against real peers on 127.0.0.1, and the
upkeep of the technical workflows (purge, lease recovery, hourly statistics)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from envoi.bounces.models import Bounce, BounceKind
from envoi.channels.outbox import OutboxMessage
from envoi.db.base import utcnow
from envoi.delivery.claim import claim_batch
from envoi.delivery.models import Message
from envoi.events.models import Event, EventMode, EventStatus, EventStatusChange
from envoi.notifications.models import Notification
from envoi.reports.models import QueueSample
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.workflows.models import HourlyStatistic, Workflow, WorkflowRun
from tests.conftest import drain, make_client
from tests.helpers import create_type, event, published_template, push
from tests.workflows.conftest import HttpPeer, Operators, definition, settle

START = {"name": "start", "kind": "scheduler", "settings": {"cron": "0 6 * * *"}}


async def create(api: httpx.AsyncClient, name: str, *activities: dict[str, Any]) -> int:
    response = await api.post("/api/v1/workflows", json={"name": name, "definition": definition(*activities)})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def run(api: httpx.AsyncClient, runtime: Runtime, workflow_id: int) -> dict[str, Any]:
    """Run now, let the scheduler do what is due, and read the run with its steps."""
    started = await api.post(f"/api/v1/workflows/{workflow_id}/runs")
    assert started.status_code == 201, started.text
    await settle(runtime)
    return await read_run(api, workflow_id, started.json()["id"])


async def read_run(api: httpx.AsyncClient, workflow_id: int, run_id: int) -> dict[str, Any]:
    response = await api.get(f"/api/v1/workflows/{workflow_id}/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's steps by activity (each ran once)."""
    by_activity = {step["activity"]: step for step in run["steps"]}
    assert len(by_activity) == len(run["steps"]), run["steps"]
    return by_activity


async def shipped(api: httpx.AsyncClient, name: str) -> int:
    workflows = (await api.get("/api/v1/workflows")).json()
    return int(next(w["id"] for w in workflows if w["name"] == name))


async def events_of(runtime: Runtime, event_type: str) -> list[Event]:
    async with runtime.transaction() as session:
        return list(await session.scalars(select(Event).where(Event.type == event_type).order_by(Event.id)))


# -- query and push_events ---------------------------------------------------------------------------------------------


@pytest.fixture
async def orders(wf_api: httpx.AsyncClient, wf_runtime: Runtime) -> dict[str, int]:
    """Events through the API: three order confirmations delivered (one of them two hours ago), a newsletter
    delivered, and an order confirmation scheduled for tomorrow (pending)."""
    await published_template(wf_api, "order_confirmation")
    await published_template(wf_api, "newsletter")
    await create_type(wf_api, "order_reminder")
    ids = {
        "ada": await push(wf_api, email="ada@example.com", ctx={"orderId": "A-1", "firstName": "Ada"}, origin="shop"),
        "bob": await push(wf_api, email="bob@example.com", ctx={"orderId": "B-2", "firstName": "Bob"}, language="fr"),
        "cy": await push(wf_api, email="cy@example.com", ctx={"orderId": "C-3"}),
        "dan": await push(wf_api, type="newsletter", email="dan@example.com", ctx={"orderId": "N-1"}),
    }
    await drain(wf_runtime)
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    ids["eve"] = await push(wf_api, email="eve@example.com", ctx={"orderId": "E-5"}, scheduled=tomorrow)
    async with wf_runtime.transaction() as session:
        await session.execute(
            update(Event).where(Event.id == ids["cy"]).values(created_at=utcnow() - timedelta(hours=2))
        )
    for name in ("ada", "bob", "cy", "dan"):
        assert (await event(wf_api, ids[name]))["status"] == "processed"
    return ids


def reminding(**query: Any) -> list[dict[str, Any]]:
    return [
        START | {"next": ["select"]},
        {"name": "select", "kind": "query", "settings": query, "next": ["remind"]},
        {"name": "remind", "kind": "push_events", "settings": {"event_type": "order_reminder"}, "next": ["end"]},
        {"name": "end", "kind": "end"},
    ]


async def test_query_then_push_events_copies_exactly_the_selected_events(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, orders: dict[str, int]
) -> None:
    workflow = await create(
        wf_api,
        "remind",
        *reminding(event_types=["order_confirmation"], statuses=["processed"], received_within="1h"),
    )
    result = await run(wf_api, wf_runtime, workflow)

    assert result["status"] == "succeeded" and result["waiting"] == [] and result["errors"] == 0
    done = steps(result)
    assert [s["activity"] for s in result["steps"]] == ["start", "select", "remind", "end"]
    assert (done["select"]["status"], done["select"]["count"]) == ("done", 2)
    assert done["select"]["logs"] == ["2 events selected"]
    assert (done["remind"]["status"], done["remind"]["count"]) == ("done", 2)
    assert done["remind"]["logs"] == ["2 events of order_reminder created, 0 refused"]

    copies = await events_of(wf_runtime, "order_reminder")
    assert [(e.email, e.ctx, e.origin, e.language, e.channel, e.mode, e.status) for e in copies] == [
        (
            "ada@example.com",
            {"orderId": "A-1", "firstName": "Ada"},
            "workflow:remind",
            None,
            "email",
            EventMode.BATCH,
            EventStatus.PENDING,
        ),
        (
            "bob@example.com",
            {"orderId": "B-2", "firstName": "Bob"},
            "workflow:remind",
            "fr",
            "email",
            EventMode.BATCH,
            EventStatus.PENDING,
        ),
    ]
    assert len(await events_of(wf_runtime, "order_confirmation")) == 4  # the sources stay as they were
    assert len(await events_of(wf_runtime, "newsletter")) == 1

    again = await run(wf_api, wf_runtime, workflow)  # a second run selects the same events again: 2 more copies
    assert steps(again)["remind"]["count"] == 2
    assert len(await events_of(wf_runtime, "order_reminder")) == 4


async def test_query_without_filters_counts_every_event_and_limit_is_honoured(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, orders: dict[str, int]
) -> None:
    everything = await create(wf_api, "everything", *reminding())
    result = await run(wf_api, wf_runtime, everything)
    assert (steps(result)["select"]["count"], steps(result)["remind"]["count"]) == (5, 5)  # every type and status

    first = await create(wf_api, "first", *reminding(event_types=["order_confirmation"], limit=1))
    result = await run(wf_api, wf_runtime, first)
    assert (steps(result)["select"]["count"], steps(result)["remind"]["count"]) == (1, 1)
    newest = (await events_of(wf_runtime, "order_reminder"))[-1]
    assert (newest.email, newest.origin) == ("ada@example.com", "workflow:first")  # the lowest id first


async def test_query_filters_by_status_and_channel(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, orders: dict[str, int]
) -> None:
    pending = await create(wf_api, "pending", *reminding(statuses=["pending", "paused"]))
    result = await run(wf_api, wf_runtime, pending)
    assert steps(result)["select"]["count"] == 1
    assert [e.email for e in await events_of(wf_runtime, "order_reminder")] == ["eve@example.com"]

    sms = await create(wf_api, "sms", *reminding(channels=["sms"]))
    result = await run(wf_api, wf_runtime, sms)
    assert (result["status"], steps(result)["select"]["count"], steps(result)["remind"]["count"]) == (
        "succeeded",
        0,
        0,
    )
    assert steps(result)["remind"]["logs"] == ["0 events of order_reminder created, 0 refused"]


async def test_push_events_into_a_type_that_does_not_exist_fails_with_the_reason(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, orders: dict[str, int]
) -> None:
    activities = reminding(event_types=["newsletter"])
    activities[2]["settings"] = {"event_type": "winback"}
    result = await run(wf_api, wf_runtime, await create(wf_api, "winback", *activities))
    assert (result["status"], result["failedActivity"]) == ("suspended", "remind")
    assert result["error"] == "none of the 1 events could be turned into winback events"
    assert steps(result)["remind"]["logs"] == [
        f"event {orders['dan']} not copied: event type 'winback' does not exist",
        "0 events of winback created, 1 refused",
    ]


async def test_a_test_after_push_events_checks_how_many_were_created(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, http_peer: HttpPeer
) -> None:
    await create_type(wf_api, "order_confirmation")
    await create_type(wf_api, "order_reminder")
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    for email in ("ada@example.com", "bob@example.com"):
        await push(wf_api, email=email, scheduled=tomorrow)
    activities = reminding(event_types=["order_confirmation"])
    activities[2]["next"] = ["check"]
    workflow = await create(
        wf_api,
        "counted",
        *activities[:3],
        {"name": "check", "kind": "test", "settings": {"operator": ">=", "value": 2}, "next": {"true": ["tell"]}},
        {"name": "tell", "kind": "http_request", "settings": {"url": f"{http_peer.url}/pushed"}},
    )
    result = await run(wf_api, wf_runtime, workflow)
    assert [s["activity"] for s in result["steps"]] == ["start", "select", "remind", "check", "tell"]
    assert steps(result)["check"]["logs"] == ["count 2 >= 2: true"]
    assert [path for _, path, _ in http_peer.calls] == ["/pushed"]


async def test_push_events_after_an_activity_that_is_not_a_query_fails_clearly(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, http_peer: HttpPeer
) -> None:
    await create_type(wf_api, "order_reminder")
    workflow = await create(
        wf_api,
        "misplaced",
        START | {"next": ["call"]},
        {"name": "call", "kind": "http_request", "settings": {"url": http_peer.url}, "next": ["remind"]},
        {"name": "remind", "kind": "push_events", "settings": {"event_type": "order_reminder"}},
    )
    result = await run(wf_api, wf_runtime, workflow)
    assert (result["status"], result["failedActivity"], result["waiting"]) == ("suspended", "remind", ["remind"])
    assert result["error"] == "its input is not a selection of events: put a query before it"
    assert (steps(result)["remind"]["status"], steps(result)["remind"]["error"]) == ("failed", result["error"])
    assert await events_of(wf_runtime, "order_reminder") == []


# -- test ----------------------------------------------------------------------------------------------------------


def branching(first: dict[str, Any], check: dict[str, Any], peer: HttpPeer) -> list[dict[str, Any]]:
    """start -> first -> check; true: call /yes, false: call /no."""
    return [
        START | {"next": [first["name"]]},
        first | {"next": ["check"]},
        {"name": "check", "kind": "test", "settings": check, "next": {"true": ["yes"], "false": ["no"]}},
        {"name": "yes", "kind": "http_request", "settings": {"url": f"{peer.url}/yes"}},
        {"name": "no", "kind": "http_request", "settings": {"url": f"{peer.url}/no"}},
    ]


async def test_test_follows_true_or_false_on_a_query_count(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, orders: dict[str, int], http_peer: HttpPeer
) -> None:
    query = {"name": "select", "kind": "query", "settings": {"event_types": ["order_confirmation"]}}
    many = await create(wf_api, "many", *branching(query, {"operator": ">", "value": 3}, http_peer))
    result = await run(wf_api, wf_runtime, many)
    assert result["status"] == "succeeded"
    assert [s["activity"] for s in result["steps"]] == ["start", "select", "check", "yes"]
    assert (steps(result)["check"]["count"], steps(result)["check"]["logs"]) == (4, ["count 4 > 3: true"])
    assert [path for _, path, _ in http_peer.calls] == ["/yes"]

    few = await create(wf_api, "few", *branching(query, {"operator": ">=", "value": 5}, http_peer))
    result = await run(wf_api, wf_runtime, few)
    assert [s["activity"] for s in result["steps"]] == ["start", "select", "check", "no"]
    assert steps(result)["check"]["logs"] == ["count 4 >= 5: false"]
    assert [path for _, path, _ in http_peer.calls] == ["/yes", "/no"]


async def test_test_follows_true_or_false_on_an_http_status(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, http_peer: HttpPeer
) -> None:
    call = {"name": "call", "kind": "http_request", "settings": {"url": f"{http_peer.url}/status"}}
    workflow = await create(
        wf_api, "status", *branching(call, {"subject": "status", "operator": "==", "value": 201}, http_peer)
    )
    http_peer.answer(200)
    result = await run(wf_api, wf_runtime, workflow)
    assert [s["activity"] for s in result["steps"]] == ["start", "call", "check", "no"]
    assert (steps(result)["call"]["count"], steps(result)["check"]["logs"]) == (200, ["status 200 == 201: false"])

    http_peer.answer(201)
    result = await run(wf_api, wf_runtime, workflow)
    assert [s["activity"] for s in result["steps"]] == ["start", "call", "check", "yes"]
    assert steps(result)["check"]["logs"] == ["status 201 == 201: true"]
    assert [path for _, path, _ in http_peer.calls] == ["/status", "/no", "/status", "/yes"]


async def test_test_without_the_number_it_tests_fails_clearly(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, http_peer: HttpPeer
) -> None:
    call = {"name": "call", "kind": "http_request", "settings": {"url": http_peer.url}}
    workflow = await create(wf_api, "confused", *branching(call, {"subject": "count"}, http_peer))
    result = await run(wf_api, wf_runtime, workflow)
    assert (result["status"], result["failedActivity"]) == ("suspended", "check")
    assert result["error"] == "its input has no count to test (is it after the right activity?)"


# -- wait ----------------------------------------------------------------------------------------------------------


async def test_wait_holds_the_run_until_its_duration_is_over(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, http_peer: HttpPeer
) -> None:
    workflow = await create(
        wf_api,
        "later",
        START | {"next": ["pause"]},
        {"name": "pause", "kind": "wait", "settings": {"duration": "1s"}, "next": ["call"]},
        {"name": "call", "kind": "http_request", "settings": {"url": f"{http_peer.url}/later"}, "next": ["end"]},
        {"name": "end", "kind": "end"},
    )
    started = await wf_api.post(f"/api/v1/workflows/{workflow}/runs")
    run_id = started.json()["id"]
    before = utcnow()
    await settle(wf_runtime)

    waiting = await read_run(wf_api, workflow, run_id)
    assert (waiting["status"], waiting["waiting"], waiting["endedAt"]) == ("running", ["call"], None)
    assert [s["activity"] for s in waiting["steps"]] == ["start", "pause"]
    (line,) = steps(waiting)["pause"]["logs"]
    async with wf_runtime.transaction() as session:
        until = await session.scalar(select(WorkflowRun.resume_at).where(WorkflowRun.id == run_id))
    assert until is not None and before + timedelta(seconds=1) <= until <= utcnow() + timedelta(seconds=1)
    assert line == f"next activities start after {until.isoformat(timespec='seconds')}"
    await settle(wf_runtime)  # nothing is due yet
    assert http_peer.calls == []

    await asyncio.sleep(max(0.0, (until - utcnow()).total_seconds()) + 0.05)
    await settle(wf_runtime)
    ended = await read_run(wf_api, workflow, run_id)
    assert (ended["status"], ended["waiting"]) == ("succeeded", [])
    assert [s["activity"] for s in ended["steps"]] == ["start", "pause", "call", "end"]
    assert datetime.fromisoformat(steps(ended)["call"]["startedAt"]) >= until
    assert [path for _, path, _ in http_peer.calls] == ["/later"]


# -- http_request --------------------------------------------------------------------------------------------------


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True
    stall: bool
    released: threading.Event
    requests: list[tuple[str, str, dict[str, str], bytes]]


class _RecordingHandler(BaseHTTPRequestHandler):
    """Records each request with its headers; when stalling, answers nothing until the test ends."""

    server: _Recorder

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, dict(self.headers.items()), body))
        if self.server.stall:
            self.server.released.wait(10)
            return
        reply = b'{"ok": true}'
        self.send_response(202)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Recorder:
    server: _Recorder
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = _Recorder(("127.0.0.1", 0), _RecordingHandler)
    server.stall, server.released, server.requests = False, threading.Event(), []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Recorder(server, server.requests)
    server.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
async def guarded(settings: Settings) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A runtime with Envoi's default guard: no private or loopback address."""
    runtime = Runtime.create(settings.model_copy(update={"workflow_http_allow_private_networks": False}))
    async with await make_client(runtime) as client:
        yield runtime, client
    await runtime.aclose()


def calling(url: str, **request: Any) -> list[dict[str, Any]]:
    return [
        START | {"next": ["call"]},
        {"name": "call", "kind": "http_request", "settings": {"url": url, **request}},
    ]


async def test_a_loopback_address_is_refused_by_default(
    guarded: tuple[Runtime, httpx.AsyncClient], recorder: Recorder
) -> None:
    runtime, api = guarded
    assert runtime.settings.workflow_http_allow_private_networks is False
    result = await run(api, runtime, await create(api, "local", *calling(f"{recorder.url}/admin?x=1")))
    assert (result["status"], result["failedActivity"]) == ("suspended", "call")
    assert result["error"] == f"GET {recorder.url}/admin: 127.0.0.1 resolves to 127.0.0.1, not a public address"
    assert recorder.requests == []


async def test_only_the_allowed_hosts_are_called(settings: Settings, recorder: Recorder) -> None:
    for name, allowed, expected in (
        ("elsewhere", ["hooks.example.com", ".example.org"], "suspended"),
        ("here", ["127.0.0.1"], "succeeded"),
    ):
        runtime = Runtime.create(settings.model_copy(update={"workflow_http_allowed_hosts": allowed}))
        try:
            async with await make_client(runtime) as api:
                result = await run(api, runtime, await create(api, name, *calling(recorder.url)))
        finally:
            await runtime.aclose()
        assert result["status"] == expected, allowed
        if expected == "suspended":
            assert result["error"] == "127.0.0.1 is not among the allowed hosts (ENVOI_WORKFLOW_HTTP_ALLOWED_HOSTS)"
            assert recorder.requests == []
    assert len(recorder.requests) == 1


async def test_post_sends_the_json_body_and_headers(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, recorder: Recorder
) -> None:
    body = {"orderId": "A-1", "items": [1, 2], "note": "élan"}
    workflow = await create(
        wf_api,
        "hook",
        *calling(f"{recorder.url}/hooks/orders?src=envoi", method="POST", body=body, headers={"X-Token": "s3cret"}),
    )
    result = await run(wf_api, wf_runtime, workflow)
    assert result["status"] == "succeeded"
    assert steps(result)["call"]["count"] == 202
    assert steps(result)["call"]["logs"] == [f'POST {recorder.url}/hooks/orders: HTTP 202: {{"ok": true}}']
    ((method, path, headers, sent),) = recorder.requests
    assert (method, path) == ("POST", "/hooks/orders?src=envoi")
    assert json.loads(sent) == body
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Token"] == "s3cret"
    assert headers["User-Agent"] == "Envoi workflow"
    assert headers["Content-Length"] == str(len(sent))


async def test_a_peer_that_stalls_fails_the_activity_at_its_timeout(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, recorder: Recorder
) -> None:
    recorder.server.stall = True
    workflow = await create(wf_api, "slow", *calling(f"{recorder.url}/slow", timeout=0.5))
    started = asyncio.get_running_loop().time()
    result = await run(wf_api, wf_runtime, workflow)
    assert asyncio.get_running_loop().time() - started < 5
    assert (result["status"], result["failedActivity"]) == ("suspended", "call")
    assert result["error"] == f"GET {recorder.url}/slow: no answer within 0.5s"
    assert len(recorder.requests) == 1


async def test_an_answer_outside_2xx_fails_with_the_status_and_the_start_of_the_body(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, http_peer: HttpPeer
) -> None:
    http_peer.answer(404)
    result = await run(wf_api, wf_runtime, await create(wf_api, "gone", *calling(f"{http_peer.url}/gone")))
    assert result["error"] == f"GET {http_peer.url}/gone answered HTTP 404"
    assert steps(result)["call"]["logs"] == [f"GET {http_peer.url}/gone: HTTP 404: answer 404"]


async def test_expected_statuses_make_other_answers_a_success_to_branch_on(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, http_peer: HttpPeer
) -> None:
    http_peer.answer(503)
    graph = definition(
        {"name": "start", "kind": "scheduler", "settings": {"cron": "0 6 * * *"}, "next": ["call"]},
        {
            "name": "call",
            "kind": "http_request",
            "settings": {"url": f"{http_peer.url}/health", "expected_statuses": [200, 503]},
            "next": ["down"],
        },
        {"name": "down", "kind": "test", "settings": {"subject": "status", "operator": "==", "value": 503},
         "next": {"true": ["alert"], "false": ["fine"]}},
        {"name": "alert", "kind": "end"},
        {"name": "fine", "kind": "end"},
    )  # fmt: skip
    created = await wf_api.post("/api/v1/workflows", json={"name": "health", "definition": graph})
    result = await run(wf_api, wf_runtime, created.json()["id"])
    assert result["status"] == "succeeded"
    assert set(steps(result)) == {"start", "call", "down", "alert"}
    refused = await wf_api.post(
        "/api/v1/workflows",
        json={"name": "bad", "definition": definition(*calling(http_peer.url, expected_statuses=[200, 700]))},
    )
    assert refused.json()["error"]["errors"] == [
        {"field": "definition.activities[1].settings.expected_statuses", "message": "HTTP statuses are 100 to 599"}
    ]


# -- upkeep: purge, lease recovery, hourly statistics --------------------------------------------------------------


async def test_purge_deletes_old_ended_events_with_their_messages_and_timeline_and_old_records(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, people: Operators
) -> None:
    await published_template(wf_api, "order_confirmation")
    ended = [await push(wf_api, email=f"old{i}@example.com") for i in range(3)]
    recent = await push(wf_api, email="new@example.com")
    ended_lately = await push(wf_api, email="late@example.com")  # received 40 days ago, sent yesterday
    await drain(wf_runtime)
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    waiting = [await push(wf_api, email=f"wait{i}@example.com", scheduled=tomorrow) for i in range(3)]
    purge = await shipped(wf_api, "purge")
    long_ago = utcnow() - timedelta(days=40)
    async with wf_runtime.transaction() as session:
        await session.execute(update(Event).where(Event.id == waiting[1]).values(status=EventStatus.PROCESSING))
        await session.execute(update(Event).where(Event.id == waiting[2]).values(status=EventStatus.PAUSED))
        await session.execute(update(Event).where(Event.id == ended[2]).values(status=EventStatus.DELIVERY_FAILED))
        await session.execute(
            update(Event).where(Event.id.in_([*ended, *waiting])).values(created_at=long_ago, updated_at=long_ago)
        )
        await session.execute(update(Event).where(Event.id == ended_lately).values(created_at=long_ago))
        session.add_all(  # this runtime sends emails by SMTP: what the outbox channel would have captured
            OutboxMessage(channel="sms", sender="Shop", recipient=f"+3361234567{i}", text="Hi", created_at=at)
            for i, at in enumerate([long_ago, long_ago, long_ago, utcnow()])
        )
        operator = people.ids["wendy@example.com"]
        session.add_all(
            Notification(operator_id=operator, category="info", title=title, body="", created_at=utcnow() - age)
            for title, age in (("old", timedelta(days=100)), ("recent", timedelta(days=80)))
        )
        session.add_all(  # queue depth samples are kept as long as events
            QueueSample(at=at, event_type="", channel="", pending=1, processing=0, paused=0)
            for at in (long_ago, utcnow())
        )
        session.add_all(  # and so are bounce reports
            Bounce(received_at=at, kind=BounceKind.SOFT, address="x@example.com") for at in (long_ago, utcnow())
        )
        session.add(
            WorkflowRun(
                workflow_id=purge,
                status="succeeded",
                trigger="schedule",
                definition={},
                pending=[],
                errors=0,
                started_at=long_ago,
                ended_at=long_ago,
            )
        )

    async with wf_runtime.transaction() as session:
        outbox = list(await session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
    result = await run(wf_api, wf_runtime, purge)
    assert result["status"] == "succeeded"
    assert steps(result)["purge"]["count"] == 3
    assert steps(result)["purge"]["logs"] == [
        "deleted 3 ended events older than 30 days with their 3 messages, 3 outbox messages, 1 workflow runs older "
        "than 30 days, 1 notifications older than 90 days"
    ]
    async with wf_runtime.transaction() as session:
        left = dict(list(await session.execute(select(Event.id, Event.status))))
        messages = list(await session.scalars(select(Message.event_id)))
        timeline = set(await session.scalars(select(EventStatusChange.event_id)))
        outbox_left = list(await session.scalars(select(OutboxMessage.id)))
        notices = list(await session.scalars(select(Notification.title)))
        runs = list(await session.scalars(select(WorkflowRun.id).where(WorkflowRun.workflow_id == purge)))
        samples = list(await session.scalars(select(QueueSample.at)))
        bounces = list(await session.scalars(select(Bounce.received_at)))
    assert len(samples) == 1 and samples[0] > long_ago
    assert len(bounces) == 1 and bounces[0] > long_ago
    assert left == {
        recent: EventStatus.PROCESSED,
        ended_lately: EventStatus.PROCESSED,
        waiting[0]: EventStatus.PENDING,
        waiting[1]: EventStatus.PROCESSING,
        waiting[2]: EventStatus.PAUSED,
    }
    assert sorted(messages) == [recent, ended_lately]
    assert timeline <= {recent, ended_lately, *waiting} and recent in timeline
    assert outbox_left == outbox[3:]
    assert notices == ["recent"]
    assert runs == [result["id"]]
    assert (await wf_api.get(f"/api/v1/events/{ended[0]}")).status_code == 404


async def test_recover_leases_returns_only_expired_leases_to_the_queue(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime
) -> None:
    await create_type(wf_api, "order_confirmation")
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    abandoned, busy, queued, waiting = [await push(wf_api, scheduled=tomorrow) for _ in range(4)]
    now = utcnow()
    async with wf_runtime.transaction() as session:
        for event_id, lease_end in ((abandoned, now - timedelta(minutes=1)), (busy, now + timedelta(minutes=10))):
            await session.execute(
                update(Event)
                .where(Event.id == event_id)
                .values(
                    status=EventStatus.PROCESSING,
                    lease_owner="worker-gone",
                    next_attempt_at=lease_end,
                    claimed_at=now - timedelta(hours=2),
                )
            )
        # Due since after the abandoned one was taken: the abandoned one goes back ahead of it, not behind.
        await session.execute(update(Event).where(Event.id == waiting).values(next_attempt_at=now - timedelta(hours=1)))
    result = await run(wf_api, wf_runtime, await shipped(wf_api, "recover_leases"))
    assert (result["status"], steps(result)["recover_leases"]["count"]) == ("succeeded", 1)
    assert steps(result)["recover_leases"]["logs"] == ["1 events returned to the queue"]

    recovered = await event(wf_api, abandoned)
    assert (recovered["status"], recovered["errorCount"]) == ("pending", 1)
    assert recovered["lastError"] == "the worker handling it stopped before recording"
    untouched = await event(wf_api, busy)
    assert (untouched["status"], untouched["errorCount"], untouched["lastError"]) == ("processing", 0, None)
    assert (await event(wf_api, queued))["status"] == "pending"
    async with wf_runtime.transaction() as session:
        owners = dict(list(await session.execute(select(Event.id, Event.lease_owner))))
    assert owners == {abandoned: None, busy: "worker-gone", queued: None, waiting: None}
    async with wf_runtime.transaction() as session:
        first = await claim_batch(session, owner="next-worker", size=1, lease_seconds=60, now=utcnow())
    assert [e.id for e in first] == [abandoned]


async def test_hourly_statistics_count_a_past_hour_per_type_and_channel_once(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime
) -> None:
    await published_template(wf_api, "order_confirmation")
    await published_template(wf_api, "newsletter")
    for i in range(3):
        await push(wf_api, email=f"c{i}@example.com")
    await push(wf_api, type="newsletter", email="n@example.com")
    failed = await push(wf_api, email="f@example.com")
    await drain(wf_runtime)
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    during = hour + timedelta(minutes=10)
    async with wf_runtime.transaction() as session:
        await session.execute(update(Event).where(Event.id == failed).values(channel="sms"))
        await session.execute(
            update(EventStatusChange)
            .where(EventStatusChange.event_id == failed, EventStatusChange.status == EventStatus.PROCESSED)
            .values(status=EventStatus.DELIVERY_FAILED)
        )
        await session.execute(update(Message).where(Message.event_id == failed).values(channel="sms"))
        await session.execute(update(Event).values(created_at=during))
        await session.execute(update(EventStatusChange).values(at=during))
        await session.execute(update(Message).values(created_at=during))
    await push(wf_api, email="now@example.com")  # this hour: not counted until it is over

    statistics = await shipped(wf_api, "hourly_statistics")
    first = await run(wf_api, wf_runtime, statistics)
    assert (steps(first)["hourly_statistics"]["count"], steps(first)["hourly_statistics"]["logs"]) == (
        48,
        ["48 hours counted"],
    )
    expected = [
        (hour, "newsletter", "email", 1, 1, 0, 0, 1),
        (hour, "order_confirmation", "email", 3, 3, 0, 0, 3),
        (hour, "order_confirmation", "sms", 1, 0, 0, 1, 1),
    ]
    assert await statistics_rows(wf_runtime) == expected

    second = await run(wf_api, wf_runtime, statistics)
    assert second["status"] == "succeeded"
    assert steps(second)["hourly_statistics"]["count"] in (2, 3)  # the hours after the last counted one
    assert await statistics_rows(wf_runtime) == expected


async def statistics_rows(runtime: Runtime) -> list[tuple[Any, ...]]:
    async with runtime.transaction() as session:
        rows = await session.scalars(
            select(HourlyStatistic).order_by(HourlyStatistic.hour, HourlyStatistic.event_type, HourlyStatistic.channel)
        )
        return [
            (r.hour, r.event_type, r.channel, r.received, r.processed, r.ignored, r.failed, r.messages) for r in rows
        ]


async def test_the_technical_workflows_are_scheduled_on_their_crons(wf_runtime: Runtime) -> None:
    await settle(wf_runtime)  # the first tick gives the shipped workflows their next run time
    now = utcnow()
    async with wf_runtime.transaction() as session:
        scheduled = {w.name: w.next_run_at for w in await session.scalars(select(Workflow).where(Workflow.technical))}
        runs = await session.scalar(select(func.count()).select_from(WorkflowRun))
    assert runs == 0
    assert set(scheduled) == {"purge", "recover_leases", "hourly_statistics", "email_deliveries"}
    for name, at in scheduled.items():
        assert at is not None and now < at, name
    assert (scheduled["purge"].hour, scheduled["purge"].minute) == (3, 30)  # type: ignore[union-attr]
    assert scheduled["recover_leases"].minute % 5 == 0  # type: ignore[union-attr]
    assert scheduled["recover_leases"] - now <= timedelta(minutes=5)  # type: ignore[operator]
    assert scheduled["hourly_statistics"].minute == 5  # type: ignore[union-attr]
    assert scheduled["email_deliveries"] - now <= timedelta(minutes=1)  # type: ignore[operator]
