"""The delivery, profile and audience pages, in the test's process: an A/B delivery made, edited and sent with
the forms (each refusal shown next to its field, nothing saved), its figures per variant once opens are
recorded, the winner sent with a button, the audit entries the notifications rely on; a delivery template's
Notifications checkbox; a viewer who may look but not change; the CSV upload and the audience's live count."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update

from envoi.access.models import AuditEntry
from envoi.campaigns.models import Delivery, DeliveryRecipient
from envoi.db.base import utcnow
from envoi.delivery.models import Message
from envoi.events.models import Event
from tests.campaigns.conftest import add_audience, add_profiles
from tests.conftest import drain
from tests.console.conftest import InProcess, form_token
from tests.console.test_pages import post_unoffered, submit

MANAGER = "deliveries@example.com"  # delivery_supervisors
NEW = "/console/deliveries/new"


def _actions(html: str) -> set[str]:
    """The last part of every form's address on the page (logout aside)."""
    return {a.rsplit("/", 1)[1] for a in re.findall(r'<form method="post" action="([^"]+)"', html)} - {"logout"}


def _error(html: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="{re.escape(field)}-error">([^<]*)</p>', html)
    assert found, f"no error next to {field}"
    return found[1]


async def _template_id(client: httpx.AsyncClient, name: str) -> str:
    found = re.search(rf'<option value="(\d+)"[^>]*>[^<]*\({name}[,)]', (await client.get(NEW)).text)
    assert found, f"no template {name} offered"
    return found[1]


async def _create(client: httpx.AsyncClient, **fields: str) -> str:
    made = await submit(client, NEW, NEW, fields)
    assert made.status_code == 303, made.text
    assert re.fullmatch(r"/console/deliver(ies|y-templates)/\d+\?done=created(_template)?", made.headers["location"])
    return str(made.headers["location"].split("?")[0])


async def _audited(in_process: InProcess, delivery_id: int) -> list[tuple[str, int | None]]:
    async with in_process.runtime.transaction() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.operator_id)
            .where(AuditEntry.object_type == "delivery", AuditEntry.object_id == str(delivery_id))
            .order_by(AuditEntry.id)
        )
        return [(action, operator) for action, operator in rows]


