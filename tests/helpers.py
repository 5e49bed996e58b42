"""Small builders shared by tests: an event type with a published template, in one call."""

from __future__ import annotations

from typing import Any

import httpx

ORDER_SCHEMA = {
    "type": "object",
    "required": ["orderId"],
    "properties": {"orderId": {"type": "string"}, "firstName": {"type": "string"}},
}


async def create_type(api: httpx.AsyncClient, name: str = "order_confirmation", **extra: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/event-types", json={"name": name, "label": name.title(), **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def published_template(
    api: httpx.AsyncClient, event_type: str = "order_confirmation", **email: str
) -> dict[str, Any]:
    """Create the event type if needed, then an email template for it, published as version 1."""
    if (await api.get(f"/api/v1/event-types/{event_type}")).status_code == 404:
        await create_type(api, event_type)
    content = {
        "from": "Shop <shop@example.com>",
        "replyTo": "help@example.com",
        "subject": "Order {{ ctx.orderId }} confirmed",
        "html": "<p>Hello {{ ctx.firstName }}</p>",
        "text": "Hello {{ ctx.firstName }}",
    } | email
    response = await api.post(
        "/api/v1/templates", json={"name": f"{event_type} email", "eventType": event_type, "email": content}
    )
    assert response.status_code == 201, response.text
    template = dict(response.json())
    published = await api.post(f"/api/v1/templates/{template['id']}/publish")
    assert published.status_code == 200, published.text
    return template


async def push(api: httpx.AsyncClient, **fields: Any) -> int:
    body = {"type": "order_confirmation", "email": "ada@example.com", "ctx": {"orderId": "A-1"}} | fields
    response = await api.post("/api/v1/events", json=body)
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


async def event(api: httpx.AsyncClient, event_id: int) -> dict[str, Any]:
    response = await api.get(f"/api/v1/events/{event_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())
