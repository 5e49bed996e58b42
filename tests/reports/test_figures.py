"""Per template version figures: each version counts the messages rendered from it, and only those, also after a
rollback made an earlier version live again."""

from __future__ import annotations

import httpx
from sqlalchemy import select, update

from envoi.delivery.models import Message, MessageStatus
from envoi.runtime import Runtime
from tests.conftest import drain
from tests.helpers import published_template, push

SECOND = {"from": "Shop <shop@example.com>", "subject": "Your order {{ ctx.orderId }}", "text": "Hello"}


async def _send(runtime: Runtime, api: httpx.AsyncClient, count: int) -> None:
    for i in range(count):
        await push(api, email=f"u{i}@example.com")
    await drain(runtime)


async def test_each_version_counts_its_own_messages_after_a_rollback(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient
) -> None:
    template = await published_template(smtp_api)
    tid = template["id"]
    await _send(smtp_runtime, smtp_api, 2)  # version 1
    body = {"name": "order_confirmation email", "eventType": "order_confirmation", "email": SECOND}
    assert (await smtp_api.put(f"/api/v1/templates/{tid}", json=body)).status_code == 200
    assert (await smtp_api.post(f"/api/v1/templates/{tid}/publish")).json() == {"version": 2}
    await _send(smtp_runtime, smtp_api, 3)  # version 2
    assert (await smtp_api.post(f"/api/v1/templates/{tid}/versions/1/republish")).status_code == 200
    await _send(smtp_runtime, smtp_api, 1)  # version 1 again

    async with smtp_runtime.transaction() as session:
        by_subject = {
            subject: ids
            for subject in ("Order A-1 confirmed", "Your order A-1")
            if (ids := list(await session.scalars(select(Message.id).where(Message.subject == subject))))
        }
        first, second = by_subject["Order A-1 confirmed"], by_subject["Your order A-1"]
        assert (len(first), len(second)) == (3, 3)
        # What receipts, bounce reports and tracking would have recorded:
        changes = [
            (first[:1], {"opened_at": Message.sent_at}),
            (second[:2], {"opened_at": Message.sent_at}),
            (second[:1], {"clicked_at": Message.sent_at}),
            (second[2:], {"status": MessageStatus.BOUNCED}),
            (first[1:2], {"status": MessageStatus.DELIVERED}),
            (first[2:], {"status": MessageStatus.FAILED, "sent_at": None}),
        ]
        for ids, values in changes:
            await session.execute(update(Message).where(Message.id.in_(ids)).values(values))

    answer = await smtp_api.get(f"/api/v1/templates/{tid}/figures")
    assert answer.status_code == 200, answer.text
    figures = answer.json()
    assert [{k: v for k, v in f.items() if k != "publishedAt"} for f in figures] == [
        {"version": 1, "live": True, "sent": 2, "delivered": 1, "bounced": 0, "opened": 1, "clicked": 0},
        {"version": 2, "live": False, "sent": 3, "delivered": 0, "bounced": 1, "opened": 2, "clicked": 1},
    ]
    assert all(f["publishedAt"] for f in figures)
    assert (await smtp_api.get("/api/v1/templates/999999/figures")).status_code == 404


async def test_a_version_that_sent_nothing_has_zeros(api: httpx.AsyncClient) -> None:
    template = await published_template(api)
    figures = (await api.get(f"/api/v1/templates/{template['id']}/figures")).json()
    assert [(f["version"], f["sent"], f["opened"]) for f in figures] == [(1, 0, 0)]
