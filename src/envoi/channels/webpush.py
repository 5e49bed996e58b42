"""Push to browsers with Web Push (RFC 8030): VAPID identifies us (RFC 8292), aes128gcm encrypts (RFC 8291).

pywebpush encrypts the payload for the subscription's keys; the VAPID JWT is signed with PyJWT (py_vapid refuses
an IPv6 origin as audience). The request goes through our own asynchronous client (pywebpush's sender is
synchronous), guarded against SSRF by ``outbound.py``'s network backend: a subscription's endpoint is chosen by
whoever subscribed, so only https to public addresses is allowed.

The service worker receives JSON: ``{"title", "body", "data", "badge", "sound"}``, each only when set.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpcore
import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pywebpush import WebPusher, WebPushException

from envoi.channels.base import Failed, InvalidAddress, Outcome, Retry, Sent
from envoi.channels.push import PushMessage
from envoi.outbound import GuardedBackend, OutboundRefused, OutboundUnavailable, retry_after_seconds

log = structlog.get_logger(__name__)

_VAPID_LIFETIME = 12 * 3600  # the JWT's exp: RFC 8292 allows at most 24 hours
_VAPID_REUSE = 3600  # a signed header is reused this long, for every endpoint of one push service
_MAX_AUDIENCES = 1000
_MAX_ANSWER = 16_384  # bytes of a push service's answer kept; the endpoint is not ours to trust


class WebPushSettings(BaseModel):
    """Our VAPID identity and how messages are queued; the private key is a SecretStr, masked when shown."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    vapid_private_key: SecretStr = Field(
        description="The VAPID key (EC P-256): PEM, or the raw 32 bytes in base64url as web-push tools print it."
    )
    vapid_subject: str = Field(
        pattern=r"^(mailto:\S+@\S+|https://\S+)$",
        description="Who to contact about our pushes: a mailto: address or an https URL.",
    )
    ttl: int = Field(86_400, ge=0, le=2_419_200, description="Seconds a push service keeps an undelivered message.")
    urgency: Literal["very-low", "low", "normal", "high"] = Field("normal", description="A hint for battery use.")
    allow_private_networks: bool = Field(
        False, description="Deliver to endpoints on private, loopback or link-local addresses (tests only)."
    )
    ca_file: Path | None = Field(None, description="A CA to trust besides the system's (tests).")
    timeout: float = Field(10.0, gt=0, description="Seconds for each request, answer included.")
    concurrency: int = Field(100, ge=1, le=1000, description="Requests in flight at once.")

    @field_validator("vapid_private_key")
    @classmethod
    def _p256_key(cls, value: SecretStr) -> SecretStr:
        vapid_key(value)
        return value


def vapid_key(private_key: SecretStr) -> ec.EllipticCurvePrivateKey:
    """The VAPID key from PEM or raw base64url (32 bytes); ValueError, which never quotes the key, if it is neither."""
    text = private_key.get_secret_value().strip()
    key: object = None
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_private_key(text.encode(), password=None)
        else:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            key = ec.derive_private_key(int.from_bytes(raw), ec.SECP256R1()) if len(raw) == 32 else None
    except (ValueError, TypeError):
        pass
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("vapid_private_key must be an EC P-256 private key: PEM, or 32 bytes in base64url")
    return key


