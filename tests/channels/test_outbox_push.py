"""The outbox captures push notifications as it does emails and SMS, and shows them."""

from __future__ import annotations

import httpx

from envoi.channels.base import Sent
from envoi.channels.outbox import OutboxChannel
from envoi.channels.push import PushMessage
from envoi.runtime import Runtime

TOKEN = "a3" * 32  # an APNs device token: 32 bytes, in hex


async def test_a_push_notification_is_captured_with_its_title_and_body(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    message = PushMessage(ref=1, token=TOKEN, platform="ios", body="Parcel XK-1 left today", title="Parcel XK-1")
    [outcome] = await OutboxChannel(runtime.sessionmaker).send_many([message])
    assert isinstance(outcome, Sent) and outcome.provider_id and outcome.provider_id.startswith("outbox-")
    [captured] = (await api.get("/api/v1/outbox", params={"to": TOKEN})).json()
    assert (captured["channel"], captured["to"], captured["from"]) == ("push", TOKEN, "")
    assert (captured["subject"], captured["text"], captured["html"]) == ("Parcel XK-1", "Parcel XK-1 left today", None)
    assert captured["encoding"] is None and captured["attachments"] == []
