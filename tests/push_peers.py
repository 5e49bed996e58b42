"""Local push services on 127.0.0.1 for tests: APNs, FCM and a Web Push service, each a small ASGI app served by
hypercorn over TLS (a throwaway CA), checking credentials as the real ones do and recording what they accepted.

Every peer: ``await peer.start()`` / ``await peer.stop()``; ``peer.unregister(token)`` makes an address dead;
``peer.fail_next(n, status, retry_after)`` answers the next n sends with a temporary error; ``peer.received`` holds
what was accepted, read back into one shape (title, body, data, badge, sound) whatever the protocol;
``peer.connections`` the client connections that sent requests, ``peer.http_versions`` the HTTP versions used.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import http_ece
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.processes import free_port

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_FCM_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
_FCM_STATUS |= {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_FCM_CODE = {429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_APNS_REASON = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}


@dataclass(frozen=True)
class Received:
    """One accepted push. ``token`` is the address as the channel was given it; ``id`` what the peer answered."""

    token: str
    id: str
    body: str
    title: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    badge: int | None = None
    sound: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    payload: Any = None  # as the protocol carried it (JSON), for the protocol's own checks


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None


class HttpsPeer:
    """The server half every peer shares: hypercorn on a free port, scripted failures, records."""

    def __init__(self, certificates: tuple[Path, Path, Path], *, http2_only: bool = False) -> None:
        _ca, cert, key = certificates
        self.port = free_port()
        self.config = Config()
        self.config.bind = [f"127.0.0.1:{self.port}"]
        self.config.certfile, self.config.keyfile = str(cert), str(key)
        self.config.alpn_protocols = ["h2"] if http2_only else ["h2", "http/1.1"]
        self.config.h2_max_concurrent_streams = 1000
        self.config.graceful_timeout = 1.0
        self.config.keep_alive_max_requests = 1_000_000  # hypercorn drops a connection after 1,000 by default
        self.config.loglevel = "WARNING"
        self.http2_only = http2_only
        self.received: list[Received] = []
        self.connections: set[tuple[str, int]] = set()
        self.http_versions: set[str] = set()
        self.requests = 0
        self.unregistered: set[str] = set()
        self._failures: deque[_Failure] = deque()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(serve(self._app, self.config, shutdown_trigger=self._stopping.wait))
        for _ in range(200):
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the peer never listened on port {self.port}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)

    def unregister(self, token: str) -> None:
        self.unregistered.add(token)

    def fail_next(self, n: int, status: int = 503, retry_after: str | None = None) -> None:
        """The next n sends (after their credentials are checked) are answered with ``status``."""
        self._failures.extend([_Failure(status, retry_after)] * n)

    def _scripted(self) -> _Failure | None:
        return self._failures.popleft() if self._failures else None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.requests += 1
        self.connections.add(tuple(scope["client"]))
        self.http_versions.add(scope["http_version"])
        if self.http2_only and scope["http_version"] != "2":
            response: Response = Response(status_code=505)
        else:
            request = Request(scope, receive)
            await request.body()  # read whole first: hypercorn's HTTP/2 fails on data for a stream it answered
            response = await self.answer(request)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        raise NotImplementedError


class ApnsPeer(HttpsPeer):
    """APNs: ``POST /3/device/<hex token>`` over HTTP/2 only, with a provider token (ES256 JWT) it verifies.

    ``expire_provider_tokens()`` refuses every token seen so far as ExpiredProviderToken, as Apple does after an hour.
    """

    def __init__(
        self,
        certificates: tuple[Path, Path, Path],
        *,
        public_key: ec.EllipticCurvePublicKey,
        team_id: str,
        key_id: str,
        topic: str,
    ) -> None:
        super().__init__(certificates, http2_only=True)
        self.public_key, self.team_id, self.key_id, self.topic = public_key, team_id, key_id, topic
        self.provider_tokens: list[str] = []
        self.expired: set[str] = set()

    def expire_provider_tokens(self) -> None:
        self.expired.update(self.provider_tokens)

    async def answer(self, request: Request) -> Response:
        found = re.fullmatch(r"/3/device/([^/]+)", request.url.path)
        if request.method != "POST" or not found:
            return _apns(405 if found else 404, "MethodNotAllowed" if found else "BadPath")
        refused = self._refused_credentials(request.headers.get("authorization", ""))
        if refused:
            return _apns(403, refused)
        failure = self._scripted()
        if failure is not None:
            return _apns(failure.status, _APNS_REASON.get(failure.status, "BadRequest"), failure.retry_after)
        if request.headers.get("apns-topic") != self.topic:
            return _apns(400, "DeviceTokenNotForTopic" if request.headers.get("apns-topic") else "MissingTopic")
        device = found.group(1)
        if not re.fullmatch(r"[0-9a-f]{64,}", device):
            return _apns(400, "BadDeviceToken")
        if device in self.unregistered:
            return _apns(410, "Unregistered", timestamp=int(time.time() * 1000))
        body = await request.body()
        if len(body) > 4096:
            return _apns(413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
            aps = payload["aps"]
        except (ValueError, KeyError, TypeError):
            return _apns(400, "BadPayload")
        apns_id = str(uuid.uuid4()).upper()
        alert = aps.get("alert") or {}
        data = {k: v for k, v in payload.items() if k != "aps"}
        self.received.append(
            Received(
                token=device,
                id=apns_id,
                body=alert.get("body"),
                title=alert.get("title"),
                data=data,
                badge=aps.get("badge"),
                sound=aps.get("sound"),
                headers=dict(request.headers),
                payload=payload,
            )
        )
        return Response(status_code=200, headers={"apns-id": apns_id})

    def _refused_credentials(self, authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "MissingProviderToken"
        self.provider_tokens.append(token)
        if token in self.expired:
            return "ExpiredProviderToken"
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]})
        except jwt.InvalidTokenError:
            return "InvalidProviderToken"
        if header.get("kid") != self.key_id or claims["iss"] != self.team_id:
            return "InvalidProviderToken"
        if claims["iat"] < time.time() - 3600:
            return "ExpiredProviderToken"
        return None


def _apns(status: int, reason: str, retry_after: str | None = None, **extra: Any) -> Response:
    headers = {"retry-after": retry_after} if retry_after else {}
    return JSONResponse({"reason": reason, **extra}, status_code=status, headers=headers)


class FcmPeer(HttpsPeer):
    """FCM HTTP v1 and Google's token endpoint (``/token``), which verifies the RS256 assertion it is given.

    ``expires_in`` sets the lifetime of the access tokens it issues; ``revoke_access_tokens()`` makes every token
    issued so far unknown; ``refuse_credentials`` makes the token endpoint answer invalid_grant;
    ``other_sender`` holds tokens of another Firebase project (SENDER_ID_MISMATCH).
    """

    def __init__(
        self,
        certificates: tuple[Path, Path, Path],
        *,
        public_key: rsa.RSAPublicKey,
        client_email: str,
        project_id: str,
    ) -> None:
        super().__init__(certificates)
        self.public_key, self.client_email, self.project_id = public_key, client_email, project_id
        self.expires_in = 3600
        self.refuse_credentials = False
        self.grants = 0
        self.other_sender: set[str] = set()
        self._access_tokens: dict[str, float] = {}
        self._ids = itertools.count(1)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def revoke_access_tokens(self) -> None:
        self._access_tokens.clear()

    async def answer(self, request: Request) -> Response:
        if request.url.path == "/token" and request.method == "POST":
            return self._grant(parse_qs((await request.body()).decode()))
        found = re.fullmatch(r"/v1/projects/([^/]+)/messages:send", request.url.path)
        if request.method != "POST" or not found:
            return _fcm(404, "NOT_FOUND", "Not found")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or self._access_tokens.get(token, 0) < time.time():
            return _fcm(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", code=None)
        if found.group(1) != self.project_id:
            return _fcm(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied", code=None)
        failure = self._scripted()
        if failure is not None:
            status = failure.status
            return _fcm(
                status, _FCM_STATUS.get(status, "UNKNOWN"), "Scripted", _FCM_CODE.get(status), failure.retry_after
            )
        body = await request.body()
        message = json.loads(body)["message"]
        device = message.get("token", "")
        if not re.fullmatch(r"[\w:-]{20,}", device):
            return _fcm(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
        if device in self.unregistered:
            return _fcm(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        if device in self.other_sender:
            return _fcm(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
        if len(body) > 4096:
            return _fcm(400, "INVALID_ARGUMENT", "Android message is too big")
        name = f"projects/{self.project_id}/messages/0:{next(self._ids)}"
        notification = message.get("notification") or {}
        aps = ((message.get("apns") or {}).get("payload") or {}).get("aps") or {}
        self.received.append(
            Received(
                token=device,
                id=name,
                body=notification.get("body"),
                title=notification.get("title"),
                data=message.get("data") or {},
                badge=aps.get("badge"),
                sound=aps.get("sound"),
                headers=dict(request.headers),
                payload=message,
            )
        )
        return JSONResponse({"name": name})

    def _grant(self, form: dict[str, list[str]]) -> Response:
        refused = JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400)
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"] or self.refuse_credentials:
            return refused
        try:
            claims = jwt.decode(
                form.get("assertion", [""])[0],
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.InvalidTokenError:
            return refused
        if claims["iss"] != self.client_email or FCM_SCOPE not in claims["scope"].split():
            return refused
        if claims["exp"] - claims["iat"] > 3600:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT: expiry too far"}, 400)
        self.grants += 1
        token = f"ya29.{secrets.token_urlsafe(32)}"
        self._access_tokens[token] = time.time() + self.expires_in
        return JSONResponse({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"})


def _fcm(status: int, state: str, message: str, code: str | None = "", retry_after: str | None = None) -> Response:
    """An FCM error: ``{"error": {code, message, status, details: [FcmError errorCode]}}``; code "" is the state."""
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if code is not None:
        error["details"] = [{"@type": _FCM_ERROR, "errorCode": code or state}]
    headers = {"retry-after": retry_after} if retry_after else {}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


@dataclass(frozen=True)
class _Subscription:
    token: str  # the subscription's JSON, as the browser gives it
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes


class WebPushPeer(HttpsPeer):
    """A push service: ``POST /push/<id>`` with a VAPID Authorization it verifies and an aes128gcm body it decrypts.

    In life the push service cannot read the payload (the browser decrypts it); this one holds the browser's keys
    so a test can prove the encryption is right. A subscription made for an ``application_server_key`` (the VAPID
    public key, raw) refuses pushes signed with another key (403), as browsers' push services do.
    """

    def __init__(self, certificates: tuple[Path, Path, Path]) -> None:
        super().__init__(certificates)
        self._subscriptions: dict[str, _Subscription] = {}
        self._vapid_keys: dict[str, bytes | None] = {}
        self._ids = itertools.count(1)

    def subscribe(
        self,
        browser_key: ec.EllipticCurvePrivateKey,
        auth: bytes,
        application_server_key: bytes | None = None,
        url: str | None = None,
    ) -> str:
        """The subscription JSON a browser would give for its key pair and auth secret."""
        name = uuid.uuid4().hex
        point = browser_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        endpoint = f"{url or self.url}/push/{name}"
        token = json.dumps({"endpoint": endpoint, "keys": {"p256dh": _b64(point), "auth": _b64(auth)}})
        self._subscriptions[name] = _Subscription(token, browser_key, auth)
        self._vapid_keys[name] = application_server_key
        return token

    def unregister(self, token: str) -> None:
        self.unregistered.add(json.loads(token)["endpoint"].rsplit("/", 1)[1])

    async def answer(self, request: Request) -> Response:
        found = re.fullmatch(r"/push/(\w+)", request.url.path)
        subscription = self._subscriptions.get(found.group(1)) if found else None
        if request.method != "POST" or found is None or subscription is None:
            return Response("no such subscription", 404)
        if found.group(1) in self.unregistered:
            return Response("subscription expired", 410)
        refused = self._refused_vapid(request.headers.get("authorization", ""), self._vapid_keys[found.group(1)])
        if refused is not None:
            return refused
        failure = self._scripted()
        if failure is not None:
            headers = {"retry-after": failure.retry_after} if failure.retry_after else {}
            return Response("scripted", failure.status, headers=headers)
        if not request.headers.get("ttl", "").isdigit() or request.headers.get("content-encoding") != "aes128gcm":
            return Response("TTL and Content-Encoding: aes128gcm are required", 400)
        body = await request.body()
        if len(body) > 4096:
            return Response("payload too large", 413)
        try:
            plain = http_ece.decrypt(body, private_key=subscription.private_key, auth_secret=subscription.auth)
            payload = json.loads(plain)
        except Exception:  # what a browser would drop: the payload was not encrypted for it
            return Response("cannot decrypt", 400)
        name = f"{self.url}/message/{next(self._ids)}"
        self.received.append(
            Received(
                token=subscription.token,
                id=name,
                body=payload.get("body"),
                title=payload.get("title"),
                data=payload.get("data") or {},
                badge=payload.get("badge"),
                sound=payload.get("sound"),
                headers=dict(request.headers),
                payload=payload,
            )
        )
        return Response(status_code=201, headers={"location": name})

    def _refused_vapid(self, authorization: str, expected_key: bytes | None) -> Response | None:
        scheme, _, params = authorization.partition(" ")
        values = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
        if scheme.lower() != "vapid" or "t" not in values or "k" not in values:
            return Response("VAPID authorization required", 401)
        try:
            raw_key = base64.urlsafe_b64decode(values["k"] + "==")
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw_key)
            claims = jwt.decode(
                values["t"], public_key, algorithms=["ES256"], audience=self.url, options={"require": ["exp", "sub"]}
            )
        except (ValueError, jwt.InvalidTokenError):
            return Response("invalid VAPID token", 401)
        if claims["exp"] > time.time() + 86400 or not re.match(r"(mailto:|https://)", claims["sub"]):
            return Response("VAPID claims out of bounds", 401)
        if expected_key is not None and raw_key != expected_key:
            return Response("VAPID key does not match the subscription's", 403)
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
