"""Error management: an activity that fails suspends its workflow (or is ignored until a threshold), and the
members of its supervisors group, and only they, are told in the console and by email."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from envoi.notifications.models import Notification
from envoi.runtime import Runtime
from tests.conftest import drain
from tests.smtp_sink import SmtpSink
from tests.workflows.conftest import SUPERVISORS, HttpPeer, Operators, calling, settle


async def _create(api: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/workflows", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _run(api: httpx.AsyncClient, runtime: Runtime, workflow_id: int) -> dict[str, Any]:
    started = await api.post(f"/api/v1/workflows/{workflow_id}/runs")
    assert started.status_code == 201, started.text
    await settle(runtime)
    run = await api.get(f"/api/v1/workflows/{workflow_id}/runs/{started.json()['id']}")
    return dict(run.json())


async def _notifications(runtime: Runtime) -> list[Notification]:
    async with runtime.transaction() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.id)))


async def test_a_500_suspends_the_workflow_and_tells_its_supervisors_only(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, people: Operators, http_peer: HttpPeer, smtp_sink: SmtpSink
) -> None:
    http_peer.answer(500)
    workflow = await _create(
        wf_api,
        "export",
        label="Nightly export",
        definition=calling(http_peer.url + "/export"),
        supervisors="workflow_supervisors",
    )
    run = await _run(wf_api, wf_runtime, workflow["id"])

    assert run["status"] == "suspended" and run["failedActivity"] == "call"
    assert "HTTP 500" in run["error"] and run["waiting"] == ["call"]
    call = next(step for step in run["steps"] if step["activity"] == "call")
    assert call["status"] == "failed" and "HTTP 500: answer 500" in call["logs"][0]
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()["state"] == "error"
    assert len(http_peer.calls) == 1

    notices = await _notifications(wf_runtime)
    by_operator = {people.ids[login]: login for login in people.ids}
    assert {by_operator[n.operator_id] for n in notices} == SUPERVISORS
    notice = notices[0]
    assert notice.category == "action_required"
    assert notice.title == "Workflow 'Nightly export' has an error"
    for words in ("Nightly export", f"id {workflow['id']}", "'call'", "suspended", "manual intervention"):
        assert words in notice.body
    assert notice.link == f"/console/workflows/{workflow['id']}"

    await drain(wf_runtime)
    mails = await smtp_sink.wait_for(2)
    assert {m.rcpt_tos[0] for m in mails} == SUPERVISORS
    for mail in mails:
        assert mail.message["Subject"] == "[Envoi] Workflow 'Nightly export' has an error"
        body = mail.message.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert f"{wf_runtime.settings.public_url}/console/workflows/{workflow['id']}" in text
        assert "manual intervention" in text


async def test_the_same_workflow_from_the_factory_template_tells_nobody(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, people: Operators, http_peer: HttpPeer, smtp_sink: SmtpSink
) -> None:
    http_peer.answer(500)
    workflow = await _create(wf_api, "export", definition=calling(http_peer.url))
    assert workflow["supervisors"] is None and workflow["template"] is not None
    run = await _run(wf_api, wf_runtime, workflow["id"])
    assert run["status"] == "suspended"
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()["state"] == "error"
    assert await _notifications(wf_runtime) == []
    await drain(wf_runtime)
    assert smtp_sink.messages == []


async def test_ignore_mode_suspends_at_the_third_error_in_a_row_only(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, people: Operators, http_peer: HttpPeer
) -> None:
    http_peer.answer(503)
    workflow = await _create(
        wf_api,
        "ping",
        definition=calling(http_peer.url),
        supervisors="workflow_supervisors",
        onError="ignore",
        errorThreshold=3,
    )
    for attempt in (1, 2):
        run = await _run(wf_api, wf_runtime, workflow["id"])
        assert run["status"] == "failed", attempt  # ended, its error ignored: the failed branch was skipped
        state = (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()
        assert (state["state"], state["consecutiveErrors"]) == ("stopped", attempt)
        assert await _notifications(wf_runtime) == []
    run = await _run(wf_api, wf_runtime, workflow["id"])
    assert run["status"] == "suspended"
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()["state"] == "error"
    assert len(await _notifications(wf_runtime)) == len(SUPERVISORS)
    assert len(http_peer.calls) == 3


async def test_a_success_resets_the_count_of_errors_in_a_row(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, people: Operators, http_peer: HttpPeer
) -> None:
    workflow = await _create(wf_api, "ping", definition=calling(http_peer.url), onError="ignore", errorThreshold=2)
    http_peer.answer(500)
    assert (await _run(wf_api, wf_runtime, workflow["id"]))["status"] == "failed"
    http_peer.answer(200)
    assert (await _run(wf_api, wf_runtime, workflow["id"]))["status"] == "succeeded"
    http_peer.answer(500)
    assert (await _run(wf_api, wf_runtime, workflow["id"]))["status"] == "failed"  # 1 in a row again, not 2
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()["consecutiveErrors"] == 1


async def test_resuming_retries_the_failed_activity_and_restarting_begins_again(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, people: Operators, http_peer: HttpPeer
) -> None:
    http_peer.answer(500)
    workflow = await _create(wf_api, "export", definition=calling(http_peer.url), supervisors="workflow_supervisors")
    suspended = await _run(wf_api, wf_runtime, workflow["id"])
    assert suspended["status"] == "suspended"
    assert (await wf_api.post(f"/api/v1/workflows/{workflow['id']}/runs")).status_code == 409  # in error

    http_peer.answer(200)
    resumed = await wf_api.post(f"/api/v1/workflows/{workflow['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "started"
    assert resumed.json()["nextRunAt"] is not None  # back on its schedule
    await settle(wf_runtime)
    run = (await wf_api.get(f"/api/v1/workflows/{workflow['id']}/runs/{suspended['id']}")).json()
    assert run["status"] == "succeeded" and run["waiting"] == []  # the same run went on, its error dealt with
    assert [step["status"] for step in run["steps"] if step["activity"] == "call"] == ["failed", "done"]

    http_peer.answer(500)
    await wf_api.post(f"/api/v1/workflows/{workflow['id']}/stop")
    failed_again = await _run(wf_api, wf_runtime, workflow["id"])
    assert failed_again["status"] == "suspended"
    http_peer.answer(200)
    restarted = await wf_api.post(f"/api/v1/workflows/{workflow['id']}/runs", params={"restart": "true"})
    assert restarted.status_code == 201 and restarted.json()["trigger"] == "restart"
    await settle(wf_runtime)
    runs = (await wf_api.get(f"/api/v1/workflows/{workflow['id']}/runs")).json()
    assert [r["status"] for r in runs[:2]] == ["succeeded", "cancelled"]
