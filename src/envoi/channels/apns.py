"""Push to Apple devices through APNs: HTTP/2 with token authentication (an ES256 JWT signed with the .p8 key).

One HTTP/2 connection carries every request (httpx multiplexes them as streams). The provider token is signed
once and reused for ~50 minutes: Apple refuses one older than an hour, and refreshing more often than every 20
minutes (TooManyProviderTokenUpdates).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from envoi.channels.base import Failed, InvalidAddress, Outcome, Retry, Sent
from envoi.channels.push import PushMessage
from envoi.outbound import retry_after_seconds

log = structlog.get_logger(__name__)

TOKEN_LIFETIME = 50 * 60  # seconds: renewed well before Apple's hour, and never within its 20 minutes
_DEVICE_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){16,256}")
_BAD_ADDRESS = {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"}
_STALE_TOKEN = {"ExpiredProviderToken", "InvalidProviderToken"}


class ApnsSettings(BaseModel):
    """The app's APNs signing key and where APNs is; the key is a SecretStr, masked when shown."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    team_id: str = Field(pattern=r"^[A-Z0-9]{10}$", description="The Apple developer team id: the token's issuer.")
    key_id: str = Field(pattern=r"^[A-Z0-9]{10}$", description="The id of the .p8 signing key, from Apple.")
    private_key: SecretStr = Field(description="The .p8 signing key's content (PEM, EC P-256).")
    topic: str = Field(min_length=1, description="The app's bundle id (apns-topic).")
    url: str = Field(
        "https://api.push.apple.com",
        pattern=r"^https://",
        description="APNs: https://api.sandbox.push.apple.com for development builds.",
    )
    ca_file: Path | None = Field(None, description="A CA to trust besides the system's (tests).")
    timeout: float = Field(10.0, gt=0, description="Seconds to connect, and to wait for each answer.")
    concurrency: int = Field(100, ge=1, le=1000, description="Requests in flight at once.")

    @field_validator("private_key")
    @classmethod
    def _p256_key(cls, value: SecretStr) -> SecretStr:
        try:
            key = load_pem_private_key(value.get_secret_value().encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError("private_key is not a PEM private key (the .p8 file's content)") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("private_key must be an EC P-256 key, as Apple issues for APNs")
        return value


@dataclass(frozen=True, slots=True)
class _ProviderToken:
    value: str
    issued_at: float  # time.monotonic()


class ApnsChannel:
    """Sends each message as one HTTP/2 request to ``{url}/3/device/{token}``."""

    name = "apns"

    def __init__(self, settings: ApnsSettings):
        self.settings = settings
        self._url = settings.url.rstrip("/")
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if settings.ca_file is not None:  # as for SMTP: the system store plus the extra CA file
            context.load_verify_locations(cafile=str(settings.ca_file))
        self._client = httpx.AsyncClient(
            http1=False, http2=True, verify=context, timeout=settings.timeout, follow_redirects=False
        )
        self._in_flight = asyncio.Semaphore(settings.concurrency)
        self._token: _ProviderToken | None = None

    async def send_many(self, messages: Sequence[PushMessage]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._send(message) for message in messages)))

    async def _send(self, message: PushMessage) -> Outcome:
        if not _DEVICE_TOKEN.fullmatch(message.token):
            return InvalidAddress("an APNs device token is hexadecimal (64 digits or more)")
        token = self._provider_token()
        headers = {
            "authorization": f"bearer {token.value}",
            "apns-topic": self.settings.topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
        }
        try:
            async with self._in_flight:
                response = await self._client.post(
                    f"{self._url}/3/device/{message.token.lower()}", headers=headers, content=_payload(message)
                )
        except httpx.TransportError as error:
            return Retry(f"APNs unreachable or not answering: {str(error) or type(error).__name__}")
        except Exception as error:  # a send must never raise: the rest of the batch was sent already
            log.exception("push.apns_send_failed", ref=message.ref)
            return Retry(f"APNs: {type(error).__name__}")
        if response.status_code == 200:
            return Sent(response.headers.get("apns-id"))
        return self._refused(message, response, token)

    def _refused(self, message: PushMessage, response: httpx.Response, token: _ProviderToken) -> Outcome:
        status, reason = response.status_code, _reason(response)
        log.warning("push.apns_refused", ref=message.ref, status=status, reason=reason)
        if reason in _BAD_ADDRESS or status == 410:
            return InvalidAddress(f"APNs: {reason} ({status})")
        if status == 403:  # our credentials, never the device's fault
            if reason in _STALE_TOKEN and self._token is token:
                self._token = None  # the next request signs a new one
                log.warning("push.apns_token_dropped", reason=reason, key_id=self.settings.key_id)
            return Retry(f"APNs refused our credentials: {reason} (403); check team_id, key_id and the key")
        if status == 429 or status >= 500:
            return Retry(f"APNs: {reason} ({status})", retry_after_seconds(response.headers.get("retry-after")))
        return Failed(f"APNs: {reason} ({status})")

    def _provider_token(self) -> _ProviderToken:
        token = self._token
        if token is None or time.monotonic() - token.issued_at >= TOKEN_LIFETIME:
            settings = self.settings
            value = jwt.encode(
                {"iss": settings.team_id, "iat": int(time.time())},
                settings.private_key.get_secret_value(),
                algorithm="ES256",
                headers={"kid": settings.key_id},
            )
            token = self._token = _ProviderToken(value, time.monotonic())
            log.info("push.apns_token_signed", key_id=settings.key_id)
        return token

    async def aclose(self) -> None:
        await self._client.aclose()


def _payload(message: PushMessage) -> bytes:
    alert = {"body": message.body} if message.title is None else {"title": message.title, "body": message.body}
    aps: dict[str, Any] = {"alert": alert}
    if message.badge is not None:
        aps["badge"] = message.badge
    if message.sound is not None:
        aps["sound"] = message.sound
    return json.dumps({**message.data, "aps": aps}, separators=(",", ":"), ensure_ascii=False).encode()


def _reason(response: httpx.Response) -> str:
    """Apple's reason word from the JSON body (``{"reason": "BadDeviceToken"}``), else the status."""
    try:
        reason = response.json().get("reason")
    except (ValueError, AttributeError):
        reason = None
    return str(reason)[:100] if reason else f"HTTP {response.status_code}"
