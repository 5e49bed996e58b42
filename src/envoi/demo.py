"""Demo data loaded once into a new installation: three event types, each with a published email and a seed
address; the order confirmation also has a French variant and uses the shop's layout and footer snippet."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from envoi.campaigns.audiences import create_audience
from envoi.campaigns.profiles import create_profile
from envoi.db.meta import get_meta, set_meta
from envoi.events.schemas import EventTypeIn
from envoi.events.types import create_event_type
from envoi.templates.layouts import save_layout, save_snippet
from envoi.templates.models import Template
from envoi.templates.schemas import SeedIn, TemplateIn
from envoi.templates.seeds import save_seed
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

_LAYOUT_HTML = """<div style="font-family: sans-serif; max-width: 600px; margin: auto">
{{ content }}
<hr>
{% render 'footer' %}
</div>"""
_FOOTER = (
    '<p style="color: #888; font-size: 12px">Envoi Demo Shop · <a href="https://shop.example.com/help">Help</a></p>'
)

_ORDER_FR = {
    "subject": "Votre commande {{ ctx.orderId }} est confirmée",
    "html": """<h1>Merci, {{ ctx.firstName }} !</h1>
<p>Votre commande <strong>{{ ctx.orderId }}</strong> est confirmée.</p>
<p>Total : {{ ctx.total }}</p>""",
    "text": "Merci, {{ ctx.firstName }} !\nVotre commande {{ ctx.orderId }} est confirmée.\nTotal : {{ ctx.total }}",
}
_SEED = {"label": "Ada (demo)", "address": "ada@example.com"}

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
        "template": {
            "layout": "shop",
            "email": {
                "from": SENDER,
                "subject": "Your order {{ ctx.orderId }} is confirmed",
                "html": _ORDER_HTML,
                "text": _ORDER_TEXT,
            },
            "variants": {"fr": _ORDER_FR},
        },
        "seeds": [
            _SEED,
            {
                "label": "Amélie (fr)",
                "address": "amelie@example.com",
                "language": "fr",
                "ctx": {"firstName": "Amélie", "orderId": "A-2077", "total": "18,50 €", "items": []},
            },
        ],
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
        "template": {
            "email": {
                "from": SENDER,
                "subject": "Reset your password",
                "html": '<p>Hello {{ ctx.firstName }},</p><p><a href="{{ ctx.resetUrl }}">Choose a new password</a>. '
                "The link works for one hour.</p>",
                "text": "Hello {{ ctx.firstName }},\nChoose a new password: {{ ctx.resetUrl }}\n"
                "The link works for one hour.",
            },
        },
        "seeds": [_SEED],
    },
    {
        "type": {
            "name": "cart_abandonment",
            "label": "Cart abandonment",
            "sample": {"firstName": "Ada", "cartUrl": "https://shop.example.com/cart", "itemCount": 3},
        },
        "template": {
            "email": {
                "from": SENDER,
                "subject": "{{ ctx.firstName | default: 'Hello' }}, your cart is waiting",
                "html": '<p>You left {{ ctx.itemCount }} items in <a href="{{ ctx.cartUrl }}">your cart</a>.</p>',
                "text": "You left {{ ctx.itemCount }} items in your cart: {{ ctx.cartUrl }}",
            },
        },
        "seeds": [_SEED],
    },
]


_PROFILES = [
    {"email": f"{first.lower()}@example.com", "first_name": first, "last_name": last, "external_id": f"c-{n}"}
    for n, (first, last) in enumerate((("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing")), start=1)
]


async def load_demo_data(session: AsyncSession) -> bool:
    """Loads once per database; returns whether it did."""
    if await get_meta(session, "demo_loaded"):
        return False
    await save_snippet(session, "footer", _FOOTER)
    await save_layout(session, "shop", html=_LAYOUT_HTML, mjml=None, text="{{ content }}\n--\nEnvoi Demo Shop")
    for entry in DEMO:
        event_type = EventTypeIn.model_validate(entry["type"])
        await create_event_type(session, event_type)
        data = TemplateIn.model_validate(
            {"name": event_type.label, "eventType": event_type.name, "channel": "email", **entry["template"]}
        )
        template: Template = await create_template(session, data, actor="demo")
        for seed in entry["seeds"]:
            await save_seed(session, template, SeedIn.model_validate(seed))
        await publish_template(session, template.id, actor="demo")
    for profile in _PROFILES:  # someone to send a first marketing email to
        await create_profile(session, profile)
    await create_audience(session, name="demo_customers", label="Demo customers", filters=[], actor="demo")
    await set_meta(session, "demo_loaded", "1")
    return True