class WebPushChannel:
    """Encrypts each message for its subscription and POSTs it to the subscription's endpoint."""

    name = "webpush"

    def __init__(self, settings: WebPushSettings):
        self.settings = settings
        self._vapid = vapid_key(settings.vapid_private_key)
        public = self._vapid.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        self._vapid_public = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
        self._headers: dict[str, tuple[bytes, float]] = {}  # audience -> (Authorization, reuse until)
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if settings.ca_file is not None:  # as for SMTP: the system store plus the extra CA file
            context.load_verify_locations(cafile=str(settings.ca_file))
        backend = GuardedBackend(allow_private=settings.allow_private_networks, allowed_networks=())
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=settings.concurrency,
            http2=True,
            network_backend=backend,
            retries=0,
        )
        self._in_flight = asyncio.Semaphore(settings.concurrency)

    async def send_many(self, messages: Sequence[PushMessage]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._send(message) for message in messages)))

    async def _send(self, message: PushMessage) -> Outcome:
        subscription = _subscription(message.token)
        if isinstance(subscription, InvalidAddress):
            return subscription
        endpoint = httpx.URL(subscription["endpoint"])
        try:
            body = WebPusher(subscription).encode(_payload(message), content_encoding="aes128gcm")["body"]
        except (WebPushException, ValueError, TypeError):  # keys that are not a P-256 point and a secret
            return InvalidAddress("the subscription's keys cannot encrypt a message")
        try:
            async with self._in_flight, asyncio.timeout(self.settings.timeout):
                status, headers, answer = await self._post(endpoint, body)
        except OutboundRefused as refused:
            return InvalidAddress(f"Web Push endpoint refused: {refused.reason}")
        except OutboundUnavailable as unavailable:
            return Retry(f"Web Push endpoint unavailable: {unavailable.reason}", unavailable.retry_after)
        except (TimeoutError, httpcore.TimeoutException):
            return Retry(f"{endpoint.host}: no answer within {self.settings.timeout:g}s")
        except (httpcore.NetworkError, httpcore.RemoteProtocolError) as error:
            return Retry(f"{endpoint.host} unreachable or not answering: {type(error).__name__}: {error}")
        except Exception as error:  # a send must never raise: the rest of the batch was sent already
            log.exception("push.webpush_send_failed", ref=message.ref, host=endpoint.host)
            return Retry(f"Web Push: {type(error).__name__}")
        if status in (200, 201, 202):
            return Sent(headers.get("location"))
        return _refused(message, endpoint, status, headers, answer)

    async def _post(self, endpoint: httpx.URL, body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        url = httpcore.URL(
            scheme=endpoint.raw_scheme, host=endpoint.raw_host, port=endpoint.port, target=endpoint.raw_path
        )
        headers = [
            (b"Host", endpoint.netloc),
            (b"Authorization", self._authorization(endpoint)),
            (b"Content-Encoding", b"aes128gcm"),
            (b"Content-Type", b"application/octet-stream"),
            (b"TTL", str(self.settings.ttl).encode()),
            (b"Urgency", self.settings.urgency.encode()),
        ]
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self.settings.timeout)
        async with self._pool.stream("POST", url, headers=headers, content=body, extensions={"timeout": timeouts}) as r:
            answer = bytearray()
            async for chunk in r.aiter_stream():
                answer += chunk[: _MAX_ANSWER - len(answer)]
                if len(answer) >= _MAX_ANSWER:
                    break  # leaving the stream closes it: the rest is never read
            found = {k.decode("latin-1").lower(): v.decode("latin-1").strip() for k, v in r.headers}
            return r.status, found, bytes(answer)

    def _authorization(self, endpoint: httpx.URL) -> bytes:
        """``vapid t=<JWT>,k=<our public key>`` for the endpoint's push service (its origin is the audience)."""
        audience = f"https://{endpoint.netloc.decode('ascii')}"
        cached = self._headers.get(audience)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        claims = {"aud": audience, "exp": int(time.time()) + _VAPID_LIFETIME, "sub": self.settings.vapid_subject}
        signed = jwt.encode(claims, self._vapid, algorithm="ES256")
        header = f"vapid t={signed},k={self._vapid_public}".encode()
        if len(self._headers) >= _MAX_AUDIENCES:  # subscribers choose the hosts: the cache must not grow without end
            self._headers.clear()
        self._headers[audience] = (header, time.monotonic() + _VAPID_REUSE)
        return header

    async def aclose(self) -> None:
        await self._pool.aclose()


def _subscription(token: str) -> dict[str, Any] | InvalidAddress:
    """The browser's PushSubscription JSON, checked: an https endpoint and both keys."""
    try:
        found = json.loads(token)
    except (json.JSONDecodeError, TypeError):
        return InvalidAddress("a Web Push subscription is the browser's JSON (endpoint and keys)")
    keys = found.get("keys") if isinstance(found, dict) else None
    if not isinstance(keys, dict) or not all(isinstance(keys.get(k), str) and keys[k] for k in ("p256dh", "auth")):
        return InvalidAddress("a Web Push subscription needs keys.p256dh and keys.auth")
    endpoint = found.get("endpoint")
    try:
        url = httpx.URL(endpoint) if isinstance(endpoint, str) else None
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme != "https" or not url.host or url.userinfo:
        return InvalidAddress("a Web Push endpoint must be an https URL")
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


def _payload(message: PushMessage) -> bytes:
    shown: dict[str, Any] = {"title": message.title, "body": message.body, "data": dict(message.data) or None}
    shown |= {"badge": message.badge, "sound": message.sound}
    return json.dumps({k: v for k, v in shown.items() if v is not None}, ensure_ascii=False).encode()


def _refused(
    message: PushMessage, endpoint: httpx.URL, status: int, headers: Mapping[str, str], answer: bytes
) -> Outcome:
    said = answer[:200].decode("utf-8", "replace").strip()
    reason = f"{endpoint.host}: HTTP {status}" + (f": {said}" if said else "")
    log.warning("push.webpush_refused", ref=message.ref, host=endpoint.host, status=status)
    if status in (404, 410):
        return InvalidAddress(f"the subscription is gone ({reason})")
    if status == 429 or status >= 500:
        return Retry(reason, retry_after_seconds(headers.get("retry-after")))
    if status == 413:
        return Failed(f"the message is too large for Web Push ({reason})")
    if status == 401:  # our VAPID signature was refused: our configuration or clock, never the subscription
        return Retry(f"the push service refused our VAPID signature; check vapid_subject and the clock ({reason})")
    if status == 403:
        return Failed(f"the subscription was made for another VAPID key than ours ({reason})")
    return Failed(reason)
