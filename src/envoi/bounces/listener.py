"""The inbound bounce listener: an SMTP server (aiosmtpd's protocol, on the process's own event loop) that takes
reports for the bounce domain and records each in one transaction.

It is no relay: it accepts only the return paths of the bounce domain (``bounce+...@``) and its
``postmaster@``, ``abuse@`` and ``fbl@`` (where feedback loops send complaints), keeps what it receives and
forwards nothing. A report it cannot record now (the database is down, or its message is still being sent) is
answered 451, so the sending server tries again later.
"""

from __future__ import annotations

import asyncio

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi import __version__
from envoi.bounces.models import Bounce
from envoi.bounces.parsing import parse_report
from envoi.bounces.service import NotRecordedYet, load_signing_secret, record_report
from envoi.bounces.verp import is_return_path
from envoi.settings import Settings
from envoi.tracking.secret import tracking_secret

log = structlog.get_logger(__name__)

MAILBOXES = ("postmaster", "abuse", "fbl")  # besides the return paths: where people and feedback loops write
_MAX_RECIPIENTS = 20
_COMMAND_TIMEOUT = 60.0  # seconds a client may stay silent


def accepts(address: str, domain: str) -> bool:
    """Whether the listener takes mail for ``address``: a return path or a mailbox of the bounce domain (and
    a bare ``postmaster``, which every SMTP server must take)."""
    local, at, host = address.strip().strip("<>").lower().rpartition("@")
    if not at:
        return host == "postmaster"
    return is_return_path(address, domain) or (host == domain.lower() and local in MAILBOXES)


async def receive_report(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    raw: bytes,
    *,
    mail_from: str,
    recipients: list[str],
) -> Bounce:
    """Parse a report (in a thread: a large one takes a while) and record it in one transaction."""
    report = await asyncio.to_thread(parse_report, raw, mail_from)
    async with sessionmaker.begin() as session:
        secret = await tracking_secret(session, settings)
        return await record_report(session, settings, report, envelope_recipients=recipients, secret=secret)


class BounceHandler:
    """aiosmtpd's hooks: who may be written to, and what becomes of a report."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        assert settings.bounce_domain is not None
        self.settings = settings
        self.domain = settings.bounce_domain
        self.sessionmaker = sessionmaker

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not accepts(address, self.domain):
            return f"550 5.7.1 Relaying denied: this server takes reports for {self.domain} only"
        if len(envelope.rcpt_tos) >= _MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            bounce = await receive_report(
                self.sessionmaker,
                self.settings,
                raw,
                mail_from=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
            )
        except NotRecordedYet:
            return "451 4.3.0 The message this report is about is still being sent: try again later"
        except Exception:
            log.exception("bounces.record_failed", peer=str(session.peer), size=len(raw))
            return "451 4.3.0 The report could not be recorded: try again later"
        return f"250 2.0.0 Recorded as bounce {bounce.id}"


async def start_bounce_listener(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> asyncio.Server:
    """Listen on ``bounce_listen_host``:``bounce_listen_port`` (0: any free port); close the server to stop."""
    if not settings.bounce_domain or settings.bounce_listen_port is None:
        raise ValueError("the bounce listener needs ENVOI_BOUNCE_DOMAIN and ENVOI_BOUNCE_LISTEN_PORT")
    handler = BounceHandler(settings, sessionmaker)
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=settings.bounce_max_bytes,
            enable_SMTPUTF8=True,
            hostname=settings.bounce_domain,
            ident=f"Envoi {__version__} bounce listener",
            timeout=_COMMAND_TIMEOUT,
            loop=loop,
        )

    server = await loop.create_server(protocol, host=settings.bounce_listen_host, port=settings.bounce_listen_port)
    port = listening_port(server)
    log.info("bounces.listening", host=settings.bounce_listen_host, port=port, domain=settings.bounce_domain)
    return server


def listening_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def start_bounces(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> asyncio.Server | None:
    """What a process that sends or serves needs for bounces: the signing secret read, so that emails get their
    return path, and the listener started when a port is set."""
    await load_signing_secret(sessionmaker, settings)
    if settings.bounce_listen_port is None:
        return None
    return await start_bounce_listener(settings, sessionmaker)