async def test_an_ab_delivery_is_made_edited_sent_measured_and_its_winner_picked(in_process: InProcess) -> None:
    runtime = in_process.runtime
    await add_profiles(runtime, 100)
    audience = await add_audience(runtime)
    client = await in_process.log_in(MANAGER)
    page = await _create(client, name="november", label="November news", audience=str(audience),
                         template=await _template_id(client, "ab_test_email"))  # fmt: skip
    delivery_id = int(page.rsplit("/", 1)[1])
    shown = (await client.get(page)).text
    assert 'data-state="draft"' in shown and "Nothing stops it: it can be sent to the 100 people" in shown
    assert _actions(shown) == {"send", "delete", "schedule", "properties", "variants"}
    assert 'name="notifications" value="yes" checked' in shown  # inherited from the factory A/B template

    refused = await submit(client, page, f"{page}/properties", {"label": "November news", "audience": str(audience),
                           "split_A": "abc", "split_B": "10", "criterion": "open_rate", "duration": "soon",
                           "winner_mode": "manual", "notifications": "yes"})  # fmt: skip
    assert refused.status_code == 422
    assert _error(refused.text, "split").startswith("Give each variant a whole percentage")
    assert _error(refused.text, "duration").startswith("Write a duration such as 4h")
    assert 'value="soon"' in refused.text  # kept as typed
    saved = await submit(client, page, f"{page}/properties", {"label": "November news", "audience": str(audience),
                         "split_A": "10", "split_B": "10", "criterion": "open_rate", "duration": "1h 30m",
                         "winner_mode": "manual", "notifications": "yes"})  # fmt: skip
    assert saved.status_code == 303 and saved.headers["location"] == f"{page}?done=saved"

    variants = {"count": "2", "v0_from": "News <news@example.com>", "v0_subject": "Our news", "v0_html": "<p>A</p>",
                "v1_from": "News <news@example.com>", "v1_subject": "", "v1_html": "<p>B</p>"}  # fmt: skip
    empty = await submit(client, page, f"{page}/variants", variants)
    assert empty.status_code == 422 and _error(empty.text, "v1_subject") == "Required."
    variants["v1_subject"] = "{{ profile.firstName }}, 20 % off"
    added = await submit(client, page, f"{page}/variants", variants | {"change": "add"})
    assert added.status_code == 303
    shown = (await client.get(page)).text
    assert 'data-variant="C"' in shown and 'name="split_C" value="10"' in shown
    removed = await submit(client, page, f"{page}/variants", variants | {"count": "3", "change": "remove:2"})
    assert removed.status_code == 303
    async with runtime.transaction() as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        assert [v["subject"] for v in delivery.variants] == ["Our news", "{{ profile.firstName }}, 20 % off"]
        assert (delivery.test_split, delivery.test_duration_seconds, delivery.winner_mode) == ([10, 10], 5400, "manual")
    manager_id = in_process.operator_ids[MANAGER]
    assert await _audited(in_process, delivery_id) == [("created", manager_id)] + [("updated", manager_id)] * 3

    no_token = await client.post(f"{page}/send", data={})
    assert no_token.status_code == 403 and "security token" in no_token.text
    sent = await submit(client, page, f"{page}/send", {})
    assert sent.status_code == 303 and sent.headers["location"] == f"{page}?done=testing&queued=20"
    await drain(runtime)
    async with runtime.transaction() as session:  # people open 1 email of A and 3 of B; one of B clicks
        for variant, opened, clicked in (("A", 1, 0), ("B", 3, 1)):
            query = select(Message.id).join(Event, Event.id == Message.event_id).order_by(Message.id)
            ids = (await session.scalars(query.where(Event.delivery_id == delivery_id, Event.variant == variant))).all()
            await session.execute(update(Message).where(Message.id.in_(ids[:opened])).values(opened_at=utcnow()))
            await session.execute(update(Message).where(Message.id.in_(ids[:clicked])).values(clicked_at=utcnow()))

    shown = (await client.get(page)).text
    rows = dict(re.findall(r'<tr data-variant="([^"]+)"[^>]*>(.*?)</tr>', shown, re.S))
    cells = {name: re.findall(r'<td class="num">([^<]*)</td>', row) for name, row in rows.items()}
    assert cells == {
        "A": ["10", "10", "1", "0", "0", "10.0 %", "0.0 %", "0.0 %"],
        "B": ["10", "10", "3", "1", "0", "30.0 %", "10.0 %", "0.0 %"],
        "rest": ["80", "0", "0", "0", "0", "0.0 %", "0.0 %", "0.0 %"],
    }
    assert "Send variant B to the remaining 80 recipients" in shown and _actions(shown) >= {"winner", "cancel"}
    picked = await submit(client, page, f"{page}/winner", {"variant": "B"})
    assert picked.status_code == 303 and picked.headers["location"] == f"{page}?done=winner&queued=80"
    async with runtime.transaction() as session:
        rest = await session.scalar(
            select(func.count()).select_from(Event)
            .join(DeliveryRecipient, (DeliveryRecipient.profile_id == Event.profile_id)
                  & (DeliveryRecipient.delivery_id == Event.delivery_id))
            .where(Event.delivery_id == delivery_id, DeliveryRecipient.variant.is_(None), Event.variant == "B")
        )  # fmt: skip
    assert rest == 80
    shown = (await client.get(f"{page}?done=winner&queued=80")).text
    assert "(80 emails queued now.)" in shown and 'data-state="sent"' in shown
    assert re.search(r"data-winner>variant B, chosen by deliveries@example.com", shown)
    assert "winner" not in _actions(shown)
    assert (await _audited(in_process, delivery_id))[-2:] == [("sent", manager_id), ("winner_chosen", manager_id)]


async def test_refusals_to_send_schedule_and_cancel_are_shown_and_change_nothing(in_process: InProcess) -> None:
    client = await in_process.log_in("admin@example.com")
    page = await _create(client, name="lonely", template=await _template_id(client, "email"))
    shown = (await client.get(page)).text
    assert '<li data-field="audience"><code>audience</code>: choose the audience it goes to</li>' in shown
    assert 'data-problem-for="audience">choose the audience it goes to' in shown  # beside its field too
    refused = await submit(client, page, f"{page}/send", {})
    assert refused.status_code == 422 and "Nothing was done: choose the audience it goes to." in refused.text
    past = await submit(client, page, f"{page}/schedule", {"at": "2020-01-01T09:00"})
    assert past.status_code == 422 and _error(past.text, "at") == "choose a time in the future (UTC)"

    await add_profiles(in_process.runtime, 3)
    audience = await add_audience(in_process.runtime)
    await submit(client, page, f"{page}/properties", {"label": "Lonely", "audience": str(audience)})
    at = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    planned = await submit(client, page, f"{page}/schedule", {"at": at})
    assert planned.status_code == 303 and planned.headers["location"].endswith("?done=scheduled")
    shown = (await client.get(page)).text
    assert 'data-state="scheduled"' in shown and f'<time datetime="{at}:00+00:00"' in shown
    cancelled = await submit(client, page, f"{page}/cancel", {})
    assert cancelled.status_code == 303
    again = await post_unoffered(client, page, f"{page}/cancel")
    assert again.status_code == 409 and "it is cancelled already" in again.text
    deleted = await submit(client, page, f"{page}/delete", {})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/console/deliveries?done=deleted"


