"""The channel protocol and the outcome type every provider returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with an email; ``content_type`` is a bare media type such as ``application/pdf``."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """A rendered email, ready for a provider. ``ref`` is the caller's id, used only in logs."""

    ref: int
    sender: str
    to: str
    subject: str
    html: str | None = None
    text: str | None = None
    reply_to: str | None = None
    message_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class Sent:
    """The provider accepted the message; ``provider_id`` is its reference, when it gives one."""

    provider_id: str | None


@dataclass(frozen=True, slots=True)
class Retry:
    """A temporary failure: try again, no sooner than ``after`` seconds if the provider said so."""

    reason: str
    after: float | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """Refused for good for this message; the address itself may be fine."""

    reason: str


@dataclass(frozen=True, slots=True)
class InvalidAddress:
    """The address does not exist or refuses mail: quarantine it."""

    reason: str


Outcome = Sent | Retry | Failed | InvalidAddress


class EmailChannel(Protocol):
    """What the worker needs from an email provider."""

    name: str

    async def send_many(self, messages: Sequence[EmailMessage]) -> list[Outcome]:
        """Send each message; return one outcome per message, in order. Never raises for a send failure."""
        ...

    async def aclose(self) -> None: ...
