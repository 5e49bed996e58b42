"""SMS through a Kannel gateway: its smsbox ``sendsms`` HTTP interface, and its delivery reports.

Kannel gives no message id when it accepts a message, so each submission carries our own reference, which
comes back in the delivery report Kannel calls (``dlr-url``) with a signature only we can make: a report for
a message can only come from the Kannel we gave that URL to. Kannel splits a long text into concatenated
parts itself (the ``sendsms-user`` needs ``concatenation = true`` and ``max-messages`` at least
``max_parts``: past its ``max-messages`` Kannel cuts the text without saying so, so we refuse such a text).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from envoi.channels.base import Failed, InvalidAddress, Outcome, Receipt, Retry, Sent
from envoi.channels.sms import SmsMessage, encode_sms
from envoi.outbound import retry_after_seconds

log = structlog.get_logger(__name__)

# Kannel's delivery report types (the %d of a dlr-url): what each says about the message, when it is final.
_REPORTS = {1: (True, "DELIVRD"), 2: (False, "UNDELIV"), 16: (False, "REJECTD")}  # 4 buffered, 8 SMSC ack
_ACCEPTED = ("0:", "3:")  # "0: Accepted for delivery", "3: Queued for later delivery"


class KannelSettings(BaseModel):
    """A Kannel smsbox and the ``sendsms-user`` Envoi sends as; secrets are SecretStr, masked when shown."""

    model_config = ConfigDict(frozen=True)

    sendsms_url: str = Field(
        pattern=r"^https?://", description="The smsbox sendsms interface: http://kannel:13013/cgi-bin/sendsms"
    )
    username: str = Field(min_length=1, description="A sendsms-user of the smsbox.")
    password: SecretStr
    source: str = Field("Envoi", min_length=1, max_length=20, description="Sender: a short code or up to 11 letters.")
    smsc: str | None = Field(None, description="Kannel smsc-id to send through; unset: Kannel's own routing.")
    receipt_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Envoi's /receipts/<provider name> as Kannel reaches it; unset: no delivery reports.",
    )
    receipt_secret: SecretStr | None = Field(
        None, description="Signs the references in delivery report URLs (any long random string)."
    )
    max_parts: int = Field(10, ge=1, le=255, description="The sendsms-user's max-messages.")
    concurrency: int = Field(16, ge=1, le=256, description="Requests to Kannel in flight at once.")
    timeout: float = Field(30.0, gt=0)
    ca_file: Path | None = Field(None, description="Extra CA bundle to trust for an https sendsms_url.")


def receipt_signature(secret: SecretStr, reference: str) -> str:
    key = secret.get_secret_value().encode()
    return hmac.new(key, reference.encode(), hashlib.sha256).hexdigest()[:32]


class KannelChannel:
    """SMS through Kannel's sendsms. Never raises for a send failure: every message gets an outcome."""

    name = "kannel"

    def __init__(self, settings: KannelSettings):
        self.settings = settings
        verify: str | bool = str(settings.ca_file) if settings.ca_file else True
        self._client = httpx.AsyncClient(
            timeout=settings.timeout,
            verify=verify,
            limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency),
        )
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def send_many(self, messages: Sequence[SmsMessage]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._send(message) for message in messages)))

    async def _send(self, message: SmsMessage) -> Outcome:
        encoded = encode_sms(message.text)
        if encoded.segments > self.settings.max_parts:
            return Failed(
                f"the text needs {encoded.segments} parts; this Kannel user sends at most {self.settings.max_parts}"
            )
        reference = secrets.token_hex(12)
        async with self._slots:
            try:
                response = await self._client.get(self.settings.sendsms_url, params=self._params(message, reference))
            except httpx.HTTPError as error:
                log.warning("kannel.unreachable", ref=message.ref, error=type(error).__name__)
                return Retry(f"Kannel unreachable: {type(error).__name__}")
        return _outcome(response, reference)

    def _params(self, message: SmsMessage, reference: str) -> dict[str, str]:
        settings = self.settings
        params = {
            "username": settings.username,
            "password": settings.password.get_secret_value(),
            "from": message.sender or settings.source,
            "to": message.to,
            "text": message.text,
            "charset": "UTF-8",
            "coding": "2" if encode_sms(message.text).encoding == "UCS-2" else "0",
        }
        if settings.smsc:
            params["smsc"] = settings.smsc
        if settings.receipt_url and settings.receipt_secret:
            signed = urlencode({"ref": reference, "sig": receipt_signature(settings.receipt_secret, reference)})
            separator = "&" if "?" in settings.receipt_url else "?"
            params["dlr-mask"] = "19"  # delivered (1), undelivered (2), rejected by the SMSC (16)
            params["dlr-url"] = f"{settings.receipt_url}{separator}{signed}&type=%d"
        return params

    def receipt_from(self, query: Mapping[str, str]) -> Receipt | None:
        """The receipt a Kannel delivery report call carries, or None for a report that is not final.

        Raises PermissionError when the call is not signed by us (or reports are not configured)."""
        secret, reference = self.settings.receipt_secret, query.get("ref", "")
        signed = receipt_signature(secret, reference).encode() if secret else b""
        if secret is None or not hmac.compare_digest(query.get("sig", "").encode(), signed):
            raise PermissionError("delivery report not signed by this provider")
        try:
            report = _REPORTS.get(int(query.get("type", "")))
        except ValueError:
            return None
        return Receipt(provider_id=reference, delivered=report[0], status=report[1]) if report else None

    async def aclose(self) -> None:
        await self._client.aclose()


def _outcome(response: httpx.Response, reference: str) -> Outcome:
    said = response.text.strip()[:200]
    status = response.status_code
    if status in (200, 202) and said.startswith(_ACCEPTED):
        return Sent(reference)
    if status == 400 and "denied" in said:
        return InvalidAddress(f"Kannel: {said}")
    if status in (401, 403) and "Authorization" in said:
        return Retry(f"Kannel refused our credentials: {said}")  # our configuration, never the recipient's fault
    if status == 429 or status >= 500 or said.startswith("4:"):  # "4: Temporal failure, try again later."
        return Retry(f"Kannel: {status} {said}", after=retry_after_seconds(response.headers.get("retry-after")))
    return Failed(f"Kannel: {status} {said}")
