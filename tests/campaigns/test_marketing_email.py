"""A marketing email as its recipient and as the queue see it: personalised from the profile, a one-click
unsubscribe that keeps the profile out of the next delivery, transactional emails first and without any of it;
transactional events reconciled with profiles; deliveries refused with every problem named."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from envoi.campaigns.models import Delivery, Profile
from envoi.campaigns.rounds import run_round
from envoi.db.base import utcnow
from envoi.delivery.claim import claim_batch
from envoi.runtime import Runtime
from tests.campaigns.conftest import add_audience, add_profiles
from tests.conftest import drain
from tests.helpers import create_type, event, published_template, push
from tests.smtp_sink import SmtpSink

_ONE = {
    "label": "Welcome",
    "variants": [
        {
            "name": "A",
            "from": "News <news@example.com>",
            "subject": "Welcome {{ profile.firstName }}",
            "html": "<html><body><p>Hi {{ profile.firstName }} {{ profile.attributes.n }}</p>"
            '<a href="https://example.com/a">a</a></body></html>',
        }
    ],
}


async def _delivery(api: httpx.AsyncClient, runtime: Runtime, name: str, **changes: object) -> int:
    body = _ONE | {"name": name, "audience": await add_audience(runtime, name=f"aud_{name}")} | changes
    created = await api.post("/api/v1/deliveries", json=body)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def test_one_click_unsubscribe_keeps_the_profile_out_of_the_next_delivery(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    await add_profiles(mk_runtime, 3)
    first = await _delivery(mk_api, mk_runtime, "first")
    assert (await mk_api.post(f"/api/v1/deliveries/{first}/send", json={})).json() == {"state": "sent", "queued": 3}
    await drain(mk_runtime)
    received = {e.rcpt_tos[0]: e for e in await smtp_sink.wait_for(3)}
    email = received["p1@example.com"].message
    assert email["Subject"] == "Welcome First1"
    assert "Hi First1 1" in email.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(email["List-Unsubscribe"]).strip("<>")
    assert url.startswith("http://envoi.test/u/")
    assert "Unsubscribe" in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # What Gmail does when its user clicks "Unsubscribe": a POST, no cookie, no session.
    async with httpx.AsyncClient(transport=mk_api._transport, base_url="http://envoi.test") as mailbox:
        answer = await mailbox.post(
            url, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert answer.status_code == 200
    async with mk_runtime.transaction() as session:
        profile = await session.scalar(select(Profile).where(Profile.email == "p1@example.com"))
        assert profile is not None and profile.subscribed is False

    second = await _delivery(mk_api, mk_runtime, "second")
    assert (await mk_api.post(f"/api/v1/deliveries/{second}/send", json={})).json()["queued"] == 2
    await drain(mk_runtime)
    later = (await smtp_sink.wait_for(5))[3:]
    assert sorted(e.rcpt_tos[0] for e in later) == ["p0@example.com", "p2@example.com"]


async def test_transactional_events_get_their_profile_go_first_and_carry_no_unsubscribe(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    await add_profiles(mk_runtime, 2)
    await published_template(mk_api, subject="Order {{ ctx.orderId }} for {{ profile.firstName }}")
    marketing = await _delivery(mk_api, mk_runtime, "later")
    await mk_api.post(f"/api/v1/deliveries/{marketing}/send", json={})
    order = await push(mk_api, externalId="ext-1", email="someone@example.com")
    async with mk_runtime.transaction() as session:
        [claimed] = await claim_batch(session, owner="t", size=1, lease_seconds=1, now=utcnow())
    assert claimed.id == order and claimed.profile_id is not None  # claimed before the older marketing emails
    async with mk_runtime.transaction() as session:
        rest = await claim_batch(session, owner="t", size=10, lease_seconds=0.001, now=utcnow())
    assert {e.delivery_id for e in rest} == {marketing}
    await drain(mk_runtime, timeout=30)
    received = {e.rcpt_tos[0]: e.message for e in await smtp_sink.wait_for(3)}
    transactional = received["someone@example.com"]
    assert transactional["Subject"] == "Order A-1 for First1"
    assert transactional["List-Unsubscribe"] is None
    assert "/t/o/" not in transactional.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert (await event(mk_api, order))["status"] == "processed"


async def test_a_profile_based_event_type_refuses_events_without_a_known_profile(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient
) -> None:
    await add_profiles(mk_runtime, 1)
    await create_type(mk_api, "loyalty", profileBased=True)
    await published_template(mk_api, "loyalty", subject="{{ profile.firstName }}, your points")
    unknown = await mk_api.post(
        "/api/v1/events", json={"type": "loyalty", "email": "a@example.com", "externalId": "nope"}
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "externalId" and "'nope'" in unknown.json()["error"]["message"]
    missing = await mk_api.post("/api/v1/events", json={"type": "loyalty", "email": "a@example.com"})
    assert missing.status_code == 422 and "profile-based" in missing.json()["error"]["message"]
    batch = await mk_api.post(
        "/api/v1/events/batch",
        json={
            "events": [
                {"type": "loyalty", "email": "a@example.com", "externalId": "ext-0"},
                {"type": "loyalty", "email": "b@example.com", "externalId": "x"},
            ]
        },
    )
    assert batch.status_code == 422  # all or nothing: the batch names item 1 and stores nothing
    assert [item["index"] for item in batch.json()["error"]["items"]] == [1]
    known = await mk_api.post(
        "/api/v1/events", json={"type": "loyalty", "email": "a@example.com", "externalId": "ext-0"}
    )
    assert known.status_code == 202, known.text
    assert (await mk_api.get("/api/v1/event-types/loyalty")).json()["profileBased"] is True


async def test_a_delivery_is_refused_with_every_problem_named(mk_runtime: Runtime, mk_api: httpx.AsyncClient) -> None:
    await add_profiles(mk_runtime, 100)
    bad = _ONE["variants"][0] | {"from": "not an address", "html": "{% if %}"}  # type: ignore[operator]
    created = await mk_api.post(
        "/api/v1/deliveries",
        json={
            "name": "broken",
            "variants": [bad, bad | {"name": "B"}],
            "testSplit": [60, 50],
            "testDurationSeconds": 1,
        },
    )
    assert created.status_code == 201
    fields = {p["field"] for p in created.json()["problems"]}
    assert {"variants[0].from", "variants[0].html", "variants[1].from", "testSplit", "audience"} <= fields
    refused = await mk_api.post(f"/api/v1/deliveries/{created.json()['id']}/send", json={})
    assert refused.status_code == 422
    small = await _delivery(
        mk_api,
        mk_runtime,
        "small",
        variants=[_ONE["variants"][0], _ONE["variants"][0] | {"name": "B"}],
        testSplit=[5, 5],
        testDurationSeconds=1,  # type: ignore[operator]
    )
    split = await mk_api.post(f"/api/v1/deliveries/{small}/send", json={})
    assert split.status_code == 422 and split.json()["error"]["field"] == "testSplit"
    assert "100 recipients" in split.json()["error"]["message"]
    assert (await mk_api.get(f"/api/v1/deliveries/{small}")).json()["state"] == "draft"  # nothing stored


async def test_a_scheduled_delivery_goes_at_its_time_and_a_cancelled_one_stops(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    await add_profiles(mk_runtime, 4)
    later = await _delivery(mk_api, mk_runtime, "later")
    at = utcnow() + timedelta(hours=1)
    scheduled = await mk_api.post(f"/api/v1/deliveries/{later}/send", json={"at": at.isoformat()})
    assert scheduled.json() == {"state": "scheduled", "queued": 0}
    async with mk_runtime.transaction() as session:
        assert (await run_round(session, mk_runtime.settings, utcnow())).launched == 0
    async with mk_runtime.transaction() as session:  # its hour has come
        await session.execute(update(Delivery).where(Delivery.id == later).values(scheduled_at=utcnow()))
    async with mk_runtime.transaction() as session:
        assert (await run_round(session, mk_runtime.settings, utcnow())).queued == 4
    assert (await mk_api.get(f"/api/v1/deliveries/{later}")).json()["state"] == "sent"
    cancelled = await _delivery(mk_api, mk_runtime, "cancelled")
    await mk_api.post(f"/api/v1/deliveries/{cancelled}/send", json={})
    assert (await mk_api.post(f"/api/v1/deliveries/{cancelled}/cancel")).status_code == 200
    await drain(mk_runtime)
    received = await smtp_sink.wait_for(4)
    assert len(received) == 4  # the scheduled one's; the cancelled one's queued emails were dropped
    async with mk_runtime.transaction() as session:
        marketing = await claim_batch(session, owner="t", size=10, lease_seconds=1, now=utcnow())
    assert marketing == []
