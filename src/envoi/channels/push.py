"""A push notification, ready for a provider: Apple's APNs, Firebase Cloud Messaging or Web Push.

The platform says which provider can reach the device: ``ios`` (an APNs device token, hex), ``android`` (an FCM
registration token) or ``web`` (a Web Push subscription: the browser's JSON with ``endpoint`` and ``keys``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Platform = Literal["ios", "android", "web"]
PLATFORMS: tuple[Platform, ...] = ("ios", "android", "web")


@dataclass(frozen=True, slots=True)
class PushMessage:
    """``token`` is the device's address on its platform; ``ref`` is the caller's id, used only in logs."""

    ref: int
    token: str
    platform: Platform
    body: str
    title: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)  # delivered to the app, not shown
    badge: int | None = None
    sound: str | None = None

    @property
    def to(self) -> str:
        """The address, as messages and the quarantine record it (the same word as an email's or an SMS's)."""
        return self.token
