"""Versions: diffs, rollback, deletion that keeps them for sent messages; the audit trail; seed addresses."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from envoi.access.models import ApiKey
from envoi.runtime import Runtime
from tests.conftest import drain
from tests.helpers import create_type, event, published_template, push

NEW_EMAIL = {
    "from": "Shop <shop@example.com>",
    "replyTo": "help@example.com",
    "subject": "Your order {{ ctx.orderId }}",
    "html": "<p>Hello {{ ctx.firstName }}</p>",
    "text": "Hello {{ ctx.firstName }}",
}
SEED_SCHEMA = {"type": "object", "properties": {"orderId": {"type": "string"}, "firstName": {"type": "string"}}}


async def publish_new_subject(api: httpx.AsyncClient, template_id: int) -> None:
    """Version 2: the subject changed, every other field as in version 1."""
    body = {"name": "order_confirmation email", "eventType": "order_confirmation", "email": NEW_EMAIL}
    assert (await api.put(f"/api/v1/templates/{template_id}", json=body)).status_code == 200
    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).json() == {"version": 2}


async def api_key_id(runtime: Runtime) -> int:
    async with runtime.transaction() as session:
        (key_id,) = (await session.scalars(select(ApiKey.id))).all()
    return int(key_id)


async def test_diff_shows_only_the_changed_field(api: httpx.AsyncClient) -> None:
    template = await published_template(api)
    await publish_new_subject(api, template["id"])

    response = await api.get(f"/api/v1/templates/{template['id']}/versions/1/diff/2")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert lines[:2] == ["--- version 1", "+++ version 2"]
    changed = [line for line in lines[2:] if line.startswith(("-", "+"))]
    assert changed == ["-Order {{ ctx.orderId }} confirmed", "+Your order {{ ctx.orderId }}"]
    assert " == email.subject ==" in lines

    backwards = (await api.get(f"/api/v1/templates/{template['id']}/versions/2/diff/1")).text
    assert "-Your order {{ ctx.orderId }}" in backwards and "+Order {{ ctx.orderId }} confirmed" in backwards
    same = await api.get(f"/api/v1/templates/{template['id']}/versions/2/diff/2")
    assert same.status_code == 200 and same.text == "\n"
    assert (await api.get(f"/api/v1/templates/{template['id']}/versions/1/diff/3")).status_code == 404


async def test_republish_makes_an_earlier_version_live_again(api: httpx.AsyncClient) -> None:
    template = await published_template(api)
    await publish_new_subject(api, template["id"])
    assert (await api.get(f"/api/v1/templates/{template['id']}")).json()["liveVersion"] == 2

    response = await api.post(f"/api/v1/templates/{template['id']}/versions/1/republish")
    assert response.status_code == 200 and response.json() == {"version": 1}
    read = (await api.get(f"/api/v1/templates/{template['id']}")).json()
    assert read["liveVersion"] == 1 and read["state"] == "published"
    assert [v["version"] for v in read["versions"]] == [1, 2]
    assert read["email"]["subject"] == NEW_EMAIL["subject"]  # the draft is left as it is
    first = (await api.get(f"/api/v1/templates/{template['id']}/versions/1")).json()
    second = (await api.get(f"/api/v1/templates/{template['id']}/versions/2")).json()
    assert first["live"] is True and second["live"] is False
    assert first["email"]["subject"] == "Order {{ ctx.orderId }} confirmed"
    assert (await api.post(f"/api/v1/templates/{template['id']}/versions/9/republish")).status_code == 404


async def test_deleted_template_keeps_the_versions_its_messages_were_sent_with(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    template = await published_template(api)
    event_id = await push(api)
    await drain(runtime)

    refused = await api.delete(f"/api/v1/templates/{template['id']}")
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "state"
    assert (await api.get(f"/api/v1/templates/{template['id']}")).status_code == 200
    assert (await api.post(f"/api/v1/templates/{template['id']}/unpublish")).status_code == 200
    assert (await api.delete(f"/api/v1/templates/{template['id']}")).status_code == 204

    assert (await api.get(f"/api/v1/templates/{template['id']}")).status_code == 404
    assert (await api.get(f"/api/v1/templates/{template['id']}/versions/1")).status_code == 404
    assert (await api.get("/api/v1/templates")).json() == []
    assert (await api.delete(f"/api/v1/templates/{template['id']}")).status_code == 404

    sent = await event(api, event_id)
    assert sent["status"] == "processed"
    assert sent["template"] == {"id": template["id"], "version": 1}
    assert [m["templateVersion"] for m in sent["messages"]] == [1]


async def test_audit_trail_lists_every_change_newest_first(api: httpx.AsyncClient, runtime: Runtime) -> None:
    template = await published_template(api)
    tid = template["id"]
    await publish_new_subject(api, tid)
    assert (await api.post(f"/api/v1/templates/{tid}/versions/1/republish")).status_code == 200
    for action in ("pause", "resume", "unpublish"):
        assert (await api.post(f"/api/v1/templates/{tid}/{action}")).status_code == 200

    trail = (await api.get(f"/api/v1/templates/{tid}/audit")).json()
    assert [entry["action"] for entry in trail] == [
        "unpublished",
        "resumed",
        "paused",
        "republished",
        "published",
        "updated",
        "published",
        "created",
    ]
    actor = f"api key {await api_key_id(runtime)} (tests)"
    assert {entry["actor"] for entry in trail} == {actor}
    assert [e["details"] for e in trail if e["action"] in ("published", "republished")] == [
        {"version": 1},
        {"version": 2},
        {"version": 1},
    ]
    times = [entry["at"] for entry in trail]
    assert times == sorted(times, reverse=True)
    assert [e["action"] for e in (await api.get(f"/api/v1/templates/{tid}/audit", params={"limit": 2})).json()] == [
        "unpublished",
        "resumed",
    ]

    listed = (await api.get(f"/api/v1/templates/{tid}/versions")).json()
    assert [(v["version"], v["publishedBy"]) for v in listed] == [(1, actor), (2, actor)]


async def test_audit_trail_records_the_deletion(api: httpx.AsyncClient) -> None:
    await create_type(api)
    body = {"name": "Order", "eventType": "order_confirmation", "email": NEW_EMAIL}
    template = (await api.post("/api/v1/templates", json=body)).json()
    assert (await api.delete(f"/api/v1/templates/{template['id']}")).status_code == 204
    response = await api.get(f"/api/v1/templates/{template['id']}/audit")
    assert response.status_code == 200, response.text
    assert [entry["action"] for entry in response.json()] == ["deleted", "created"]


async def add_seed(api: httpx.AsyncClient, template_id: int, **body: Any) -> httpx.Response:
    return await api.post(f"/api/v1/templates/{template_id}/seeds", json={"label": "Ann"} | body)


async def test_seed_addresses_crud(api: httpx.AsyncClient) -> None:
    await create_type(api, schema=SEED_SCHEMA)
    body = {"name": "Order", "eventType": "order_confirmation", "email": NEW_EMAIL}
    template = (await api.post("/api/v1/templates", json=body)).json()
    other = (await api.post("/api/v1/templates", json=body | {"name": "Other"})).json()
    seeds = f"/api/v1/templates/{template['id']}/seeds"

    json_seed = await add_seed(api, template["id"], address="ann@example.com", ctx={"orderId": "A-1"}, language="fr")
    assert json_seed.status_code == 201, json_seed.text
    first = json_seed.json()
    assert first | {"id": 0} == {
        "id": 0,
        "label": "Ann",
        "address": "ann@example.com",
        "platform": None,
        "externalId": None,
        "language": "fr",
        "ctx": {"orderId": "A-1"},
    }
    xml_seed = await add_seed(
        api, template["id"], address="bob@example.com", ctxXml="<ctx><firstName>Ann</firstName></ctx>"
    )
    assert xml_seed.status_code == 201, xml_seed.text
    second = xml_seed.json()
    assert second["ctx"] == {"firstName": "Ann"}
    no_ctx = await add_seed(api, template["id"], address="cy@example.com")
    assert no_ctx.status_code == 201 and no_ctx.json()["ctx"] is None

    bad_address = await add_seed(api, template["id"], address="ann at example")
    assert bad_address.status_code == 422 and bad_address.json()["error"]["field"] == "address"
    off_schema = await add_seed(api, template["id"], address="ann@example.com", ctx={"orderId": 42})
    assert off_schema.status_code == 422 and off_schema.json()["error"]["field"] == "ctx.orderId"
    both = await add_seed(
        api, template["id"], address="ann@example.com", ctx={}, ctxXml="<ctx><firstName>Ann</firstName></ctx>"
    )
    assert both.status_code == 422 and "ctxXml" in both.json()["error"]["message"]
    for malformed in ("<ctx><firstName>Ann</ctx>", "<data><firstName>Ann</firstName></data>"):
        refused = await add_seed(api, template["id"], address="ann@example.com", ctxXml=malformed)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "ctxXml", malformed

    listed = (await api.get(seeds)).json()
    assert [(s["id"], s["address"]) for s in listed] == [
        (first["id"], "ann@example.com"),
        (second["id"], "bob@example.com"),
        (no_ctx.json()["id"], "cy@example.com"),
    ]
    assert (await api.get(f"/api/v1/templates/{other['id']}/seeds")).json() == []

    replaced = await api.put(
        f"{seeds}/{first['id']}", json={"label": "Dee", "address": "dee@example.com", "externalId": "C-9"}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json() | {"id": 0} == {
        "id": 0,
        "label": "Dee",
        "address": "dee@example.com",
        "platform": None,
        "externalId": "C-9",
        "language": None,
        "ctx": None,
    }
    assert replaced.json()["id"] == first["id"]
    bad_replace = await api.put(f"{seeds}/{first['id']}", json={"label": "Dee", "address": "nope"})
    assert bad_replace.status_code == 422

    elsewhere = f"/api/v1/templates/{other['id']}/seeds/{second['id']}"
    assert (await api.put(elsewhere, json={"label": "x", "address": "x@example.com"})).status_code == 404
    assert (await api.delete(elsewhere)).status_code == 404
    assert (await api.delete(f"{seeds}/{second['id']}")).status_code == 204
    assert (await api.delete(f"{seeds}/{second['id']}")).status_code == 404
    assert [s["label"] for s in (await api.get(seeds)).json()] == ["Dee", "Ann"]
    assert (await api.get("/api/v1/templates/999999/seeds")).status_code == 404
    trail = (await api.get(f"/api/v1/templates/{template['id']}/audit")).json()
    changes = [(e["action"], e["details"]["address"]) for e in reversed(trail) if e["action"].startswith("seed_")]
    assert changes == [
        ("seed_added", "ann@example.com"),
        ("seed_added", "bob@example.com"),
        ("seed_added", "cy@example.com"),
        ("seed_changed", "dee@example.com"),
        ("seed_deleted", "bob@example.com"),
    ]
