"""Demo data loaded once into a new installation: three event types, each with a published email."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.meta import get_meta, set_meta
from envoi.events.schemas import EventTypeIn
from envoi.events.types import create_event_type
from envoi.templates.schemas import EmailContent, TemplateIn
from envoi.templates.service import create_template
from envoi.templates.versions import publish_template

SENDER = "Envoi Demo Shop <shop@example.com>"

_ORDER_HTML = """<h1>Thank you, {{ ctx.firstName }}!</h1>
<p>Your order <strong>{{ ctx.orderId }}</strong> is confirmed.</p>
<table>
{% for item in ctx.items %}  <tr><td>{{ item.name }}</td><td>{{ item.quantity }}</td><td>{{ item.price }}</td></tr>
{% endfor %}</table>
<p>Total: {{ ctx.total }}</p>"""

_ORDER_TEXT = """Thank you, {{ ctx.firstName }}!
Your order {{ ctx.orderId }} is confirmed.
{% for item in ctx.items %}- {{ item.quantity }} x {{ item.name }}: {{ item.price }}
{% endfor %}Total: {{ ctx.total }}"""

DEMO: list[dict[str, Any]] = [
    {
        "type": {
            "name": "order_confirmation",
            "label": "Order confirmation",
            "schema": {
                "type": "object",
                "required": ["orderId"],
                "properties": {
                    "firstName": {"type": "string"},
                    "orderId": {"type": "string"},
                    "total": {"type": "string"},
                    "items": {"type": "array", "items": {"type": "object"}},
                },
            },
            "sample": {
                "firstName": "Ada",
                "orderId": "A-1042",
                "total": "€42.00",
                "items": [{"name": "Notebook", "quantity": 2, "price": "€21.00"}],
            },
        },
        "email": {
            "from": SENDER,
            "subject": "Your order {{ ctx.orderId }} is confirmed",
            "html": _ORDER_HTML,
            "text": _ORDER_TEXT,
        },
    },
    {
        "type": {
            "name": "password_reset",
            "label": "Password reset",
            "schema": {
                "type": "object",
                "required": ["resetUrl"],
                "properties": {"firstName": {"type": "string"}, "resetUrl": {"type": "string"}},
            },
            "sample": {"firstName": "Ada", "resetUrl": "https://shop.example.com/reset?token=demo"},
        },
        "email": {
            "from": SENDER,
            "subject": "Reset your password",
            "html": '<p>Hello {{ ctx.firstName }},</p><p><a href="{{ ctx.resetUrl }}">Choose a new password</a>. '
            "The link works for one hour.</p>",
            "text": "Hello {{ ctx.firstName }},\nChoose a new password: {{ ctx.resetUrl }}\n"
            "The link works for one hour.",
        },
    },
    {
        "type": {
            "name": "cart_abandonment",
            "label": "Cart abandonment",
            "sample": {"firstName": "Ada", "cartUrl": "https://shop.example.com/cart", "itemCount": 3},
        },
        "email": {
            "from": SENDER,
            "subject": "{{ ctx.firstName | default: 'Hello' }}, your cart is waiting",
            "html": '<p>You left {{ ctx.itemCount }} items in <a href="{{ ctx.cartUrl }}">your cart</a>.</p>',
            "text": "You left {{ ctx.itemCount }} items in your cart: {{ ctx.cartUrl }}",
        },
    },
]


async def load_demo_data(session: AsyncSession) -> bool:
    """Loads once per database; returns whether it did."""
    if await get_meta(session, "demo_loaded"):
        return False
    for entry in DEMO:
        event_type = EventTypeIn.model_validate(entry["type"])
        await create_event_type(session, event_type)
        template = await create_template(
            session,
            TemplateIn(
                name=event_type.label,
                event_type=event_type.name,
                channel="email",
                email=EmailContent.model_validate(entry["email"]),
            ),
            actor="demo",
        )
        await publish_template(session, template.id, actor="demo")
    await set_meta(session, "demo_loaded", "1")
    return True
