"""What the benchmark sends: one event type, a realistic order email, and events numbered by ``seq``."""

from __future__ import annotations

from typing import Any

EVENT_TYPE = "bench_order"

TEMPLATE = {
    "name": "Bench order",
    "eventType": EVENT_TYPE,
    "channel": "email",
    "email": {
        "from": "Bench Shop <shop@bench.example>",
        "replyTo": "help@bench.example",
        "subject": "Bench {{ ctx.seq }}",
        "html": (
            "<html><body><h1>Thank you {{ ctx.firstName }}!</h1>"
            "<p>Your order <b>{{ ctx.orderId }}</b> is confirmed.</p><table>"
            "{% for item in ctx.items %}<tr><td>{{ item.name }}</td><td>{{ item.qty }}</td>"
            "<td>{{ item.price }}</td></tr>{% endfor %}</table>"
            "<p>Total: {{ ctx.total }}</p><p>See you soon at Bench Shop.</p></body></html>"
        ),
        "text": (
            "Thank you {{ ctx.firstName }}!\nYour order {{ ctx.orderId }} is confirmed.\n"
            "{% for item in ctx.items %}- {{ item.qty }} x {{ item.name }}: {{ item.price }}\n{% endfor %}"
            "Total: {{ ctx.total }}\n"
        ),
    },
}


def event(seq: int) -> dict[str, Any]:
    return {
        "type": EVENT_TYPE,
        "email": f"customer{seq}@bench.example",
        "externalId": f"cust-{seq}",
        "ctx": {
            "seq": seq,
            "firstName": "Ada",
            "orderId": f"A-{seq}",
            "total": "€64.50",
            "items": [
                {"name": "Notebook", "qty": 2, "price": "€21.00"},
                {"name": "Fountain pen", "qty": 1, "price": "€18.50"},
                {"name": "Ink", "qty": 2, "price": "€2.00"},
            ],
        },
    }
