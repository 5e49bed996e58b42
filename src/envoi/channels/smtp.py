"""The SMTP provider: a small pool of persistent connections to one relay, through aiosmtplib."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import structlog
from aiosmtplib.email import parse_address
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from envoi.channels.base import EmailMessage, Failed, InvalidAddress, Outcome, Retry, Sent
from envoi.channels.dkim import DkimSigner
from envoi.channels.mime import render_mime

log = structlog.get_logger(__name__)

SmtpMode = Literal["plain", "starttls", "tls"]

# Replies about our session rather than the message (auth required, bad credentials, TLS required):
# a misconfiguration must be retried once fixed, never quarantine an address or drop an event.
_SESSION_CODES = frozenset({530, 534, 535, 538})
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class SmtpSettings(BaseModel):
    """Where and how to reach the relay; the password is a SecretStr so reprs and dumps mask it."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None
    mode: SmtpMode = "plain"
    ca_file: Path | None = None
    timeout: float = Field(default=30.0, gt=0)
    connections: int = Field(default=4, ge=1)
    dkim_key_dir: Path | None = Field(
        None, description="A folder of DKIM keys, <domain>.<selector>.pem. Unset: ENVOI_DKIM_KEY_DIR's."
    )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ca_file: Path | None = None,
        timeout: float = 30.0,
        connections: int = 4,
    ) -> SmtpSettings:
        """Parse ``smtp://user:pass@host:port[?starttls=true]`` or ``smtps://...`` (implicit TLS)."""
        # Error messages never echo the URL: it carries the password.
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP URL must start with smtp:// (plain, STARTTLS) or smtps:// (implicit TLS)")
        if not parts.hostname:
            raise ValueError("SMTP URL has no host")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("SMTP URL must not have a path or fragment")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("SMTP URL has an invalid port") from None
        mode: SmtpMode = "tls" if scheme == "smtps" else "plain"
        for key, values in parse_qs(parts.query, keep_blank_values=True).items():
            # A typo such as ?startls=true must not silently fall back to plaintext.
            if key != "starttls" or len(values) != 1 or values[0].lower() not in _TRUE | _FALSE:
                raise ValueError("SMTP URL accepts only the query parameter starttls=true|false")
            if values[0].lower() in _TRUE:
                if mode == "tls":
                    raise ValueError("smtps:// is already TLS; starttls=true applies to smtp:// only")
                mode = "starttls"
        default_port = {"plain": 25, "starttls": 587, "tls": 465}[mode]
        return cls(
            host=parts.hostname,
            port=port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(unquote(parts.password)) if parts.password is not None else None,
            mode=mode,
            ca_file=ca_file,
            timeout=timeout,
            connections=connections,
        )


@dataclass
class _Batch:
    """The state of one send_many call, shared by its workers."""

    messages: Sequence[EmailMessage]
    pending: deque[int] = field(init=False)
    outcomes: list[Outcome | None] = field(init=False)
    connect_errors: list[str] = field(default_factory=list)
    reconnected: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pending = deque(range(len(self.messages)))
        self.outcomes = [None] * len(self.messages)


class _ConnectionDropped(Exception):
    """The connection went away mid-transaction; the message may be tried again on a fresh one."""


