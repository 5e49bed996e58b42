"""The webhooks pages: every subscription and its state, a subscription's last attempts as its receiver
answered them, and a disabled one enabled again by someone who may."""

from __future__ import annotations

from datetime import timedelta

from envoi.db.base import utcnow
from envoi.webhooks.models import CallStatus, WebhookAttempt, WebhookCall
from envoi.webhooks.service import find_webhook
from tests.console.conftest import InProcess
from tests.console.test_pages import post_unoffered, submit


async def test_a_webhooks_attempts_and_enabling_it_again(in_process: InProcess) -> None:
    async with in_process.api() as api:
        created = await api.post(
            "/api/v1/webhooks", json={"url": "https://crm.example.com/hook", "changes": ["event.processed"]}
        )
    hook_id = created.json()["id"]
    now = utcnow()
    async with in_process.runtime.transaction() as session:
        call = WebhookCall(webhook_id=hook_id, change="event.processed", body={}, status=CallStatus.FAILED,
                           attempts=3, next_attempt_at=now, created_at=now)  # fmt: skip
        session.add(call)
        await session.flush()
        for minutes, status, answer in ((9, None, "ConnectError: refused"), (5, 500, "boom"), (1, 200, "ok")):
            at = now - timedelta(minutes=minutes)
            session.add(WebhookAttempt(webhook_id=hook_id, call_id=call.id, at=at, status_code=status,
                                       latency_ms=12, response=answer))  # fmt: skip
        old = now - timedelta(days=8)  # older than the 7 days shown
        session.add(
            WebhookAttempt(webhook_id=hook_id, call_id=call.id, at=old, status_code=503, latency_ms=1, response="x")
        )
        hook = await find_webhook(session, hook_id)
        hook.active, hook.disabled_at, hook.disabled_reason = False, now, "a call failed for 24 hours"

    viewer = await in_process.log_in("viewer@example.com")
    listed = (await viewer.get("/console/webhooks")).text
    assert '<a href="/console/webhooks" aria-current="page">Webhooks</a>' in listed
    assert "https://crm.example.com/hook" in listed and "disabled" in listed
    page = (await viewer.get(f"/console/webhooks/{hook_id}")).text
    rows = page.split('<table class="attempts">')[1]
    assert rows.count("<tr>") == 1 + 3  # the header and the 7 days' attempts, not the older one
    assert "no answer" in rows and "ConnectError: refused" in rows and "500" in rows and "boom" in rows
    assert "a call failed for 24 hours" in page
    refused = await post_unoffered(viewer, f"/console/webhooks/{hook_id}", f"/console/webhooks/{hook_id}/enable")
    assert refused.status_code == 403

    supervisor = await in_process.log_in("deliveries@example.com")
    done = await submit(supervisor, f"/console/webhooks/{hook_id}", f"/console/webhooks/{hook_id}/enable", {})
    assert done.status_code == 303
    assert "active" in (await supervisor.get(done.headers["location"])).text
    async with in_process.runtime.transaction() as session:
        assert (await find_webhook(session, hook_id)).active is True
    assert (await viewer.get("/console/webhooks/999999")).status_code == 404
