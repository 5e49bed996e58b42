"""The kinds of provider Envoi can send through, each a channel plugin with its own settings model.

Plugins are imported when a provider of their kind is first configured, so a process that sends no push
notifications never loads the push libraries.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from envoi.channels.base import Channel, ReceiptHandler


@dataclass(frozen=True)
class Kind:
    name: str
    channel: str  # email, sms or push
    platform: str | None  # push: the devices it reaches
    plugin: str  # "module:SettingsClass:ChannelClass"
    description: str
    receipts: bool = False  # the channel takes an ``on_receipt`` handler
    url_scheme: str | None = None  # the settings can be given as one URL

    @property
    def slot(self) -> str:
        """What a default or backup provider is chosen for: a channel, or a push platform."""
        return f"{self.channel}.{self.platform}" if self.platform else self.channel

    def _classes(self) -> tuple[type[BaseModel], Any]:
        module_name, settings_name, channel_name = self.plugin.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, settings_name), getattr(module, channel_name)

    def settings_model(self) -> type[BaseModel]:
        return self._classes()[0]

    def parse(self, data: Mapping[str, Any]) -> BaseModel:
        """The settings from their fields, or from ``url`` plus fields that override it (SMTP, SMPP).

        Raises pydantic's ValidationError or ValueError naming what is wrong (never echoing a URL)."""
        model = self.settings_model()
        fields = dict(data)
        url = fields.pop("url", None) if self.url_scheme else None  # APNs and FCM have a url field of their own
        if url is not None:
            fields = model.from_url(str(url)).model_dump() | fields  # type: ignore[attr-defined]
        return model.model_validate(fields)

    def build(self, settings: BaseModel, on_receipt: ReceiptHandler | None) -> Channel[Any]:
        channel_class = self._classes()[1]
        if self.receipts:
            return channel_class(settings, on_receipt=on_receipt)  # type: ignore[no-any-return]
        return channel_class(settings)  # type: ignore[no-any-return]


KINDS = {
    kind.name: kind
    for kind in (
        Kind(
            "smtp", "email", None, "envoi.channels.smtp:SmtpSettings:SmtpChannel",
            "An SMTP relay (smtp://, STARTTLS, smtps://).", url_scheme="smtp",
        ),
        Kind(
            "smpp", "sms", None, "envoi.channels.smpp:SmppSettings:SmppChannel",
            "An SMSC over SMPP 3.4, with delivery receipts.", receipts=True, url_scheme="smpp",
        ),
        Kind(
            "kannel", "sms", None, "envoi.channels.kannel:KannelSettings:KannelChannel",
            "A Kannel gateway's sendsms interface, with delivery reports.",
        ),
        Kind(
            "apns", "push", "ios", "envoi.channels.apns:ApnsSettings:ApnsChannel",
            "Apple Push Notification service (HTTP/2, token auth).",
        ),
        Kind(
            "fcm", "push", "android", "envoi.channels.fcm:FcmSettings:FcmChannel",
            "Firebase Cloud Messaging HTTP v1 (service account).",
        ),
        Kind(
            "webpush", "push", "web", "envoi.channels.webpush:WebPushSettings:WebPushChannel",
            "Web Push to browsers (VAPID).",
        ),
    )
}  # fmt: skip

SLOTS = ("email", "sms", "push.ios", "push.android", "push.web")
ROLES = ("default", "backup")