class SmtpChannel:
    """Sends over up to ``settings.connections`` persistent connections, opened on first use."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.dkim = DkimSigner.from_directory(settings.dkim_key_dir) if settings.dkim_key_dir else None
        tls_context = make_tls_context(settings.ca_file) if settings.mode != "plain" else None
        self._clients = [_client(settings, tls_context) for _ in range(settings.connections)]
        # LIFO so that a small batch reuses the warmest connection instead of opening another.
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        for client in self._clients:
            self._idle.put_nowait(client)

    async def send_many(self, messages: Sequence[EmailMessage]) -> list[Outcome]:
        batch = _Batch(messages)
        async with asyncio.TaskGroup() as workers:
            for _ in range(min(len(messages), len(self._clients))):
                workers.create_task(self._work(batch))
        # Left over only when no connection could be opened; nothing was attempted for them.
        reason = batch.connect_errors[-1] if batch.connect_errors else "not attempted"
        return [outcome if outcome is not None else Retry(reason) for outcome in batch.outcomes]

    async def aclose(self) -> None:
        await asyncio.gather(*(_quit(client) for client in self._clients))

    async def _work(self, batch: _Batch) -> None:
        """Take messages off the batch, one at a time, over one pooled connection."""
        client = await self._idle.get()
        try:
            while batch.pending:
                index = batch.pending.popleft()
                message = batch.messages[index]
                reused = client.is_connected
                if not reused and (error := await self._connect(client, message.ref)):
                    # Leave the message to a connection that works; the caller gets Retry if none does.
                    batch.connect_errors.append(error)
                    batch.pending.appendleft(index)
                    return
                try:
                    batch.outcomes[index] = await self._deliver(client, message)
                except _ConnectionDropped as dropped:
                    if reused and index not in batch.reconnected:
                        # Most likely the server timed out a connection we kept idle: reconnect once.
                        batch.reconnected.add(index)
                        batch.pending.appendleft(index)
                    else:
                        batch.outcomes[index] = Retry(str(dropped))
        except asyncio.CancelledError:
            client.close()  # a half-done transaction leaves the session in an unknown state
            raise
        finally:
            self._idle.put_nowait(client)

    async def _connect(self, client: aiosmtplib.SMTP, ref: int) -> str | None:
        """Connect (TLS and login included); return why it failed, or None."""
        where = {"host": self.settings.host, "port": self.settings.port, "ref": ref}
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            log.error("smtp.auth_failed", **where, code=exc.code, hint="check the SMTP username and password")
            return f"SMTP authentication failed: {_describe(exc)}"
        except (aiosmtplib.SMTPException, OSError) as exc:  # OSError covers ssl.SSLError and timeouts
            log.warning("smtp.connect_failed", **where, mode=self.settings.mode, error=_describe(exc))
            return f"cannot connect to {self.settings.host}:{self.settings.port}: {_describe(exc)}"
        except Exception as exc:
            log.exception("smtp.unexpected_error", **where)
            return f"cannot connect: unexpected {type(exc).__name__}"
        log.debug("smtp.connected", **where)
        return None

    async def _deliver(self, client: aiosmtplib.SMTP, message: EmailMessage) -> Outcome:
        sender = message.return_path or _envelope_sender(message.sender)
        if not sender:
            return Failed("no sender address in From")
        recipient = _envelope_recipient(message.to)
        if not recipient:
            return InvalidAddress("address cannot be used in an SMTP envelope")
        try:
            reply = await _transaction(client, sender, recipient, self._data(message))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return self._refused("RCPT", refused.code, refused.message, message.ref)
        except aiosmtplib.SMTPTimeoutError as exc:
            # Not retried at once: the server may be slow rather than gone (aiosmtplib has closed it).
            log.warning("smtp.timeout", host=self.settings.host, ref=message.ref, error=_describe(exc))
            return Retry(f"timed out: {_describe(exc)}")
        except (ConnectionError, ssl.SSLError) as exc:  # includes SMTPServerDisconnected
            client.close()
            log.warning("smtp.connection_dropped", host=self.settings.host, ref=message.ref, error=_describe(exc))
            raise _ConnectionDropped(f"connection lost: {_describe(exc)}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or exc.code < 200:
                # 421 closes the channel; a malformed reply desyncs it: either way, start afresh.
                client.close()
                raise _ConnectionDropped(_describe(exc)) from exc
            stage = "MAIL" if isinstance(exc, aiosmtplib.SMTPSenderRefused) else "DATA"
            return self._refused(stage, exc.code, exc.message, message.ref)
        except (aiosmtplib.SMTPException, ValueError) as exc:  # e.g. SMTPUTF8 needed but not offered
            log.info("smtp.message_unsendable", ref=message.ref, error=_describe(exc))
            return Failed(_describe(exc))
        except Exception as exc:
            # Raising would lose the outcomes of messages already sent in this call, and resend them.
            client.close()
            log.exception("smtp.unexpected_error", ref=message.ref)
            return Retry(f"unexpected error: {type(exc).__name__}")
        return Sent(provider_id=reply or None)

    def _data(self, message: EmailMessage) -> bytes:
        """The message as sent, DKIM-signed when its From domain has a key (about 0.3 ms of CPU for RSA-2048)."""
        data = render_mime(message)
        return self.dkim.sign(data) if self.dkim is not None else data

    def _refused(self, stage: str, code: int, text: str, ref: int) -> Outcome:
        reason = f"{code} {text}"
        if code in _SESSION_CODES:
            log.error("smtp.session_refused", host=self.settings.host, ref=ref, stage=stage, reason=reason)
            return Retry(reason)
        log.info("smtp.refused", ref=ref, stage=stage, code=code)
        if code < 500:
            return Retry(reason)
        return InvalidAddress(reason) if stage == "RCPT" else Failed(reason)


@functools.lru_cache(maxsize=1024)
def _envelope_sender(header: str) -> str:
    """The address of a From header; a template's sender is the same for all its messages, hence the cache."""
    return parseaddr(header)[1]


def _envelope_recipient(to: str) -> str:
    # Ingestion stores bare, normalized addresses: parse only what looks like anything else.
    if "<" not in to and " " not in to:
        return to
    try:
        # The bare address: a non-ASCII display name left in would make the server demand SMTPUTF8.
        return parse_address(to)
    except ValueError:
        return ""


async def _transaction(client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes) -> str:
    """MAIL, RCPT and DATA through aiosmtplib's command layer; its sendmail() parses the addresses again and
    costs a third more CPU per message. Failures raise the exceptions sendmail() would."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    utf8 = not (sender.isascii() and recipient.isascii())
    if utf8 and not client.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("the address needs SMTPUTF8, which the server does not offer")
    response = await client.execute_command(b"MAIL", b"FROM:<" + sender.encode() + (b"> SMTPUTF8" if utf8 else b">"))
    if response.code != 250:
        await _reset(client)
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)
    response = await client.execute_command(b"RCPT", b"TO:<" + recipient.encode() + b">")
    if response.code not in (250, 251):
        await _reset(client)
        refused = aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)
        raise aiosmtplib.SMTPRecipientsRefused([refused])
    try:
        response = await client.data(data)
    except aiosmtplib.SMTPDataError:
        await _reset(client)
        raise
    return response.message


async def _reset(client: aiosmtplib.SMTP) -> None:
    """End a refused transaction so the connection can carry the next message."""
    if client.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.rset()


def _client(settings: SmtpSettings, tls_context: ssl.SSLContext | None) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        timeout=settings.timeout,
        use_tls=settings.mode == "tls",
        # False, not aiosmtplib's default None, which upgrades opportunistically: plain means plain.
        start_tls=settings.mode == "starttls",
        tls_context=tls_context,
    )


def make_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The TLS context SMTP connections check the server with: the system's CAs, and ``ca_file`` besides."""
    # Not create_default_context(cafile=...): that would load the CA file *instead of* the system store.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


async def _quit(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):  # closing anyway
            await client.quit()
    client.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    if isinstance(exc, aiosmtplib.SMTPException):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
