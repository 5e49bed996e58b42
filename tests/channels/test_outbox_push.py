"""The outbox captures push notifications as it does emails and SMS, and shows them: the title as the subject,
the body as the text, the rest (platform, data, badge, sound) under ``push``."""

from __future__ import annotations

import httpx

from envoi.channels.base import Sent
from envoi.channels.outbox import OutboxChannel
from envoi.channels.push import PushMessage
from envoi.runtime import Runtime

TOKEN = "a3" * 32  # an APNs device token: 32 bytes, in hex


async def test_a_push_notification_is_captured_whole(api: httpx.AsyncClient, runtime: Runtime) -> None:
    message = PushMessage(
        ref=1,
        token=TOKEN,
        platform="ios",
        body="Parcel XK-1 left today",
        title="Parcel XK-1",
        data={"url": "/parcels/XK-1"},
        badge=2,
        sound="chime.caf",
    )
    [outcome] = await OutboxChannel(runtime.sessionmaker).send_many([message])
    assert isinstance(outcome, Sent) and outcome.provider_id and outcome.provider_id.startswith("outbox-")
    [captured] = (await api.get("/api/v1/outbox", params={"to": TOKEN})).json()
    assert (captured["channel"], captured["to"], captured["from"]) == ("push", TOKEN, "")
    assert (captured["subject"], captured["text"], captured["html"]) == ("Parcel XK-1", "Parcel XK-1 left today", None)
    assert captured["encoding"] is None and captured["attachments"] == []
    assert captured["push"] == {"platform": "ios", "data": {"url": "/parcels/XK-1"}, "badge": 2, "sound": "chime.caf"}
