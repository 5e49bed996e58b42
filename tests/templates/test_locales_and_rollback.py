"""An event's language picks the template's variant, with a fallback chain to the default language; rolling back
makes an earlier version live again for new events."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from envoi.runtime import Runtime
from envoi.templates.locales import normalize_language, pick_language
from tests.conftest import drain
from tests.helpers import create_type, event, push

SENDER = "Shop <shop@example.com>"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("fr", "fr"),
        ("FR", "fr"),
        ("fr-CA", "fr"),  # a region falls back to its language
        ("en_GB", "en-GB"),
        ("en-US", "en"),  # the default language is a candidate like any variant
        ("pt-BR", "pt-BR"),
        ("pt", "pt-BR"),  # no plain 'pt': a variant of the same language beats the default
        ("de", "en"),
        ("", "en"),
        (None, "en"),
        ("not a tag!", "en"),
    ],
)
def test_pick_language(requested: str | None, expected: str) -> None:
    assert pick_language(requested, ["fr", "en-GB", "pt-BR"], "en") == expected


def test_language_tags_are_normalized() -> None:
    assert normalize_language("zh_hant_tw") == "zh-Hant-TW"
    with pytest.raises(ValueError, match="not a language tag"):
        normalize_language("english please")


async def test_a_french_event_gets_the_fr_variant_and_portuguese_the_default(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await create_type(api)
    body = {
        "name": "Order",
        "eventType": "order_confirmation",
        "language": "en",
        "email": {"from": SENDER, "subject": "Order {{ ctx.orderId }}", "text": "Hello"},
        "variants": {"FR": {"subject": "Commande {{ ctx.orderId }}", "text": "Bonjour"}},
    }
    created = await api.post("/api/v1/templates", json=body)
    assert created.status_code == 201, created.text
    assert list(created.json()["variants"]) == ["fr"]
    assert (await api.post(f"/api/v1/templates/{created.json()['id']}/publish")).status_code == 200

    french = await push(api, language="fr-FR", ctx={"orderId": "A-1"})
    portuguese = await push(api, language="pt", ctx={"orderId": "A-2"})
    await drain(runtime)
    outbox = {m["subject"]: m for m in (await api.get("/api/v1/outbox")).json()}
    assert outbox["Commande A-1"]["text"].strip() == "Bonjour"
    assert outbox["Order A-2"]["text"].strip() == "Hello"
    assert (await event(api, french))["messages"][0]["language"] == "fr"
    assert (await event(api, portuguese))["messages"][0]["language"] == "en"


async def test_variants_are_validated(api: httpx.AsyncClient) -> None:
    await create_type(api)
    email = {"from": SENDER, "subject": "x", "text": "y"}
    base: dict[str, Any] = {"name": "t", "eventType": "order_confirmation", "email": email}
    same = await api.post("/api/v1/templates", json=base | {"language": "fr", "variants": {"fr": {"subject": "z"}}})
    assert same.status_code == 422 and "default language" in same.json()["error"]["message"]
    bad_tag = await api.post("/api/v1/templates", json=base | {"variants": {"french!": {"subject": "z"}}})
    assert bad_tag.status_code == 422 and bad_tag.json()["error"]["field"] == "variants"
    both = await api.post("/api/v1/templates", json=base | {"variants": {"fr": {"html": "<p/>", "mjml": "<mjml/>"}}})
    assert both.status_code == 422
    broken = await api.post("/api/v1/templates", json=base | {"variants": {"fr": {"subject": "{{ oops"}}})
    assert broken.status_code == 422 and broken.json()["error"]["field"] == "variants.fr.subject"


async def test_rollback_makes_version_1_live_again_for_new_events(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    body: dict[str, Any] = {
        "name": "Order",
        "eventType": "order_confirmation",
        "email": {"from": SENDER, "subject": "First {{ ctx.orderId }}", "text": "v1"},
    }
    template_id = (await api.post("/api/v1/templates", json=body)).json()["id"]
    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).json() == {"version": 1}
    body["email"] = body["email"] | {"subject": "Second {{ ctx.orderId }}", "text": "v2"}
    await api.put(f"/api/v1/templates/{template_id}", json=body)
    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).json() == {"version": 2}
    on_v2 = await push(api, ctx={"orderId": "A-1"})
    await drain(runtime)

    rolled = await api.post(f"/api/v1/templates/{template_id}/versions/1/republish")
    assert rolled.status_code == 200 and rolled.json() == {"version": 1}
    assert (await api.get(f"/api/v1/templates/{template_id}")).json()["liveVersion"] == 1
    on_v1 = await push(api, ctx={"orderId": "A-2"})
    await drain(runtime)

    assert (await event(api, on_v2))["messages"][0]["templateVersion"] == 2
    sent = await event(api, on_v1)
    assert sent["template"]["version"] == 1 and sent["messages"][0]["subject"] == "First A-2"
    draft = await api.post(f"/api/v1/templates/{template_id}/preview", json={"ctx": {"orderId": "D"}})
    assert draft.json()["subject"] == "Second D"  # the draft is left as it was
    assert (await api.post(f"/api/v1/templates/{template_id}/versions/9/republish")).status_code == 404


async def test_a_variant_with_its_own_body_gets_its_own_text_part(api: httpx.AsyncClient) -> None:
    await create_type(api, sample={"orderId": "A-1"})
    body = {
        "name": "t",
        "eventType": "order_confirmation",
        "email": {"from": SENDER, "subject": "Order", "html": "<p>Hello</p>", "text": "Hello, in English"},
        "variants": {"fr": {"html": "<p>Bonjour {{ event.language }}</p>"}},
    }
    template_id = (await api.post("/api/v1/templates", json=body)).json()["id"]
    shown = (await api.post(f"/api/v1/templates/{template_id}/preview", json={"language": "fr-CA"})).json()
    # The variant's text is written from its own HTML, and event.language is the event's, as when it is sent.
    assert (shown["language"], shown["subject"], shown["text"]) == ("fr", "Order", "Bonjour fr-CA\n")
