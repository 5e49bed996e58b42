"""Push through Firebase Cloud Messaging (the HTTP v1 API), authenticated as a Google service account.

The service account signs an RS256 assertion, exchanged at the token endpoint for an OAuth2 access token, which
is reused until shortly before it expires; one exchange is in flight at a time, whatever the number of sends.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from envoi.channels.base import Failed, InvalidAddress, Outcome, Retry, Sent
from envoi.channels.push import PushMessage
from envoi.outbound import retry_after_seconds

log = structlog.get_logger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_REFUSAL_MEMORY = 5.0  # seconds a refused exchange is remembered, so a batch does not ask once per message


class FcmSettings(BaseModel):
    """The Firebase project's service account; the private key is a SecretStr, masked when shown."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    project_id: str = Field(min_length=1, description="The Firebase project the app is registered in.")
    client_email: str = Field(min_length=1, description="The service account's email: the assertion's issuer.")
    private_key: SecretStr = Field(description="The service account's RSA private key (PEM).")
    private_key_id: str | None = Field(None, description="The key's id, sent as the assertion's kid.")
    token_uri: str = Field(
        "https://oauth2.googleapis.com/token", pattern=r"^https://", description="Google's OAuth2 token endpoint."
    )
    url: str = Field("https://fcm.googleapis.com", pattern=r"^https://", description="The FCM API.")
    ca_file: Path | None = Field(None, description="A CA to trust besides the system's (tests).")
    timeout: float = Field(10.0, gt=0, description="Seconds to connect, and to wait for each answer.")
    concurrency: int = Field(100, ge=1, le=1000, description="Requests in flight at once.")

    @field_validator("private_key")
    @classmethod
    def _rsa_key(cls, value: SecretStr) -> SecretStr:
        try:
            key = load_pem_private_key(value.get_secret_value().encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError("private_key is not a PEM private key (the service account's private_key)") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("private_key must be an RSA key, as Google issues for service accounts")
        return value

    @classmethod
    def from_service_account(cls, json_text: str, **overrides: Any) -> FcmSettings:
        """Settings from the service account's JSON key file, as the Google Cloud console downloads it."""
        try:
            account = json.loads(json_text)
        except json.JSONDecodeError as error:  # its message quotes no content, so never the key
            raise ValueError(f"the service account is not JSON: {error}") from None
        if not isinstance(account, dict) or account.get("type") != "service_account":
            raise ValueError('the JSON is not a service account key ("type": "service_account")')
        fields = ("project_id", "client_email", "private_key", "private_key_id", "token_uri")
        return cls.model_validate({name: account[name] for name in fields if name in account} | overrides)


@dataclass(frozen=True, slots=True)
class _AccessToken:
    value: str
    renew_at: float  # time.monotonic()


class _TokenRefused(Exception):
    """The token endpoint would not give us an access token: our configuration, or it is down."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.after = reason, after


class FcmChannel:
    """Sends each message with ``messages:send``."""

    name = "fcm"

    def __init__(self, settings: FcmSettings):
        self.settings = settings
        self._send_url = f"{settings.url.rstrip('/')}/v1/projects/{settings.project_id}/messages:send"
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if settings.ca_file is not None:  # as for SMTP: the system store plus the extra CA file
            context.load_verify_locations(cafile=str(settings.ca_file))
        self._client = httpx.AsyncClient(http2=True, verify=context, timeout=settings.timeout, follow_redirects=False)
        self._in_flight = asyncio.Semaphore(settings.concurrency)
        self._token: _AccessToken | None = None
        self._exchange: asyncio.Task[_AccessToken] | None = None
        self._refused: tuple[str, float | None, float] | None = None  # reason, Retry-After, remembered until

    async def send_many(self, messages: Sequence[PushMessage]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._send(message) for message in messages)))

    async def _send(self, message: PushMessage) -> Outcome:
        if not message.token.strip():
            return InvalidAddress("an FCM registration token cannot be empty")
        try:
            token = await self._access_token()
            async with self._in_flight:
                response = await self._client.post(
                    self._send_url, headers={"authorization": f"Bearer {token.value}"}, json=_body(message)
                )
        except _TokenRefused as refused:
            return Retry(refused.reason, refused.after)
        except httpx.TransportError as error:
            return Retry(f"FCM unreachable or not answering: {str(error) or type(error).__name__}")
        except Exception as error:  # a send must never raise: the rest of the batch was sent already
            log.exception("push.fcm_send_failed", ref=message.ref)
            return Retry(f"FCM: {type(error).__name__}")
        if response.status_code == 200:
            return Sent(_json(response).get("name"))
        return self._refused_message(message, response, token)

    def _refused_message(self, message: PushMessage, response: httpx.Response, token: _AccessToken) -> Outcome:
        status, (code, text) = response.status_code, _error(response)
        log.warning("push.fcm_refused", ref=message.ref, status=status, code=code)
        reason = f"FCM: {code} ({status}): {text}"
        if code == "UNREGISTERED" or (code == "INVALID_ARGUMENT" and _about_the_token(response)):
            return InvalidAddress(reason)
        if code == "SENDER_ID_MISMATCH":  # the token belongs to another Firebase project: never ours to reach
            return InvalidAddress(reason)
        if status == 401 and code != "THIRD_PARTY_AUTH_ERROR":
            if self._token is token:
                self._token = None  # the next send exchanges the assertion again
            return Retry(f"FCM refused our access token ({status}); a new one is asked for")
        if status in (401, 403):  # THIRD_PARTY_AUTH_ERROR, PERMISSION_DENIED: our project's configuration
            return Retry(f"FCM refused our credentials, check the service account and project: {reason}")
        if status == 429 or status >= 500:
            return Retry(reason, retry_after_seconds(response.headers.get("retry-after")))
        return Failed(reason)

    async def _access_token(self) -> _AccessToken:
        token = self._token
        if token is not None and time.monotonic() < token.renew_at:
            return token
        if self._refused is not None and time.monotonic() < self._refused[2]:
            raise _TokenRefused(*self._refused[:2])
        if self._exchange is None or self._exchange.done():
            self._exchange = asyncio.create_task(self._exchange_assertion())
            self._exchange.add_done_callback(_retrieved)
        # Shielded: a caller that is cancelled must not cancel the exchange the others wait for.
        return await asyncio.shield(self._exchange)

    async def _exchange_assertion(self) -> _AccessToken:
        settings = self.settings
        now = int(time.time())
        assertion = jwt.encode(
            {"iss": settings.client_email, "scope": SCOPE, "aud": settings.token_uri, "iat": now, "exp": now + 3600},
            settings.private_key.get_secret_value(),
            algorithm="RS256",
            headers={"kid": settings.private_key_id} if settings.private_key_id else None,
        )
        started = time.monotonic()
        try:
            response = await self._client.post(
                settings.token_uri, data={"grant_type": _GRANT_TYPE, "assertion": assertion}
            )
        except httpx.TransportError as error:
            raise self._remember(
                _TokenRefused(f"FCM token endpoint unreachable: {str(error) or type(error).__name__}")
            ) from None
        answer = _json(response)
        if response.status_code != 200 or not isinstance(answer.get("access_token"), str):
            code, text = answer.get("error"), answer.get("error_description")
            log.warning("push.fcm_token_refused", status=response.status_code, error=code)
            after = retry_after_seconds(response.headers.get("retry-after"))
            if response.status_code < 500 and response.status_code != 429:
                raise self._remember(
                    _TokenRefused(
                        f"the token endpoint refused the service account ({response.status_code} {code}: {text});"
                        " check client_email, private_key and token_uri",
                        after,
                    )
                )
            raise self._remember(_TokenRefused(f"FCM token endpoint: HTTP {response.status_code}", after))
        lifetime = float(answer.get("expires_in") or 3600)
        self._refused = None
        self._token = _AccessToken(answer["access_token"], started + lifetime - min(300.0, lifetime / 10))
        log.info("push.fcm_token_obtained", client_email=settings.client_email, expires_in=lifetime)
        return self._token

    def _remember(self, refused: _TokenRefused) -> _TokenRefused:
        self._refused = (refused.reason, refused.after, time.monotonic() + _REFUSAL_MEMORY)
        return refused

    async def aclose(self) -> None:
        if self._exchange is not None and not self._exchange.done():
            self._exchange.cancel()
        await self._client.aclose()


def _retrieved(task: asyncio.Task[_AccessToken]) -> None:
    """Marks a failed exchange's error as seen: the callers who waited for it were told, if any were left."""
    if not task.cancelled():
        task.exception()


def _body(message: PushMessage) -> dict[str, Any]:
    notification = {"body": message.body} if message.title is None else {"title": message.title, "body": message.body}
    sent: dict[str, Any] = {"token": message.token, "notification": notification}
    if message.data:
        sent["data"] = dict(message.data)
    android: dict[str, Any] = {}
    aps: dict[str, Any] = {}
    if message.sound is not None:
        android["sound"], aps["sound"] = message.sound, message.sound
    if message.badge is not None:  # Android shows the count as a badge on launchers that do
        android["notification_count"], aps["badge"] = message.badge, message.badge
    if android:
        sent["android"] = {"notification": android}
        sent["apns"] = {"payload": {"aps": aps}}
    return {"message": sent}


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _error(response: httpx.Response) -> tuple[str, str]:
    """FCM's errorCode (from the error's details, else its status) and message, shortened for a reason."""
    error = _json(response).get("error")
    if not isinstance(error, dict):
        return f"HTTP {response.status_code}", ""
    code = next(
        (d["errorCode"] for d in _details(error) if isinstance(d.get("errorCode"), str)),
        error.get("status") or f"HTTP {response.status_code}",
    )
    return str(code)[:60], str(error.get("message") or "")[:200]


def _about_the_token(response: httpx.Response) -> bool:
    """Whether an INVALID_ARGUMENT is about the registration token, rather than the rest of the message."""
    error = _json(response).get("error")
    if not isinstance(error, dict):
        return False
    fields = {v.get("field") for d in _details(error) for v in d.get("fieldViolations") or () if isinstance(v, dict)}
    return "message.token" in fields or "registration token" in str(error.get("message") or "").lower()


def _details(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
