"""Preview renders without sending (MJML, inlined CSS, a written text part, errors with line and expression);
proofs really reach a real SMTP server, marked, and are never counted as events or messages."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from envoi.delivery.models import Message
from envoi.events.models import Event
from envoi.runtime import Runtime
from tests.helpers import ORDER_SCHEMA, create_type
from tests.smtp_sink import SmtpSink

SENDER = "Shop <shop@example.com>"
MJML = """<mjml>
  <mj-head><mj-style>.greeting { background-color: #fdf2f8; }</mj-style></mj-head>
  <mj-body>
    <mj-section><mj-column>
      <mj-text css-class="greeting">Hello {{ ctx.firstName }}</mj-text>
      <mj-button href="https://shop.example.com/orders/{{ ctx.orderId }}">See order {{ ctx.orderId }}</mj-button>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""


async def template(api: httpx.AsyncClient, **fields: Any) -> int:
    body = {
        "name": "t",
        "eventType": "order_confirmation",
        "email": {"from": SENDER, "subject": "Order {{ ctx.orderId }}", "html": "<p>Hi {{ ctx.firstName }}</p>"},
    } | fields
    response = await api.post("/api/v1/templates", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def preview(api: httpx.AsyncClient, template_id: int, **body: Any) -> httpx.Response:
    return await api.post(f"/api/v1/templates/{template_id}/preview", json=body)


async def test_mjml_preview_is_inlined_html_with_a_text_part(api: httpx.AsyncClient) -> None:
    await create_type(api, schema=ORDER_SCHEMA, sample={"orderId": "A-1", "firstName": "Ann"})
    email = {"from": SENDER, "subject": "Order {{ ctx.orderId }}", "mjml": MJML}
    template_id = await template(api, email=email)
    response = await preview(api, template_id)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["data"] == "the event type's sample" and shown["version"] is None
    assert shown["subject"] == "Order A-1"
    html = shown["html"]
    assert html.lower().startswith("<!doctype html>") and "<mj-" not in html
    cell = html.split("Hello Ann")[0].rsplit("<td", 1)[1]
    assert 'class="greeting"' in cell and "background-color: #fdf2f8" in cell  # the class's CSS, inlined
    assert 'href="https://shop.example.com/orders/A-1"' in html
    assert "Hello Ann" in shown["text"] and "[See order A-1](https://shop.example.com/orders/A-1)" in shown["text"]
    assert "<" not in shown["text"]
    assert shown["warnings"] == []


async def test_preview_errors_give_the_line_and_the_expression(api: httpx.AsyncClient) -> None:
    await create_type(api)
    html = "<p>Hi</p>\n<p>{{ ctx.total | divided_by: ctx.count }}</p>"
    template_id = await template(api, email={"from": SENDER, "subject": "x", "html": html})
    response = await preview(api, template_id, ctx={"total": 3, "count": 0})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "render_failed" and error["field"] == "email.html"
    assert error["line"] == 2 and error["expression"] == "{{ ctx.total | divided_by: ctx.count }}"
    assert "divided_by: can't divide by 0" in error["message"]


async def test_preview_with_a_seed_inline_xml_or_a_version(api: httpx.AsyncClient) -> None:
    await create_type(api, schema=ORDER_SCHEMA, sample={"orderId": "A-1", "firstName": "Ann"})
    template_id = await template(api)
    seed = {"label": "Bob", "address": "bob@example.com", "ctx": {"orderId": "B-2", "firstName": "Bob"}}
    seed_id = (await api.post(f"/api/v1/templates/{template_id}/seeds", json=seed)).json()["id"]

    by_seed = (await preview(api, template_id, seedId=seed_id)).json()
    assert (by_seed["data"], by_seed["subject"], by_seed["html"]) == ("seed 'Bob'", "Order B-2", "<p>Hi Bob</p>")
    xml = "<ctx><orderId>X-9</orderId><firstName>Xu &amp; co</firstName></ctx>"
    by_xml = (await preview(api, template_id, ctxXml=xml)).json()
    assert (by_xml["subject"], by_xml["html"]) == ("Order X-9", "<p>Hi Xu &amp; co</p>")  # HTML-escaped
    invalid = await preview(api, template_id, ctx={"firstName": "no order id"})
    assert invalid.status_code == 422 and invalid.json()["error"]["field"] == "ctx.orderId"

    assert (await api.post(f"/api/v1/templates/{template_id}/publish")).status_code == 200
    changed = {"from": SENDER, "subject": "Changed {{ ctx.orderId }}", "html": "<p>new</p>"}
    body = {"name": "t", "eventType": "order_confirmation", "email": changed}
    assert (await api.put(f"/api/v1/templates/{template_id}", json=body)).status_code == 200
    assert (await preview(api, template_id)).json()["subject"] == "Changed A-1"
    live = (await preview(api, template_id, version=1)).json()
    assert (live["version"], live["subject"]) == (1, "Order A-1")
    assert (await preview(api, template_id, version=7)).status_code == 404


async def test_preview_warns_about_what_publishing_would_refuse(api: httpx.AsyncClient) -> None:
    await create_type(api, schema=ORDER_SCHEMA, sample={"orderId": "A-1"})
    html = '<p>{{ ctx.coupon }}</p><a href="/me">me</a>'
    template_id = await template(api, email={"from": SENDER, "subject": "x", "html": html})
    shown = (await preview(api, template_id)).json()
    assert shown["warnings"] == [
        {"field": "email.html", "message": "'ctx.coupon' is not in the event type's schema"},
        {"field": "html", "message": "the link '/me' is not an absolute URL"},
    ]


async def test_proof_reaches_the_seeds_marked_and_is_not_counted(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    api = smtp_api
    await create_type(api, schema=ORDER_SCHEMA, sample={"orderId": "A-1", "firstName": "Ann"})
    template_id = await template(api)
    seeds = [
        {"label": "Ann", "address": "ann@example.com"},
        {"label": "Bob", "address": "bob@example.com", "ctx": {"orderId": "B-2", "firstName": "Bob"}},
    ]
    for seed in seeds:
        assert (await api.post(f"/api/v1/templates/{template_id}/seeds", json=seed)).status_code == 201

    response = await api.post(f"/api/v1/templates/{template_id}/proof")
    assert response.status_code == 200, response.text
    assert [(p["address"], p["status"]) for p in response.json()] == [
        ("ann@example.com", "sent"),
        ("bob@example.com", "sent"),
    ]
    received = sorted(await smtp_sink.wait_for(2), key=lambda r: r.rcpt_tos[0])
    assert [r.rcpt_tos for r in received] == [["ann@example.com"], ["bob@example.com"]]
    assert [r.message["Subject"] for r in received] == ["[Proof] Order A-1", "[Proof] Order B-2"]
    assert all(r.message["X-Envoi-Proof"] == "yes" for r in received)
    body = received[1].message.get_body(("html",))
    assert body is not None and "Hi Bob" in body.get_content()

    async with smtp_runtime.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 0
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    trail = (await api.get(f"/api/v1/templates/{template_id}/audit")).json()
    proofs = [entry for entry in trail if entry["action"] == "proof_sent"]
    assert sorted(p["details"]["address"] for p in proofs) == ["ann@example.com", "bob@example.com"]
    assert all(p["details"]["status"] == "sent" and p["actor"].startswith("api key ") for p in proofs)


async def test_a_proof_that_cannot_render_is_reported_and_the_others_go(
    smtp_api: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    await create_type(smtp_api)
    html = "<p>{{ ctx.total | divided_by: ctx.count }}</p>"
    template_id = await template(smtp_api, email={"from": SENDER, "subject": "Total", "html": html})
    for label, count in (("fine", 2), ("broken", 0)):
        seed = {"label": label, "address": f"{label}@example.com", "ctx": {"total": 4, "count": count}}
        await smtp_api.post(f"/api/v1/templates/{template_id}/seeds", json=seed)
    results = {p["label"]: p for p in (await smtp_api.post(f"/api/v1/templates/{template_id}/proof")).json()}
    assert results["fine"]["status"] == "sent"
    assert results["broken"]["status"] == "render_failed" and "divide by 0" in results["broken"]["error"]
    received = await smtp_sink.wait_for(1)
    assert [r.rcpt_tos for r in received] == [["fine@example.com"]]


async def test_proof_needs_seed_addresses(api: httpx.AsyncClient) -> None:
    await create_type(api)
    template_id = await template(api)
    response = await api.post(f"/api/v1/templates/{template_id}/proof")
    assert response.status_code == 422 and response.json()["error"]["field"] == "seedIds"
    unknown = await api.post(f"/api/v1/templates/{template_id}/proof", json={"seedIds": [999]})
    assert unknown.status_code == 422 and "999" in unknown.json()["error"]["message"]
