"""SMS through an SMSC over SMPP 3.4 (the smpp34 package: a Rust/tokio session engine for asyncio).

One transceiver session per channel, opened on first use and again after it drops: it submits messages and
receives their delivery receipts. A long text goes out as concatenated parts (see ``channels/sms.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import time
from collections.abc import Sequence
from urllib.parse import parse_qs, unquote, urlsplit

import smpp34
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from envoi.channels.base import Failed, InvalidAddress, Outcome, Receipt, ReceiptHandler, Retry, Sent
from envoi.channels.sms import SmsMessage, encode_sms, with_udh

log = structlog.get_logger(__name__)

_TEMPORARY = {
    0x04: "not bound",
    0x08: "system error",
    0x14: "message queue full",
    0x45: "submit failed",
    0x58: "throttled",
    0x64: "temporary application error",
}
_BAD_ADDRESS = {0x0B: "invalid destination address"}
_MAX_PARTS = 255
_RECEIPT_STATE = re.compile(rb"\bstat:([A-Z]+)", re.IGNORECASE)
_RECEIPT_ID = re.compile(rb"\bid:(\S+)", re.IGNORECASE)
_FINAL_STATES = {"DELIVRD": True, "UNDELIV": False, "EXPIRED": False, "DELETED": False, "REJECTD": False}
_TLV_RECEIPTED_ID = 0x001E
_TLV_MESSAGE_STATE = 0x0427
_TLV_STATES = {2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 8: "REJECTD"}


class SmppSettings(BaseModel):
    """Where the SMSC is and how we bind to it; the password is a SecretStr, masked when shown."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(2775, gt=0, lt=65536)
    system_id: str = Field(min_length=1, max_length=15)
    password: SecretStr = Field(SecretStr(""), description="At most 8 characters, as SMPP 3.4 allows.")
    system_type: str = Field("", max_length=12)
    source: str = Field("Envoi", min_length=1, max_length=20, description="Sender: a short code or up to 11 letters.")
    window: int = Field(10, ge=1, le=1000, description="Submits in flight at once.")
    timeout: float = Field(30.0, gt=0, description="Seconds to bind, and to wait for each answer.")
    rebind_after: float = Field(5.0, ge=0, description="After a failed bind, seconds before binding again.")

    @classmethod
    def from_url(cls, url: str) -> SmppSettings:
        """``smpp://system_id:password@host:port?source=Shop&window=10`` (the password never appears in errors)."""
        parts = urlsplit(url.strip())
        if parts.scheme.lower() != "smpp" or not parts.hostname or not parts.username:
            raise ValueError("SMPP URL must look like smpp://system_id:password@host:port")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"source", "window", "system_type", "timeout", "rebind_after"}
        if unknown:
            raise ValueError(f"SMPP URL has unknown options: {', '.join(sorted(unknown))}")
        return cls.model_validate(
            {
                "host": parts.hostname,
                "port": parts.port or 2775,
                "system_id": unquote(parts.username),
                "password": SecretStr(unquote(parts.password or "")),
                **options,
            }
        )