async def test_unticking_a_templates_notifications_makes_its_new_deliveries_tell_nobody(in_process: InProcess) -> None:
    client = await in_process.log_in(MANAGER)
    ab = await _template_id(client, "ab_test_email")
    template = f"/console/delivery-templates/{ab}"
    shown = (await client.get(template)).text
    assert "Tell its creator and editors when the A/B test ends" in shown
    assert 'name="notifications" value="yes" checked' in shown and _actions(shown) == {"properties", "variants"}
    values = {"label": "A/B test email", "split_A": "10", "split_B": "10", "criterion": "open_rate",
              "duration": "4h", "winner_mode": "automatic"}  # fmt: skip
    saved = await submit(client, template, f"{template}/properties", values)  # the box unticked: not sent
    assert saved.status_code == 303
    assert "data-notifications>off: nobody is told" in (await client.get(template)).text
    made = await _create(client, name="quiet", template=ab)
    assert 'name="notifications" value="yes" checked' not in (await client.get(made)).text
    listed = (await client.get("/console/deliveries")).text
    templates = dict(re.findall(r'<tr data-template="([^"]+)">(.*?)</tr>', listed, re.S))
    assert "factory" in templates["ab_test_email"] and "off" in templates["ab_test_email"]
    assert 'data-delivery="quiet"' in listed


async def test_a_viewer_sees_the_pages_without_a_single_change_offered(in_process: InProcess) -> None:
    manager = await in_process.log_in(MANAGER)
    page = await _create(manager, name="draft-one")
    viewer = await in_process.log_in("viewer@example.com")
    listed = (await viewer.get("/console/deliveries")).text
    assert '<a href="/console/deliveries" aria-current="page">Deliveries</a>' in listed
    assert NEW not in listed and 'data-delivery="draft-one"' in listed
    shown = (await viewer.get(page)).text
    assert _actions(shown) == {"properties", "variants"} and "Save properties" not in shown
    assert "Read only: changing deliveries needs the manage deliveries permission." in shown
    assert (await viewer.get(NEW)).status_code == 403
    for action in ("send", "properties", "variants", "winner", "delete"):
        refused = await viewer.post(f"{page}/{action}", data={"csrf_token": form_token(shown, "/console/logout")})
        assert refused.status_code == 403, action
    nobody = await in_process.log_in("nobody@example.com")
    assert (await nobody.get(page)).status_code == 403


CSV = (
    "email,first_name,external_id,subscribed,vip\n"
    "ann@example.com,Ann,x-1,yes,gold\n"
    "bob@example.com,Bob,x-2,no,\n"
    "not an address,Cy,x-3,yes,\n"
    "ann@example.com,Annie,x-1,,silver\n"
)


async def _upload(client: httpx.AsyncClient, content: str) -> httpx.Response:
    token = form_token((await client.get("/console/profiles/import")).text, "/console/profiles/import")
    files = {"file": ("people.csv", content.encode(), "text/csv")}
    return await client.post("/console/profiles/import", data={"csrf_token": token, "delimiter": ","}, files=files)


