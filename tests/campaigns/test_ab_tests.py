"""The issue's A/B test: 1,000 profiles, A 10 % / B 10 %, opens favour B; at the end of the (shortened) test B
goes to the remaining 800 and the creator and the two editors, and only they, are told; in manual mode
nothing goes until a person picks; a template with notifications off tells nobody."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from envoi.campaigns.models import Delivery
from envoi.campaigns.rounds import run_round
from envoi.db.base import utcnow
from envoi.events.models import Event
from envoi.runtime import Runtime
from envoi.workflows import service as workflows
from envoi.workflows.models import Workflow
from tests.campaigns.conftest import (
    BROWSER,
    MAKERS,
    PEOPLE,
    People,
    ab_body,
    add_audience,
    add_profiles,
    pixel_path,
    template_id,
)
from tests.conftest import drain
from tests.smtp_sink import ReceivedEmail, SmtpSink
from tests.workflows.conftest import settle


def _is_b(received: ReceivedEmail) -> bool:
    return str(received.message["Subject"]).endswith(", 20 % off this week")


async def _made_by_three(api: httpx.AsyncClient, people: People, runtime: Runtime, **changes: object) -> int:
    """Cora creates the delivery from the factory A/B template, Ed and Eve each edit it."""
    body = ab_body(audience=await add_audience(runtime), **changes)
    body |= {"name": "november", "template": await template_id(api, "ab_test_email")}
    created = await api.post("/api/v1/deliveries", json=body, headers=people.headers("cora@example.com"))
    assert created.status_code == 201, created.text
    delivery_id = created.json()["id"]
    for login, change in (("ed@example.com", {"label": "November news!"}), ("eve@example.com", {"seed": 7})):
        edited = await api.patch(f"/api/v1/deliveries/{delivery_id}", json=change, headers=people.headers(login))
        assert edited.status_code == 200, edited.text
    return int(delivery_id)


async def _open(api: httpx.AsyncClient, emails: list[ReceivedEmail], count: int) -> None:
    for received in emails[:count]:
        response = await api.get(pixel_path(received), headers={"User-Agent": BROWSER})
        assert response.status_code == 200 and response.headers["content-type"] == "image/gif"


async def _send_test(
    api: httpx.AsyncClient, runtime: Runtime, sink: SmtpSink, people: People, delivery_id: int
) -> None:
    sent = await api.post(f"/api/v1/deliveries/{delivery_id}/send", json={}, headers=people.headers("cora@example.com"))
    assert sent.status_code == 200, sent.text
    assert sent.json() == {"state": "testing", "queued": 200}
    await drain(runtime)
    emails = await sink.wait_for(200)
    b = [e for e in emails if _is_b(e)]
    a = [e for e in emails if not _is_b(e)]
    assert len(a) == len(b) == 100
    await _open(api, a, 10)  # 10 % of A's recipients open it, 30 % of B's
    await _open(api, b, 30)


async def _told(api: httpx.AsyncClient, people: People) -> dict[str, list[dict[str, object]]]:
    told = {}
    for login in PEOPLE:
        page = await api.get("/api/v1/notifications", headers=people.headers(login))
        assert page.status_code == 200, page.text
        told[login] = [n for n in page.json()["items"] if n["objectType"] == "delivery"]
    return told


async def _queued(runtime: Runtime, delivery_id: int, variant: str) -> int:
    async with runtime.transaction() as session:
        count = await session.scalar(
            select(func.count()).select_from(Event).where(Event.delivery_id == delivery_id, Event.variant == variant)
        )
    return count or 0


async def test_b_wins_goes_to_the_other_800_and_its_makers_are_told(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, smtp_sink: SmtpSink, people: People
) -> None:
    await add_profiles(mk_runtime, 1000)
    await add_profiles(mk_runtime, 5, language="fr", start=5000)  # not in the audience
    delivery_id = await _made_by_three(mk_api, people, mk_runtime)
    await _send_test(mk_api, mk_runtime, smtp_sink, people, delivery_id)
    figures = (await mk_api.get(f"/api/v1/deliveries/{delivery_id}/figures")).json()
    by_variant = {f["variant"]: f for f in figures}
    assert (by_variant["A"]["opens"], by_variant["B"]["opens"]) == (10, 30)
    assert by_variant["B"]["openRate"] == 0.3 and by_variant[None]["recipients"] == 800

    # The technical workflow ends the test once its second is over.
    async with mk_runtime.transaction() as session:
        technical = await session.scalar(select(Workflow).where(Workflow.name == "email_deliveries"))
        assert technical is not None and technical.state == "started"
        await session.execute(
            Delivery.__table__.update().where(Delivery.id == delivery_id).values(test_ends_at=utcnow())
        )
        await workflows.run_now(session, technical)
    await settle(mk_runtime)

    delivery = (await mk_api.get(f"/api/v1/deliveries/{delivery_id}")).json()
    assert (delivery["state"], delivery["winner"], delivery["winnerChosenBy"]) == ("sent", "B", "automatic")
    assert await _queued(mk_runtime, delivery_id, "B") == 900
    await drain(mk_runtime)
    received = await smtp_sink.wait_for(1000 + 3)
    marketing = [e for e in received if e.message["List-Unsubscribe"]]
    assert len(marketing) == 1000 and len({e.rcpt_tos[0] for e in marketing}) == 1000
    assert sum(_is_b(e) for e in marketing) == 900
    french = {f"p{n}@example.com" for n in range(5000, 5005)}
    assert not french & {e.rcpt_tos[0] for e in marketing}

    told = await _told(mk_api, people)
    assert {login for login, items in told.items() if items} == MAKERS
    for login in MAKERS:
        [notice] = told[login]
        assert notice["title"] == "Variant B of 'November news!' was selected"
        assert notice["link"] == f"/console/deliveries/{delivery_id}"
        assert "800" in str(notice["body"]) and "open rate" in str(notice["body"])
    copies = [e for e in received if not e.message["List-Unsubscribe"]]
    assert sorted(e.rcpt_tos[0] for e in copies) == sorted(MAKERS)
    assert all(
        f"http://envoi.test/console/deliveries/{delivery_id}" in e.message.get_body(("plain",)).get_content()
        for e in copies
    )  # type: ignore[union-attr]


async def test_manual_mode_sends_nothing_until_a_person_picks(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, smtp_sink: SmtpSink, people: People
) -> None:
    await add_profiles(mk_runtime, 1000)
    delivery_id = await _made_by_three(mk_api, people, mk_runtime, winnerMode="manual")
    await _send_test(mk_api, mk_runtime, smtp_sink, people, delivery_id)
    async with mk_runtime.transaction() as session:
        done = await run_round(session, mk_runtime.settings, utcnow() + timedelta(seconds=5))
    assert (done.decided, done.waiting, done.queued) == (0, 1, 0)
    delivery = (await mk_api.get(f"/api/v1/deliveries/{delivery_id}")).json()
    assert delivery["state"] == "waiting_for_choice" and delivery["winner"] is None
    told = await _told(mk_api, people)
    assert {login for login, items in told.items() if items} == MAKERS
    assert told["ed@example.com"][0]["title"] == "A variant of 'November news!' must be selected"
    assert told["ed@example.com"][0]["category"] == "action_required"
    await drain(mk_runtime)
    assert await _queued(mk_runtime, delivery_id, "B") == 100  # the test's only

    picked = await mk_api.post(
        f"/api/v1/deliveries/{delivery_id}/winner", json={"variant": "A"}, headers=people.headers("dora@example.com")
    )
    assert picked.status_code == 200, picked.text
    assert picked.json() == {"state": "sent", "queued": 800}
    again = await mk_api.post(f"/api/v1/deliveries/{delivery_id}/winner", json={"variant": "B"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "state"
    assert await _queued(mk_runtime, delivery_id, "A") == 900
    delivery = (await mk_api.get(f"/api/v1/deliveries/{delivery_id}")).json()
    assert delivery["winnerChosenBy"].startswith("dora@example.com")
    assert delivery["decision"].startswith("chosen by dora@example.com") and "after the test:" in delivery["decision"]


async def test_a_tie_needs_a_person_even_in_automatic_mode(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, smtp_sink: SmtpSink, people: People
) -> None:
    await add_profiles(mk_runtime, 100)
    delivery_id = await _made_by_three(mk_api, people, mk_runtime, testSplit=[20, 20])
    sent = await mk_api.post(f"/api/v1/deliveries/{delivery_id}/send", json={})
    assert sent.json()["queued"] == 40
    await drain(mk_runtime)
    async with mk_runtime.transaction() as session:
        done = await run_round(session, mk_runtime.settings, utcnow() + timedelta(seconds=5))
    assert done.waiting == 1  # nobody opened anything: 0 % and 0 %
    delivery = (await mk_api.get(f"/api/v1/deliveries/{delivery_id}")).json()
    assert delivery["state"] == "waiting_for_choice"
    assert "A and B tie on open rate" in delivery["decision"]


async def test_a_template_with_notifications_off_tells_nobody(
    mk_runtime: Runtime, mk_api: httpx.AsyncClient, smtp_sink: SmtpSink, people: People
) -> None:
    await add_profiles(mk_runtime, 1000)
    quiet = await mk_api.post(
        "/api/v1/delivery-templates",
        json={"name": "quiet_ab", "template": await template_id(mk_api, "ab_test_email"), "notifications": False},
    )
    assert quiet.status_code == 201 and quiet.json()["notifications"] is False
    body = ab_body(audience=await add_audience(mk_runtime)) | {"name": "quiet", "template": quiet.json()["id"]}
    created = await mk_api.post("/api/v1/deliveries", json=body, headers=people.headers("cora@example.com"))
    assert created.status_code == 201 and created.json()["notifications"] is False
    delivery_id = created.json()["id"]
    await _send_test(mk_api, mk_runtime, smtp_sink, people, delivery_id)
    async with mk_runtime.transaction() as session:
        done = await run_round(session, mk_runtime.settings, utcnow() + timedelta(seconds=5))
    assert (done.decided, done.queued) == (1, 800)  # B still wins and goes out: only the telling is off
    assert await _told(mk_api, people) == {login: [] for login in PEOPLE}
