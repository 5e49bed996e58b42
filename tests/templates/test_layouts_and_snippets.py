"""Layouts and snippets: a draft renders with today's, a published version keeps the ones it froze."""

from __future__ import annotations

from typing import Any

import httpx

from envoi.runtime import Runtime
from tests.conftest import drain
from tests.helpers import create_type, push

SAMPLE = {"orderId": "A-1", "firstName": "Ada"}
LAYOUT_V1 = {"html": '<div class="brand">{{ content }}</div>', "text": "{{ content }}\n-- Brand v1"}
LAYOUT_V2 = {"html": "<section>{{ content }}</section>", "text": "{{ content }}\n-- Brand v2"}
EMAIL = {
    "from": "Shop <shop@example.com>",
    "subject": "Order {{ ctx.orderId }}",
    "html": "<p>Hello {{ ctx.firstName }}</p><p>{% render 'footer' %}</p>",
    "text": "Hello {{ ctx.firstName }}\n{% render 'footer' %}",
}
HTML_V1 = '<div class="brand"><p>Hello Ada</p><p>Shop Inc. v1</p></div>'
TEXT_V1 = "Hello Ada\nShop Inc. v1\n-- Brand v1"
HTML_V2 = "<section><p>Hello Ada</p><p>Shop Inc. v2</p></section>"
TEXT_V2 = "Hello Ada\nShop Inc. v2\n-- Brand v2"


async def save_layout(api: httpx.AsyncClient, name: str, layout: dict[str, str]) -> None:
    response = await api.put(f"/api/v1/layouts/{name}", json=layout)
    assert response.status_code == 200, response.text


async def save_snippet(api: httpx.AsyncClient, name: str, source: str) -> None:
    response = await api.put(f"/api/v1/snippets/{name}", json={"source": source})
    assert response.status_code == 200, response.text