async def test_a_csv_upload_says_what_it_did_line_by_line_and_the_profiles_are_found(in_process: InProcess) -> None:
    client = await in_process.log_in(MANAGER)
    done = await _upload(client, CSV)
    assert done.status_code == 200, done.text
    assert re.search(r"data-created>2</strong> created, <strong data-updated>1</strong> updated", done.text)
    assert "data-skipped>1</strong> skipped" in done.text
    skipped = re.findall(r'<td class="num">(\d+)</td><td><code>(\w+)</code></td>', done.text)
    assert skipped == [("4", "email")]  # line 4 of the file: its address is not one
    empty = await _upload(client, "")
    assert empty.status_code == 422 and "its first line must name the columns" in _error(empty.text, "header")

    viewer = await in_process.log_in("viewer@example.com")
    listed = (await viewer.get("/console/profiles")).text  # with the demo data's three
    assert '<a href="/console/profiles" aria-current="page">Profiles</a>' in listed
    assert len(re.findall(r"<tr data-profile=", listed)) == 2 + 3 and "/console/profiles/import" not in listed
    found = (await viewer.get("/console/profiles?email=ANN@example.com")).text
    [ann] = re.findall(r'<tr data-profile="(\d+)">', found)
    assert "Annie" in found
    unsubscribed = (await viewer.get("/console/profiles?subscribed=no")).text
    assert re.findall(r"<tr data-profile=", unsubscribed) == ["<tr data-profile="] and "bob@example.com" in unsubscribed
    assert "No profile matches." in (await viewer.get("/console/profiles?external_id=x-9")).text
    shown = (await viewer.get(f"/console/profiles/{ann}")).text
    assert "<code>vip</code></th><td>silver</td>" in shown and "data-subscribed>Subscribed" in shown
    bob = re.search(r'<tr data-profile="(\d+)">', unsubscribed)[1]  # type: ignore[index]
    assert re.search(r"data-subscribed>Unsubscribed <time[^>]*>[^<]*</time>, by import", (await viewer.get(
        f"/console/profiles/{bob}")).text)  # fmt: skip
    assert (await viewer.get("/console/profiles/import")).status_code == 403
    assert (await viewer.post("/console/profiles/import", data={"csrf_token": form_token(listed)})).status_code == 403


async def test_an_audience_counts_who_it_reaches_and_refuses_filters_naming_each_problem(
    in_process: InProcess,
) -> None:
    await add_profiles(in_process.runtime, 5)
    await add_profiles(in_process.runtime, 3, language="fr", start=100)
    client = await in_process.log_in(MANAGER)
    new = "/console/audiences/new"
    french = '[{"field": "language", "op": "eq", "value": "fr"}]'
    made = await submit(client, new, new, {"name": "french", "label": "French", "filters": french})
    assert made.status_code == 303 and made.headers["location"].endswith("?done=created")
    page = made.headers["location"].split("?")[0]
    assert (
        "Now: <strong>3</strong> profiles, 3 subscribed; a delivery would reach <strong>3</strong>"
        in (await client.get(page)).text
    )

    wrong = '[{"field": "colour", "op": "eq", "value": "x"}, {"field": "language", "op": "bigger"}]'
    refused = await submit(client, page, page, {"name": "french", "label": "French", "filters": wrong})
    assert refused.status_code == 422 and _error(refused.text, "filters") == "2 problems: see the list below."
    assert "<code>filters[0].field</code>: unknown field &#39;colour&#39;" in refused.text
    assert "<code>filters[1].op</code>: language takes one of eq, ne" in refused.text
    not_json = await submit(client, page, page, {"name": "french", "label": "French", "filters": "[{"})
    assert _error(not_json.text, "filters").startswith("Not valid JSON")

    viewer = await in_process.log_in("viewer@example.com")
    listed = (await viewer.get("/console/audiences")).text
    assert re.search(r'<tr data-audience="french">.*?<td class="num" data-reachable>3</td>', listed, re.S)
    shown = (await viewer.get(page)).text
    assert "/console/audiences/new" not in listed and _actions(shown) == {page.rsplit("/", 1)[1]}  # shown disabled
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', shown)[1]  # type: ignore[index]
    live = await viewer.post("/api/v1/audiences/preview", json={"filters": []}, headers={"X-CSRF-Token": token})
    assert live.status_code == 200 and live.json() == {"total": 8 + 3, "subscribed": 11, "reachable": 11}  # + demo


async def test_an_event_type_can_be_made_profile_based(in_process: InProcess) -> None:
    client = await in_process.log_in("editor@example.com")
    new = "/console/event-types/new"
    form = (await client.get(new)).text
    assert 'name="profileBased" value="yes"' in form and "must name a profile by <code>externalId</code>" in form
    made = await submit(client, new, new, {"name": "loyalty_points", "label": "Loyalty points", "profileBased": "yes"})
    assert made.status_code == 303, made.text
    async with in_process.api() as api:
        assert (await api.get("/api/v1/event-types/loyalty_points")).json()["profileBased"] is True
    edit = "/console/event-types/loyalty_points/edit"
    assert 'name="profileBased" value="yes" checked' in (await client.get(edit)).text
    unticked = await submit(client, edit, edit, {"name": "loyalty_points", "label": "Loyalty points"})
    assert unticked.status_code == 303
    async with in_process.api() as api:
        assert (await api.get("/api/v1/event-types/loyalty_points")).json()["profileBased"] is False
