"""Push templates: title, body, data for the app, badge and sound, per language; checked at publish, previewed."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import create_type

SCHEMA = {
    "type": "object",
    "properties": {"parcel": {"type": "string"}, "unread": {"type": "integer"}, "firstName": {"type": "string"}},
}
SAMPLE = {"parcel": "XK-1", "unread": 3, "firstName": "Ada"}
NOTICE: dict[str, Any] = {
    "name": "Parcel push",
    "eventType": "shipping_notice",
    "channel": "push",
    "push": {
        "title": "Parcel {{ ctx.parcel }}",
        "body": "Hello {{ ctx.firstName }}, your parcel left today.",
        "data": {"url": "https://shop.example/parcels/{{ ctx.parcel }}", "kind": "shipping"},
        "badge": "{{ ctx.unread }}",
        "sound": "default",
    },
}


async def push_template(api: httpx.AsyncClient, **fields: Any) -> int:
    await create_type(api, "shipping_notice", schema=SCHEMA, sample=SAMPLE)
    response = await api.post("/api/v1/templates", json=NOTICE | fields)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    return dict(response.json()["error"])


async def test_a_push_template_is_published_and_previewed_per_language(api: httpx.AsyncClient) -> None:
    french = {"title": "Colis {{ ctx.parcel }}", "body": "Bonjour {{ ctx.firstName }}, votre colis est parti."}
    template_id = await push_template(api, variants={"fr": french})
    template = (await api.get(f"/api/v1/templates/{template_id}")).json()
    assert template["push"] == NOTICE["push"] and template["email"] is None and template["sms"] is None
    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).json() == {"version": 1}

    shown = (await api.post(f"/api/v1/templates/{template_id}/preview", json={})).json()
    assert shown["push"] == {
        "title": "Parcel XK-1",
        "body": "Hello Ada, your parcel left today.",
        "data": {"url": "https://shop.example/parcels/XK-1", "kind": "shipping"},
        "badge": 3,
        "sound": "default",
    }
    assert (shown["subject"], shown["html"], shown["text"], shown["warnings"]) == (None, None, None, [])
    # A variant's fields replace the default's; the others (data, badge, sound) are shared.
    fr = (await api.post(f"/api/v1/templates/{template_id}/preview", json={"language": "fr", "version": 1})).json()
    assert (fr["language"], fr["push"]["title"], fr["push"]["body"]) == (
        "fr",
        "Colis XK-1",
        "Bonjour Ada, votre colis est parti.",
    )
    assert fr["push"]["data"]["kind"] == "shipping" and fr["push"]["badge"] == 3
    # No badge for an event whose data has none; the version shows the push content as published.
    none = (await api.post(f"/api/v1/templates/{template_id}/preview", json={"ctx": {"parcel": "B-2"}})).json()
    assert none["push"]["badge"] is None and none["push"]["title"] == "Parcel B-2"
    version = (await api.get(f"/api/v1/templates/{template_id}/versions/1")).json()
    assert version["push"]["data"] == NOTICE["push"]["data"] and version["variants"]["fr"]["title"] == french["title"]


async def test_a_diff_shows_each_data_value(api: httpx.AsyncClient) -> None:
    template_id = await push_template(api)
    await api.post(f"/api/v1/templates/{template_id}/publish")
    changed = NOTICE | {"push": NOTICE["push"] | {"data": {"url": "https://shop.example/p/{{ ctx.parcel }}"}}}
    assert (await api.put(f"/api/v1/templates/{template_id}", json=changed)).status_code == 200
    await api.post(f"/api/v1/templates/{template_id}/publish")
    diff = (await api.get(f"/api/v1/templates/{template_id}/versions/1/diff/2")).text
    assert "== push.data.url ==" in diff and "-== push.data.kind ==" in diff
    assert "+https://shop.example/p/{{ ctx.parcel }}" in diff


async def test_a_push_template_has_push_content_only(api: httpx.AsyncClient) -> None:
    await create_type(api, "shipping_notice")
    create = "/api/v1/templates"
    assert (await error_of(await api.post(create, json=NOTICE | {"push": None})))["field"] == "push"
    email = {"from": "a@example.com", "subject": "x", "html": "<p>x</p>"}
    assert (await error_of(await api.post(create, json=NOTICE | {"email": email})))["field"] == "email"
    assert (await error_of(await api.post(create, json=NOTICE | {"layout": "brand"})))["field"] == "layout"
    html = await api.post(create, json=NOTICE | {"variants": {"fr": {"html": "<p>x</p>"}}})
    assert (await error_of(html))["field"] == "variants.fr.html"
    no_body = await api.post(create, json=NOTICE | {"push": {"title": "x", "body": ""}})
    assert (await error_of(no_body))["field"] == "push.body"
    badge = await api.post(create, json=NOTICE | {"push": {"body": "x", "badge": "many"}})
    assert (await error_of(badge))["field"] == "push.badge"
    negative = await api.post(create, json=NOTICE | {"push": {"body": "x", "badge": -1}})
    assert (await error_of(negative))["field"] == "push.badge"
    reserved = await api.post(create, json=NOTICE | {"push": {"body": "x", "data": {"aps": "x"}}})
    reserved_error = await error_of(reserved)
    assert reserved_error["field"] == "push.data" and "'aps' is reserved" in reserved_error["message"]
    not_text = await api.post(create, json=NOTICE | {"push": {"body": "x", "data": {"n": {"nested": 1}}}})
    assert (await error_of(not_text))["field"] == "push.data.n"
    syntax = await api.post(create, json=NOTICE | {"push": {"body": "x", "data": {"url": "{{ ctx.parcel "}}})
    assert (await error_of(syntax))["field"] == "push.data.url"
    number = await api.post(create, json=NOTICE | {"push": {"body": "x", "badge": 0}})
    assert number.status_code == 201 and number.json()["push"]["badge"] == "0"


async def test_publish_checks_variables_body_and_badge(api: httpx.AsyncClient) -> None:
    push = {
        "body": "{% if ctx.firstName == 'nobody' %}Hi{% endif %}",
        "data": {"url": "https://shop.example/{{ ctx.missing }}"},
    }
    template_id = await push_template(api, push=push, variants={"fr": {"title": "{{ event.nope }}", "body": "Salut"}})
    error = await error_of(await api.post(f"/api/v1/templates/{template_id}/publish"))
    assert error["code"] == "publish_refused"
    problems = {(e["field"], e["message"].split(" (with")[0]) for e in error["errors"]}
    assert ("push.data.url", "'ctx.missing' is not in the event type's schema") in problems
    assert ("push.body", "the body is empty") in problems
    assert any(field == "variants.fr.title" and "'event.nope' does not exist" in m for field, m in problems)

    badge = NOTICE | {"push": {"body": "Hi", "badge": "{{ ctx.firstName }}"}}
    assert (await api.put(f"/api/v1/templates/{template_id}", json=badge)).status_code == 200
    error = await error_of(await api.post(f"/api/v1/templates/{template_id}/publish"))
    assert [e["field"] for e in error["errors"]] == ["push.badge"]
    assert "the badge must be a whole number of 0 or more, not 'Ada'" in error["errors"][0]["message"]


async def test_a_bad_variant_names_its_own_field(api: httpx.AsyncClient) -> None:
    template_id = await push_template(api)
    reserved = await api.put(
        f"/api/v1/templates/{template_id}", json=NOTICE | {"variants": {"fr": {"data": {"aps": "1"}}}}
    )
    error = await error_of(reserved)
    assert error["field"] == "variants.fr.data" and "'aps' is reserved" in error["message"]
    subject = await api.put(f"/api/v1/templates/{template_id}", json=NOTICE | {"variants": {"fr": {"subject": "x"}}})
    assert (await error_of(subject))["field"] == "variants.fr.subject"
    not_an_object = await api.put(f"/api/v1/templates/{template_id}", json=NOTICE | {"variants": {"fr": "x"}})
    assert (await error_of(not_an_object))["field"] == "variants.fr"


async def test_a_push_seed_is_a_token_with_its_platform(api: httpx.AsyncClient) -> None:
    template_id = await push_template(api)
    seeds = f"/api/v1/templates/{template_id}/seeds"
    token = "a3" * 32
    added = await api.post(seeds, json={"label": "iPhone", "address": token, "platform": "ios", "ctx": SAMPLE})
    assert added.status_code == 201 and (added.json()["address"], added.json()["platform"]) == (token, "ios")
    assert (await error_of(await api.post(seeds, json={"label": "x", "address": token})))["field"] == "platform"
    short = await error_of(await api.post(seeds, json={"label": "x", "address": "ab", "platform": "ios"}))
    assert short["field"] == "address" and "APNs device token" in short["message"]
    web = await error_of(await api.post(seeds, json={"label": "x", "address": '{"endpoint": "https://x"}'}))
    assert web["field"] == "address" and "Web Push subscription" in web["message"]
    unknown = await api.post(seeds, json={"label": "x", "address": token, "platform": "blackberry"})
    assert (await error_of(unknown))["field"] == "platform"
    # The seed renders at publishing and in previews like any other.
    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).status_code == 200
    shown = await api.post(f"/api/v1/templates/{template_id}/preview", json={"seedId": added.json()["id"]})
    assert shown.json()["push"]["title"] == "Parcel XK-1"

    await create_type(api, "welcome")
    email = {
        "name": "Welcome",
        "eventType": "welcome",
        "email": {"from": "a@example.com", "subject": "Hi", "text": "x"},
    }
    email_id = (await api.post("/api/v1/templates", json=email)).json()["id"]
    platform = await api.post(
        f"/api/v1/templates/{email_id}/seeds", json={"label": "x", "address": "ann@example.com", "platform": "ios"}
    )
    assert (await error_of(platform))["field"] == "platform"
