"""Per-message return paths (VERP): ``bounce+<event id>-<signature>@<bounce domain>``, and reading them back.

The signature is a short HMAC of the event id with the tracking secret, so nobody can make a return path that
bounces an event we did not send; it is lower-case base32 because some servers change the case of local parts.
The event id names the message: an email is the (event, "email") message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from envoi.settings import Settings
from envoi.tracking.secret import known_tracking_secret

PREFIX = "bounce"
_MAX_ID = 2**63  # ids are BIGINT
_MAC_BYTES = 10  # 80 bits: each guess costs an SMTP transaction
_RETURN_PATH = re.compile(rf"{PREFIX}\+([1-9][0-9]{{0,18}})-([a-z2-7]{{16}})")
_MESSAGE_ID = re.compile(r"<?\s*([1-9][0-9]{0,18})\.([0-9]{1,12})@([^>\s]+?)\s*>?")


@dataclass(frozen=True, slots=True)
class ReturnPath:
    """What an address of the bounce domain says: the event it names, or that its signature is wrong."""

    event_id: int
    genuine: bool


def _mac(event_id: int, secret: bytes) -> str:
    digest = hmac.new(secret, f"bounce\x00{event_id}".encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").lower()


def make_return_path(event_id: int, secret: bytes, domain: str) -> str:
    if event_id <= 0:
        raise ValueError("event ids are positive")
    return f"{PREFIX}+{event_id}-{_mac(event_id, secret)}@{domain.lower()}"


def return_path_for(settings: Settings, event_id: int) -> str | None:
    """The return path of an event's email, when bounces are set up and this process knows the secret (read
    when the process starts: see ``bounces.service.load_signing_secret``); otherwise None, the From address."""
    if not settings.bounce_domain:
        return None
    secret = known_tracking_secret(settings)
    return make_return_path(event_id, secret, settings.bounce_domain) if secret else None


def is_return_path(address: str, domain: str) -> bool:
    """A VERP address of the bounce domain, judged by its shape only (the signature is checked later)."""
    local, _, host = address.strip().strip("<>").lower().rpartition("@")
    return host == domain.lower() and _RETURN_PATH.fullmatch(local) is not None


def read_return_path(address: str, secret: bytes, domain: str) -> ReturnPath | None:
    """The event a return path names and whether we signed it; None when it is not a VERP address at all."""
    local, _, host = address.strip().strip("<>").lower().rpartition("@")
    match = _RETURN_PATH.fullmatch(local)
    if host != domain.lower() or match is None:
        return None
    event_id = int(match.group(1))
    if event_id >= _MAX_ID:
        return None
    genuine = hmac.compare_digest(match.group(2).encode("ascii"), _mac(event_id, secret).encode("ascii"))
    return ReturnPath(event_id, genuine)


def read_message_id(message_id: str, domain: str) -> tuple[int, int] | None:
    """(event id, creation time in Unix seconds) of a Message-ID Envoi wrote, ``<id.time@domain>``; or None."""
    match = _MESSAGE_ID.fullmatch(message_id.strip())
    if match is None or match.group(3).lower() != domain.lower() or int(match.group(1)) >= _MAX_ID:
        return None
    return int(match.group(1)), int(match.group(2))
