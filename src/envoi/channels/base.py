"""The channel protocol and the outcome type every provider returns."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from envoi.channels.sms import SmsMessage

_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\]')


def media_type(value: str | None) -> str | None:
    """A bare media type such as ``application/pdf`` (parameters dropped), or None if it is not one."""
    found = (value or "").split(";", 1)[0].strip().lower()
    return found if _MEDIA_TYPE.fullmatch(found) else None


def safe_filename(name: str) -> str:
    """A file's own name, which cannot break out of a header or a folder: the last path segment, without
    control characters, quotes or backslashes, at most 255 characters (keeping the extension)."""
    name = _UNSAFE_FILENAME.sub("", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        return "attachment"
    if len(name) > 255:
        root, dot, extension = name.rpartition(".")
        keep = f"{dot}{extension}" if root and len(extension) <= 16 else ""
        name = name[: 255 - len(keep)] + keep
    return name


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with an email. The name and media type are made safe for headers when it is built."""

    filename: str
    content_type: str
    data: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "filename", safe_filename(self.filename))
        object.__setattr__(self, "content_type", media_type(self.content_type) or "application/octet-stream")


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
    return_path: str | None = None  # the envelope sender (MAIL FROM) when it is not From's address: VERP


@dataclass(frozen=True, slots=True)
class Sent:
    """The provider accepted the message; ``provider_id`` is its reference, when it gives one. ``provider`` is
    the name of the configured provider that took it (set by the routing, not by the plugin)."""

    provider_id: str | None
    provider: str | None = None


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


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the network said later about a sent message (an SMS delivery receipt, a bounce...)."""

    provider_id: str
    delivered: bool
    status: str  # the provider's own word: DELIVRD, UNDELIV, EXPIRED...


ReceiptHandler = Callable[[Receipt], Awaitable[None]]


M_contra = TypeVar("M_contra", contravariant=True)


class Channel(Protocol[M_contra]):
    """What the worker needs from a provider of a channel."""

    name: str

    async def send_many(self, messages: Sequence[M_contra]) -> list[Outcome]:
        """Send each message; return one outcome per message, in order. Never raises for a send failure."""
        ...

    async def aclose(self) -> None: ...


EmailChannel = Channel[EmailMessage]
SmsChannel = Channel[SmsMessage]
