"""What goes wrong around a delivery and must not: a variant that sent nothing judged the best, a profile
deleted after the launch still emailed, a scheduled delivery broken after it was scheduled going nowhere
silently, bad input answered with a 500."""

from __future__ import annotations

import httpx
from sqlalchemy import select, update

from envoi.campaigns.ab_tests import VariantFigures, judge
from envoi.campaigns.models import Delivery, Profile
from envoi.campaigns.rounds import run_round
from envoi.db.base import utcnow
from envoi.events.models import Event, EventStatus
from envoi.runtime import Runtime
from tests.campaigns.conftest import People, ab_body, add_audience, add_profiles, template_id
from tests.conftest import drain
from tests.smtp_sink import SmtpSink


def test_a_variant_that_sent_nothing_is_not_the_best() -> None:
    figures = [
        VariantFigures("A", 100, 100, 30, 5, 1),
        VariantFigures("B", 100, 100, 20, 9, 2),
        VariantFigures("C", 100, 0, 0, 0, 0),
        VariantFigures(None, 700, 0, 0, 0, 0),
    ]
    assert judge(figures, "fewest_unsubscriptions").winner == "A"
    assert judge(figures, "click_rate").winner == "B"
    assert judge(figures, "open_rate").winner == "A"
    tie = judge([VariantFigures("A", 10, 10, 1, 0, 0), VariantFigures("B", 10, 10, 1, 0, 0)], "open_rate")
    assert tie.winner is None and "A and B tie on open rate" in tie.reason


async def _delivery(api: httpx.AsyncClient, runtime: Runtime, **changes: object) -> int:
    body = ab_body(audience=await add_audience(runtime)) | {"name": "edge", "template": await template_id(api, "email")}
    body["variants"] = body["variants"][:1]
    created = await api.post("/api/v1/deliveries", json=body | changes)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def test_a_profile_deleted_after_the_launch_is_not_emailed(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    await add_profiles(mk_runtime, 3)
    delivery_id = await _delivery(mk_api, mk_runtime)
    assert (await mk_api.post(f"/api/v1/deliveries/{delivery_id}/send", json={})).json()["queued"] == 3
    async with mk_runtime.transaction() as session:
        gone = await session.scalar(select(Profile.id).where(Profile.email == "p1@example.com"))
    assert (await mk_api.delete(f"/api/v1/profiles/{gone}")).status_code == 204  # an erasure request
    await drain(mk_runtime)
    received = await smtp_sink.wait_for(2)
    assert sorted(e.rcpt_tos[0] for e in received) == ["p0@example.com", "p2@example.com"]
    async with mk_runtime.transaction() as session:
        ignored = await session.scalar(select(Event.last_error).where(Event.status == EventStatus.IGNORED))
    assert ignored == "the profile was deleted"


async def test_bad_input_is_a_422_naming_the_field(mk_runtime: Runtime, mk_api: httpx.AsyncClient) -> None:
    await add_profiles(mk_runtime, 3)
    delivery_id = await _delivery(mk_api, mk_runtime, seed=0)
    assert (await mk_api.get(f"/api/v1/deliveries/{delivery_id}")).json()["seed"] == 0  # kept, not made random
    naive = await mk_api.post(f"/api/v1/deliveries/{delivery_id}/send", json={"at": "2099-01-01T10:00:00"})
    assert naive.status_code == 422 and naive.json()["error"]["field"] == "at"
    for field in ("winnerMode", "seed", "label"):
        nulled = await mk_api.patch(f"/api/v1/deliveries/{delivery_id}", json={field: None})
        assert nulled.status_code == 422 and nulled.json()["error"]["field"] == field, nulled.text
    assert (await mk_api.get(f"/api/v1/deliveries/{delivery_id}")).json()["state"] == "draft"


async def test_a_scheduled_delivery_that_cannot_go_is_refused_then_its_makers_are_told(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, people: People
) -> None:
    await add_profiles(mk_runtime, 3)
    body = ab_body(audience=await add_audience(mk_runtime)) | {"name": "later", "notifications": False}
    body["variants"] = body["variants"][:1]
    cora = people.headers("cora@example.com")
    delivery_id = (await mk_api.post("/api/v1/deliveries", json=body, headers=cora)).json()["id"]
    scheduled = await mk_api.post(
        f"/api/v1/deliveries/{delivery_id}/send", json={"at": "2099-01-01T10:00:00Z"}, headers=cora
    )
    assert scheduled.json()["state"] == "scheduled"
    refused = await mk_api.patch(f"/api/v1/deliveries/{delivery_id}", json={"audience": None}, headers=cora)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "audience"

    async with mk_runtime.transaction() as session:  # its audience now reaches nobody, and its time comes
        await session.execute(update(Profile).values(subscribed=False))
        await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(scheduled_at=utcnow()))
    async with mk_runtime.transaction() as session:
        done = await run_round(session, mk_runtime.settings, utcnow())
    assert (done.launched, len(done.problems)) == (0, 1)
    delivery = (await mk_api.get(f"/api/v1/deliveries/{delivery_id}")).json()
    assert delivery["state"] == "draft" and delivery["decision"].startswith("could not be sent at its time")
    told = (await mk_api.get("/api/v1/notifications", headers=cora)).json()["items"]
    assert [n["title"] for n in told] == ["'November news' was not sent"]  # told, though notifications are off
    assert (await mk_api.get("/api/v1/notifications", headers=people.headers("ed@example.com"))).json()["items"] == []