class SmppChannel:
    """Sends each message's parts with ``submit_sm`` and reports receipts to ``on_receipt``."""

    name = "smpp"

    def __init__(self, settings: SmppSettings, on_receipt: ReceiptHandler | None = None):
        self.settings = settings
        self.on_receipt = on_receipt
        self._client: smpp34.Client | None = None
        self._smsc: smpp34.Smsc | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._window = asyncio.Semaphore(settings.window)
        # Phones join parts by sender and reference: processes must not all start counting at 0.
        self._references = itertools.count(random.randrange(256))
        self._down_until = 0.0  # after a failed bind, messages wait for a retry instead of binding in turn

    async def send_many(self, messages: Sequence[SmsMessage]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._send(message) for message in messages)))

    async def _send(self, message: SmsMessage) -> Outcome:
        encoded = encode_sms(message.text)
        if encoded.segments > _MAX_PARTS:
            return Failed(f"the text needs {encoded.segments} parts; an SMS has at most {_MAX_PARTS}")
        parts = with_udh(encoded.parts, next(self._references))
        sender = message.sender or self.settings.source
        alphanumeric = not sender.lstrip("+").isdigit()
        smsc: smpp34.Smsc | None = None
        sent = 0
        try:
            smsc = await self._session()
            for number, part in enumerate(parts, 1):
                last = number == len(parts)
                async with self._window:
                    response = await asyncio.wait_for(
                        smsc.submit_sm(
                            message.to.lstrip("+"),
                            part,
                            source_addr=sender.lstrip("+"),
                            source_addr_ton=5 if alphanumeric else 1,  # alphanumeric, else international
                            source_addr_npi=0 if alphanumeric else 1,
                            dest_addr_ton=1,
                            dest_addr_npi=1,
                            esm_class=0x40 if len(parts) > 1 else 0,  # user data starts with a header
                            data_coding=encoded.data_coding,
                            registered_delivery=1 if last else 0,  # one receipt: the last part's
                        ),
                        self.settings.timeout,
                    )
                if response.command_status != 0:
                    return _refused(response.command_status, sent)
                sent += 1
                if last:
                    return Sent(response.message_id or None)
        except (smpp34.SmppError, OSError, TimeoutError, ConnectionError) as error:
            if smsc is not None:
                await self._drop(smsc)
            return Retry(f"SMSC unreachable or not answering: {str(error) or type(error).__name__}")
        except Exception as error:  # a send must never raise: the rest of the batch was sent already
            log.exception("smpp.send_failed", ref=message.ref)
            return Retry(f"SMPP: {type(error).__name__}")
        return Failed("nothing to send")

    async def _session(self) -> smpp34.Smsc:
        async with self._lock:
            if self._smsc is not None:
                return self._smsc
            if time.monotonic() < self._down_until:
                raise ConnectionError("the SMSC could not be reached moments ago")
            settings = self.settings
            client = smpp34.Client(
                settings.host,
                settings.port,
                settings.system_id,
                settings.password.get_secret_value(),
                bind_type="TRX",
                system_type=settings.system_type,
                window_size=settings.window,
                connect_timeout_ms=int(settings.timeout * 1000),
            )
            try:
                smsc = await asyncio.wait_for(client.connect(), settings.timeout)
            except BaseException:
                self._down_until = time.monotonic() + settings.rebind_after
                with contextlib.suppress(Exception):
                    await client.stop()
                raise
            self._client, self._smsc = client, smsc
            reader = asyncio.create_task(self._read(smsc))
            self._readers.add(reader)
            reader.add_done_callback(self._readers.discard)
            log.info("smpp.bound", host=settings.host, port=settings.port, system_id=settings.system_id)
            return smsc

    async def _read(self, smsc: smpp34.Smsc) -> None:
        """Delivery receipts, until the session ends."""
        while True:
            event = await smsc.next()
            if isinstance(event, smpp34.Disconnected):
                log.warning("smpp.disconnected", host=self.settings.host)
                await self._drop(smsc)
                return
            receipt = parse_receipt(event)
            if receipt is not None and self.on_receipt is not None:
                try:
                    await self.on_receipt(receipt)
                except Exception:  # a receipt we could not record must not stop the next ones
                    log.exception("smpp.receipt_failed", provider_id=receipt.provider_id)

    async def _drop(self, smsc: smpp34.Smsc) -> None:
        """Close this session if it is still the current one (another send may have opened a new one)."""
        async with self._lock:
            if self._smsc is not smsc:
                return
            client = self._client
            self._client = self._smsc = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.stop()

    async def aclose(self) -> None:
        smsc = self._smsc
        if smsc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(smsc.unbind(), 5)
            await self._drop(smsc)
        if self._readers:  # the receipts already in hand are recorded; then the readers stop
            await asyncio.wait(self._readers, timeout=5)
            for reader in list(self._readers):
                reader.cancel()


def _refused(status: int, parts_sent: int) -> Outcome:
    sent = f" after {parts_sent} part(s) were sent" if parts_sent else ""
    if status in _BAD_ADDRESS:
        return InvalidAddress(f"SMSC: {_BAD_ADDRESS[status]} (0x{status:02x})")
    if status in _TEMPORARY:
        return Retry(f"SMSC: {_TEMPORARY[status]} (0x{status:02x}){sent}")
    return Failed(f"SMSC refused the message (command_status 0x{status:02x}){sent}")


def parse_receipt(event: smpp34.DeliverSmEvent) -> Receipt | None:
    """A delivery receipt's message id and final state (from its TLVs, else its text); None for anything else."""
    if event.esm_class & 0x3C != 0x04:
        return None  # a message from a phone (MO), not a receipt
    tlvs = {tlv.tag: tlv for tlv in event.tlvs}
    provider_id = tlvs[_TLV_RECEIPTED_ID].as_string() if _TLV_RECEIPTED_ID in tlvs else None
    state = _TLV_STATES.get(tlvs[_TLV_MESSAGE_STATE].as_int() or 0) if _TLV_MESSAGE_STATE in tlvs else None
    if provider_id is None and (found := _RECEIPT_ID.search(event.short_message)):
        provider_id = found.group(1).decode("ascii", "replace")
    if state is None and (found := _RECEIPT_STATE.search(event.short_message)):
        state = found.group(1).decode("ascii", "replace").upper()
    if not provider_id or state not in _FINAL_STATES:
        return None  # an intermediate state (ENROUTE, ACCEPTD): the final one follows
    return Receipt(provider_id.rstrip("\x00"), _FINAL_STATES[state], state)