async def branded_draft(api: httpx.AsyncClient, **email: str) -> dict[str, Any]:
    """An event type with a sample, layout 'brand' and snippet 'footer' (v1), and a draft using both."""
    await create_type(api, sample=SAMPLE)
    await save_layout(api, "brand", LAYOUT_V1)
    await save_snippet(api, "footer", "Shop Inc. v1")
    response = await api.post(
        "/api/v1/templates",
        json={"name": "Order", "eventType": "order_confirmation", "layout": "brand", "email": EMAIL | email},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def preview(api: httpx.AsyncClient, template_id: int, **body: Any) -> dict[str, Any]:
    response = await api.post(f"/api/v1/templates/{template_id}/preview", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def newest_mail(api: httpx.AsyncClient) -> dict[str, Any]:
    outbox = (await api.get("/api/v1/outbox", params={"to": "ada@example.com", "limit": 1})).json()
    assert outbox, "no email was sent"
    return dict(outbox[0])


async def test_draft_renders_inside_its_layout_with_its_snippet(api: httpx.AsyncClient) -> None:
    template = await branded_draft(api)
    assert template["layout"] == "brand"
    assert (await api.get("/api/v1/layouts/brand")).json() == {"name": "brand", "mjml": None} | LAYOUT_V1
    assert (await api.get("/api/v1/snippets/footer")).json() == {"name": "footer", "source": "Shop Inc. v1"}

    shown = await preview(api, template["id"])
    assert shown["version"] is None
    assert shown["subject"] == "Order A-1"
    assert shown["html"] == HTML_V1
    assert shown["text"].rstrip("\n") == TEXT_V1
    assert shown["warnings"] == []


async def test_text_layout_wraps_the_text_written_from_html(api: httpx.AsyncClient) -> None:
    """Without a text part, the text is written from the HTML as it is inside its layout, snippet included."""
    template = await branded_draft(api, text="")
    shown = await preview(api, template["id"])
    assert shown["html"] == HTML_V1
    assert "Hello Ada" in shown["text"] and "Shop Inc. v1" in shown["text"]


async def test_publishing_freezes_the_layout_and_the_snippets_it_uses(api: httpx.AsyncClient, runtime: Runtime) -> None:
    template = await branded_draft(api)
    await save_snippet(api, "unused", "never rendered")
    assert (await api.post(f"/api/v1/templates/{template['id']}/publish")).json() == {"version": 1}

    await save_layout(api, "brand", LAYOUT_V2)
    await save_snippet(api, "footer", "Shop Inc. v2")

    await push(api, ctx=SAMPLE)
    await drain(runtime)
    mail = await newest_mail(api)
    assert mail["html"] == HTML_V1
    assert mail["text"].rstrip("\n") == TEXT_V1

    frozen = (await api.get(f"/api/v1/templates/{template['id']}/versions/1")).json()
    assert frozen["layout"] == {"name": "brand", "mjml": None} | LAYOUT_V1
    assert frozen["snippets"] == {"footer": "Shop Inc. v1"}
    assert (await preview(api, template["id"], version=1))["html"] == HTML_V1

    draft = await preview(api, template["id"])
    assert draft["html"] == HTML_V2
    assert draft["text"].rstrip("\n") == TEXT_V2

    assert (await api.post(f"/api/v1/templates/{template['id']}/publish")).json() == {"version": 2}
    second = (await api.get(f"/api/v1/templates/{template['id']}/versions/2")).json()
    assert second["layout"] == {"name": "brand", "mjml": None} | LAYOUT_V2
    assert second["snippets"] == {"footer": "Shop Inc. v2"}
    await push(api, ctx=SAMPLE)
    await drain(runtime)
    mail = await newest_mail(api)
    assert mail["html"] == HTML_V2
    assert mail["text"].rstrip("\n") == TEXT_V2


async def test_a_layout_must_place_the_content(api: httpx.AsyncClient) -> None:
    no_content = await api.put("/api/v1/layouts/brand", json={"html": "<div>header only</div>"})
    assert no_content.status_code == 422
    assert no_content.json()["error"]["field"] == "html"
    text_without = await api.put("/api/v1/layouts/brand", json={"html": "<div>{{ content }}</div>", "text": "--"})
    assert text_without.status_code == 422
    assert text_without.json()["error"]["field"] == "text"
    empty = await api.put("/api/v1/layouts/brand", json={})
    assert empty.status_code == 422
    assert (await api.get("/api/v1/layouts/brand")).status_code == 404
    assert (await api.get("/api/v1/layouts")).json() == []


async def test_layout_and_snippet_names_are_checked(api: httpx.AsyncClient) -> None:
    layout = await api.put("/api/v1/layouts/Brand Layout", json=LAYOUT_V1)
    assert layout.status_code == 422 and layout.json()["error"]["field"] == "name"
    snippet = await api.put("/api/v1/snippets/-footer", json={"source": "x"})
    assert snippet.status_code == 422 and snippet.json()["error"]["field"] == "name"
    assert (await api.get("/api/v1/layouts")).json() == []
    assert (await api.get("/api/v1/snippets")).json() == []


async def test_a_template_cannot_name_a_missing_layout(api: httpx.AsyncClient) -> None:
    await create_type(api, sample=SAMPLE)
    response = await api.post(
        "/api/v1/templates",
        json={"name": "Order", "eventType": "order_confirmation", "layout": "ghost", "email": EMAIL},
    )
    assert response.status_code in (404, 422)
    error = response.json()["error"]
    assert error["field"] == "layout" and "ghost" in error["message"]
    assert (await api.get("/api/v1/templates")).json() == []


async def test_a_layout_in_use_cannot_be_deleted(api: httpx.AsyncClient) -> None:
    template = await branded_draft(api)
    refused = await api.delete("/api/v1/layouts/brand")
    assert refused.status_code == 409
    assert str(template["id"]) in refused.json()["error"]["message"]
    assert (await api.get("/api/v1/layouts/brand")).status_code == 200

    unbranded = {"name": "Order", "eventType": "order_confirmation", "email": EMAIL}
    assert (await api.put(f"/api/v1/templates/{template['id']}", json=unbranded)).status_code == 200
    assert (await api.delete("/api/v1/layouts/brand")).status_code == 204
    assert (await api.get("/api/v1/layouts/brand")).status_code == 404


async def test_publishing_refuses_a_missing_snippet(api: httpx.AsyncClient) -> None:
    template = await branded_draft(api, html="<p>Hello {{ ctx.firstName }}</p><p>{% render 'legal' %}</p>")
    shown = await api.post(f"/api/v1/templates/{template['id']}/preview", json={})
    assert shown.status_code == 422 and shown.json()["error"]["code"] == "render_failed"
    assert "legal" in shown.json()["error"]["message"]
    response = await api.post(f"/api/v1/templates/{template['id']}/publish")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "publish_refused"
    assert any("legal" in problem["field"] + problem["message"] for problem in error["errors"]), error
    read = (await api.get(f"/api/v1/templates/{template['id']}")).json()
    assert read["state"] == "draft" and read["versions"] == []

    await save_snippet(api, "legal", "Terms apply")
    assert (await api.post(f"/api/v1/templates/{template['id']}/publish")).json() == {"version": 1}


async def test_an_mjml_body_needs_an_mjml_layout(api: httpx.AsyncClient) -> None:
    mjml = "<mj-section><mj-column><mj-text>Hello {{ ctx.firstName }}</mj-text></mj-column></mj-section>"
    template = await branded_draft(api, html="", mjml=mjml)
    problem = {"field": "layout", "message": "layout 'brand' has no mjml part for the mjml body"}
    refused = await api.post(f"/api/v1/templates/{template['id']}/publish")
    assert refused.status_code == 422 and problem in refused.json()["error"]["errors"]

    await save_layout(api, "brand", LAYOUT_V1 | {"mjml": "<mjml><mj-body>{{ content }}</mj-body></mjml>"})
    shown = await preview(api, template["id"])
    assert shown["warnings"] == [] and "Hello Ada" in shown["html"] and "<mj-" not in shown["html"]
    assert (await api.post(f"/api/v1/templates/{template['id']}/publish")).status_code == 200


async def test_a_text_part_written_from_a_layout_is_not_indented(api: httpx.AsyncClient) -> None:
    template = await branded_draft(api, text="")
    await save_layout(api, "brand", {"html": "<div><div>{{ content }}</div></div>"})
    assert (await preview(api, template["id"]))["text"] == "Hello Ada\n\nShop Inc. v1\n"
