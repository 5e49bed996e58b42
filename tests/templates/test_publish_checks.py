"""Publishing refuses a broken template with every problem listed: unknown variables, a failure on one seed,
an empty subject, HTML that does not parse, relative links."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from envoi.templates.checks import schema_has
from tests.helpers import ORDER_SCHEMA, create_type

SENDER = "Shop <shop@example.com>"


async def draft(api: httpx.AsyncClient, event_type: str = "order_confirmation", **email: str) -> int:
    content = {"from": SENDER, "subject": "Order {{ ctx.orderId }}", "html": "<p>Hello</p>"} | email
    response = await api.post("/api/v1/templates", json={"name": "t", "eventType": event_type, "email": content})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def refused(api: httpx.AsyncClient, template_id: int) -> list[dict[str, Any]]:
    response = await api.post(f"/api/v1/templates/{template_id}/publish")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "publish_refused"
    assert (await api.get(f"/api/v1/templates/{template_id}")).json()["liveVersion"] is None
    return list(error["errors"])


async def test_a_variable_missing_from_the_schema_is_refused(api: httpx.AsyncClient) -> None:
    await create_type(api, schema=ORDER_SCHEMA, sample={"orderId": "A-1", "firstName": "Ann"})
    template_id = await draft(api, html="<p>Hello {{ ctx.firstName }}</p>\n<p>{{ ctx.missing }}</p>")
    errors = await refused(api, template_id)
    assert errors == [{"field": "email.html", "message": "'ctx.missing' is not in the event type's schema"}]

    schema = ORDER_SCHEMA | {"properties": ORDER_SCHEMA["properties"] | {"missing": {"type": "string"}}}
    changed = await api.put(
        "/api/v1/event-types/order_confirmation",
        json={"name": "order_confirmation", "label": "Order", "schema": schema},
    )
    assert changed.status_code == 200, changed.text
    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).json() == {"version": 1}


async def test_names_outside_ctx_and_event_are_refused_with_a_hint(api: httpx.AsyncClient) -> None:
    await create_type(api)
    template_id = await draft(api, subject="Hi {{ firstName }}", text="{{ event.nope }} {{ event.externalId }}")
    errors = await refused(api, template_id)
    assert {
        "field": "email.subject",
        "message": "'firstName' does not exist; event data is under ctx (ctx.firstName)",
    } in errors
    assert any(e["field"] == "email.text" and "'event.nope' does not exist" in e["message"] for e in errors)
    assert not any("'event.externalId'" in e["message"] for e in errors)


async def test_a_template_that_fails_on_one_seed_is_refused(api: httpx.AsyncClient) -> None:
    await create_type(api, sample={"orderId": "A-1", "total": 10, "count": 2})
    template_id = await draft(
        api, html="<p>Order {{ ctx.orderId }}</p>\n<p>{{ ctx.total | divided_by: ctx.count }}</p>"
    )
    for label, count in (("two items", 2), ("empty basket", 0)):
        seed = {"label": label, "address": "qa@example.com", "ctx": {"orderId": "S", "total": 10, "count": count}}
        assert (await api.post(f"/api/v1/templates/{template_id}/seeds", json=seed)).status_code == 201
    errors = await refused(api, template_id)
    assert len(errors) == 1
    assert errors[0]["field"] == "email.html"
    message = errors[0]["message"]
    assert "seed 'empty basket'" in message and "line 2" in message and "divided_by" in message
    assert "{{ ctx.total | divided_by: ctx.count }}" in message


async def test_every_problem_is_listed_at_once(api: httpx.AsyncClient) -> None:
    await create_type(api, sample={"orderId": "A-1", "url": "https://shop.example.com/a"})
    template_id = await draft(
        api,
        subject="{{ ctx.title }}",
        html='<p>Hello <b>you</p> <a href="/account">account</a> <a href="{{ ctx.url }}">ok</a> <a href="#top">top</a>',
    )
    seed = {"label": "qa", "address": "qa@example.com", "ctx": {"orderId": "Q", "title": "Yours", "url": "/rel"}}
    assert (await api.post(f"/api/v1/templates/{template_id}/seeds", json=seed)).status_code == 201
    messages = {e["message"] for e in await refused(api, template_id)}
    assert "the subject is empty (with the event type's sample)" in messages  # the seed has a title
    assert any(m.startswith("the HTML does not parse: Opening and ending tag mismatch") for m in messages)
    # A problem found with several seeds is listed once, naming them all.
    assert "the link '/account' is not an absolute URL (with the event type's sample; seed 'qa')" in messages
    assert "the link '/rel' is not an absolute URL (with seed 'qa')" in messages
    assert not any("shop.example.com" in m or "#top" in m for m in messages)


async def test_mailto_links_and_a_clean_template_publish(api: httpx.AsyncClient) -> None:
    await create_type(api, schema=ORDER_SCHEMA, sample={"orderId": "A-1"})
    template_id = await draft(api, html='<p>{{ ctx.orderId }} <a href="mailto:help@example.com">help</a></p>')
    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).json() == {"version": 1}


async def test_every_language_variant_is_checked(api: httpx.AsyncClient) -> None:
    await create_type(api, schema=ORDER_SCHEMA, sample={"orderId": "A-1"})
    response = await api.post(
        "/api/v1/templates",
        json={
            "name": "t",
            "eventType": "order_confirmation",
            "email": {"from": SENDER, "subject": "Order {{ ctx.orderId }}", "text": "Hello"},
            "variants": {"fr": {"subject": "Commande {{ ctx.numero }}"}},
        },
    )
    template_id = response.json()["id"]
    errors = await refused(api, template_id)
    assert errors == [{"field": "variants.fr.subject", "message": "'ctx.numero' is not in the event type's schema"}]


SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {"item": {"type": "object", "properties": {"sku": {"type": "string"}}}},
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        "name": {"type": "string"},
        "extra": {"type": "object"},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "strict": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
        "either": {"anyOf": [{"properties": {"x": {}}}, {"properties": {"y": {}}}]},
        "codes": {"type": "object", "patternProperties": {"^c[0-9]+$": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    ("path", "exists"),
    [
        (["name"], True),
        (["nope"], False),
        (["items", 0, "sku"], True),
        (["items", "first", "sku"], True),
        (["items", 0, "price"], False),
        (["items", "size"], True),
        (["name", "size"], True),
        (["name", "first"], False),
        (["extra", "anything", "deep"], True),
        (["tags", "anything"], True),
        (["strict", "a"], True),
        (["strict", "b"], False),
        (["either", "y"], True),
        (["either", "z"], False),
        (["codes", "c12"], True),
        (["codes", "d"], False),
    ],
)
def test_schema_paths(path: list[Any], exists: bool) -> None:
    assert schema_has(SCHEMA, path, SCHEMA) is exists


async def test_every_seed_is_rendered_in_every_language(api: httpx.AsyncClient) -> None:
    await create_type(api, sample={"orderId": "A-1", "n": 1})
    body = {
        "name": "t",
        "eventType": "order_confirmation",
        "email": {"from": SENDER, "subject": "Order {{ ctx.orderId }}", "text": "Hello"},
        "variants": {"fr": {"text": "{{ 10 | divided_by: ctx.n }} articles"}},
    }
    template_id = (await api.post("/api/v1/templates", json=body)).json()["id"]
    seed = {"label": "no items", "address": "qa@example.com", "ctx": {"orderId": "Q", "n": 0}}
    assert (await api.post(f"/api/v1/templates/{template_id}/seeds", json=seed)).status_code == 201
    [error] = await refused(api, template_id)  # the seed has no language: its French rendering is tried too
    assert error["field"] == "variants.fr.text" and "(with seed 'no items', in 'fr')" in error["message"]


async def test_an_empty_body_or_an_xml_declaration_is_not_a_crash(api: httpx.AsyncClient) -> None:
    await create_type(api, sample={"orderId": "A-1"})
    html = '<?xml version="1.0" encoding="UTF-8"?>\n<html><body>{% if ctx.vip %}<p>VIP</p>{% endif %}</body></html>'
    template_id = await draft(api, html=html, text="Hello")
    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).json() == {"version": 1}
    empty = await draft(api, html="{% if ctx.vip %}<p>VIP</p>{% endif %}\n", text="Hello")
    shown = await api.post(f"/api/v1/templates/{empty}/preview", json={})
    assert shown.status_code == 200 and shown.json()["warnings"] == []


def test_a_schema_that_refers_to_itself_is_not_a_crash() -> None:
    schema = {"properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {"$ref": "#/$defs/x"}}}
    assert schema_has(schema, ["a", "b", "c"], schema) is True
    assert schema_has(schema, ["z"], schema) is False
