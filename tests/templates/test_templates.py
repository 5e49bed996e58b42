"""Templates: drafts, syntax errors with their line, publish into immutable versions, one live per route."""

from __future__ import annotations

import httpx

from tests.helpers import create_type, published_template

EMAIL = {"from": "Shop <shop@example.com>", "subject": "Hi {{ ctx.firstName }}", "text": "Hello"}


async def test_create_read_and_publish(api: httpx.AsyncClient) -> None:
    await create_type(api)
    created = await api.post(
        "/api/v1/templates",
        json={"name": "Order", "eventType": "order_confirmation", "channel": "email", "email": EMAIL},
    )
    assert created.status_code == 201
    template = created.json()
    assert template["state"] == "draft" and template["liveVersion"] is None
    assert template["email"]["from"] == "Shop <shop@example.com>"

    assert (await api.post(f"/api/v1/templates/{template['id']}/publish")).json() == {"version": 1}
    assert (await api.post(f"/api/v1/templates/{template['id']}/publish")).json() == {"version": 2}
    read = (await api.get(f"/api/v1/templates/{template['id']}")).json()
    assert read["state"] == "published" and read["liveVersion"] == 2
    assert [v["version"] for v in read["versions"]] == [1, 2]
    version = (await api.get(f"/api/v1/templates/{template['id']}/versions/1")).json()
    assert version["email"]["subject"] == "Hi {{ ctx.firstName }}"
    listed = (await api.get("/api/v1/templates", params={"eventType": "order_confirmation"})).json()
    assert [t["id"] for t in listed] == [template["id"]]


async def test_syntax_error_names_the_field_and_line(api: httpx.AsyncClient) -> None:
    await create_type(api)
    email = EMAIL | {"html": "<p>ok</p>\n<p>{% if ctx.vip %}VIP</p>"}
    response = await api.post(
        "/api/v1/templates", json={"name": "t", "eventType": "order_confirmation", "email": email}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_syntax_error"
    assert error["field"] == "email.html"
    assert error["line"] == 2
    assert "line 2" in error["message"]


async def test_template_needs_an_existing_event_type_and_a_valid_sender(api: httpx.AsyncClient) -> None:
    missing = await api.post("/api/v1/templates", json={"name": "t", "eventType": "ghost", "email": EMAIL})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "eventType"
    await create_type(api)
    bad_from = await api.post(
        "/api/v1/templates", json={"name": "t", "eventType": "order_confirmation", "email": EMAIL | {"from": "shop"}}
    )
    assert bad_from.status_code == 422 and bad_from.json()["error"]["field"] == "email.from"


async def test_publishing_needs_a_body(api: httpx.AsyncClient) -> None:
    await create_type(api)
    email = {"from": "shop@example.com", "subject": "Hi"}
    template = (
        await api.post("/api/v1/templates", json={"name": "t", "eventType": "order_confirmation", "email": email})
    ).json()
    response = await api.post(f"/api/v1/templates/{template['id']}/publish")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "email.html"


async def test_only_one_live_template_per_event_type_and_channel(api: httpx.AsyncClient) -> None:
    first = await published_template(api)
    second = (
        await api.post("/api/v1/templates", json={"name": "other", "eventType": "order_confirmation", "email": EMAIL})
    ).json()
    conflict = await api.post(f"/api/v1/templates/{second['id']}/publish")
    assert conflict.status_code == 409
    assert str(first["id"]) in conflict.json()["error"]["message"]
    await api.post(f"/api/v1/templates/{first['id']}/unpublish")
    assert (await api.post(f"/api/v1/templates/{second['id']}/publish")).json() == {"version": 1}


async def test_a_draft_cannot_be_paused_and_channel_cannot_change(api: httpx.AsyncClient) -> None:
    await create_type(api)
    template = (
        await api.post("/api/v1/templates", json={"name": "t", "eventType": "order_confirmation", "email": EMAIL})
    ).json()
    assert (await api.post(f"/api/v1/templates/{template['id']}/pause")).status_code == 409
    moved = await api.put(
        f"/api/v1/templates/{template['id']}",
        json={"name": "t", "eventType": "order_confirmation", "channel": "sms", "email": EMAIL},
    )
    assert moved.status_code == 422
    assert (await api.get("/api/v1/templates/999999")).status_code == 404


async def test_event_types_crud_and_schema_checks(api: httpx.AsyncClient) -> None:
    await create_type(api, "signup", sample={"firstName": "Ada"})
    duplicate = await api.post("/api/v1/event-types", json={"name": "signup", "label": "again"})
    assert duplicate.status_code == 409
    bad_name = await api.post("/api/v1/event-types", json={"name": "Sign Up!", "label": "x"})
    assert bad_name.status_code == 422 and bad_name.json()["error"]["field"] == "name"
    bad_schema = await api.post("/api/v1/event-types", json={"name": "x", "label": "x", "schema": {"type": "nothing"}})
    assert bad_schema.status_code == 422 and bad_schema.json()["error"]["field"] == "schema"
    sample_mismatch = await api.post(
        "/api/v1/event-types",
        json={"name": "y", "label": "y", "schema": {"required": ["orderId"]}, "sample": {}},
    )
    assert sample_mismatch.status_code == 422 and sample_mismatch.json()["error"]["field"].startswith("sample")
    names = [t["name"] for t in (await api.get("/api/v1/event-types")).json()]
    assert names == ["signup"]
