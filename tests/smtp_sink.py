"""A real SMTP server on 127.0.0.1 for tests: aiosmtpd in its own thread, recording what it accepts.

``start_sink()`` serves plain SMTP; ``start_sink(tls=True, username=..., password=...)`` requires STARTTLS
then AUTH, with ``ca_file`` the CA to trust. ``await sink.wait_for(n)`` returns once n messages arrived;
``sink.stop()`` when done.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import itertools
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes  # as received, CRLF line endings
    message: email.message.EmailMessage  # parsed with email.policy.default, line endings as \n


class SmtpSink:
    """What the server received, and knobs to make it refuse things. Safe to use from the test's thread."""

    def __init__(self, *, tls: bool, username: str | None, password: str | None, cert_dir: Path) -> None:
        self.host = HOST
        self.messages: list[ReceivedEmail] = []
        self.ca_file: Path | None = None
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self._rejected: dict[str, str] = {}
        self._data_failures: list[str] = []
        self._queue_ids = itertools.count(1)
        self._sessions: list[SMTP] = []
        self._cert_dir = cert_dir
        self._owns_cert_dir = False
        self._stopped = False
        tls_context = None
        if tls:
            self.ca_file, cert, key = _make_certificates(cert_dir)
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(cert, key)
        # Bound here, before the server thread starts, so the port is known and cannot be taken meanwhile.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        self.port: int = listener.getsockname()[1]
        self._controller = _BoundController(
            self,
            listener,
            server_hostname="sink.envoi.test",
            tls_context=tls_context,
            require_starttls=tls,
            auth_required=username is not None,
            auth_require_tls=tls,
            authenticator=self._authenticate if username is not None else None,
        )
        self._controller.start()
        with self._lock:
            self._sessions.clear()  # start() opened one connection itself, to check the server is up

    @property
    def url(self) -> str:
        credentials = ""
        if self._username is not None:
            credentials = quote(self._username, safe="")
            if self._password is not None:
                credentials += ":" + quote(self._password, safe="")
            credentials += "@"
        query = "?starttls=true" if self.ca_file is not None else ""
        return f"smtp://{credentials}{self.host}:{self.port}{query}"

    @property
    def connections_opened(self) -> int:
        """How many SMTP connections clients have opened since the sink started."""
        with self._lock:
            return len(self._sessions)

    def drop_connections(self) -> None:
        """Close every open connection from the server's side, as a server timing out idle clients does."""
        closed = threading.Event()

        def close_all() -> None:
            with self._lock:
                sessions = list(self._sessions)
            for session in sessions:
                if session.transport is not None and not session.transport.is_closing():
                    session.transport.close()
            closed.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        if not closed.wait(5):
            raise AssertionError("SMTP sink: timed out closing its connections")

    def reject_recipient(self, address: str, code: int = 550, text: str = "5.1.1 User unknown") -> None:
        with self._lock:
            self._rejected[address.lower()] = f"{code} {text}"

    def accept_recipients_again(self) -> None:
        with self._lock:
            self._rejected.clear()

    def fail_next_data(self, n: int, code: int = 451, text: str = "4.3.0 Try again later") -> None:
        """The reply to the end of the next ``n`` messages' data (after the 354), as real servers do."""
        with self._lock:
            self._data_failures.extend([f"{code} {text}"] * n)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedEmail]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                received = list(self.messages)
            if len(received) >= count:
                return received
            if time.monotonic() >= deadline:
                subjects = [str(item.message["Subject"]) for item in received]
                raise AssertionError(
                    f"SMTP sink on port {self.port}: expected {count} message(s) within {timeout}s, "
                    f"got {len(received)}: {subjects}"
                )
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._controller.stop()
        if self._owns_cert_dir:
            shutil.rmtree(self._cert_dir, ignore_errors=True)

    # Called from the server's thread.

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (
            auth_data.login.decode(errors="replace") == self._username
            and auth_data.password.decode(errors="replace") == self._password
        )
        # success=False, handled=False: aiosmtpd answers "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=ok, handled=False)

    def _opened(self, session: SMTP) -> None:
        with self._lock:
            self._sessions.append(session)

    def _rcpt_reply(self, address: str) -> str | None:
        with self._lock:
            return self._rejected.get(address.lower())

    def _receive(self, envelope: Envelope) -> str:
        with self._lock:
            if self._data_failures:
                return self._data_failures.pop(0)
            raw = envelope.original_content or b""
            # SMTP's CRLFs would otherwise stay in 8bit bodies: get_content() would not equal the text sent.
            parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
            self.messages.append(
                ReceivedEmail(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    raw=raw,
                    message=parsed,
                )
            )
            return f"250 2.0.0 Ok: queued as {next(self._queue_ids):06X}"


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        rejection = self._sink._rcpt_reply(address)
        if rejection is not None:
            return rejection
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self._sink._receive(envelope)


class _BoundController(Controller):
    """Serves on an already-bound socket: no guessing a free port, no race for it."""

    def __init__(self, sink: SmtpSink, listener: socket.socket, **kwargs: Any) -> None:
        self._sink = sink
        self._listener = listener
        super().__init__(_Handler(sink), hostname=HOST, port=listener.getsockname()[1], **kwargs)

    def factory(self) -> SMTP:
        # aiosmtpd builds one SMTP protocol per client connection.
        session: SMTP = super().factory()  # type: ignore[no-untyped-call]
        self._sink._opened(session)
        return session

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._listener, ssl=self.ssl_context)


def start_sink(
    *,
    tls: bool = False,
    username: str | None = None,
    password: str | None = None,
    cert_dir: Path | None = None,
) -> SmtpSink:
    """Start a sink; with ``tls``, STARTTLS is required and ``ca_file`` is the CA clients must trust."""
    owns_cert_dir = cert_dir is None
    directory = Path(tempfile.mkdtemp(prefix="envoi-smtp-sink-")) if cert_dir is None else cert_dir
    try:
        sink = SmtpSink(tls=tls, username=username, password=password, cert_dir=directory)
    except BaseException:
        if owns_cert_dir:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    sink._owns_cert_dir = owns_cert_dir
    return sink


def _make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "authorityKeyIdentifier = keyid\n"
        "subjectKeyIdentifier = hash\n"
    )
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *new_key, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
        "-subj", "/CN=Envoi test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("req", *new_key, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial", str(time.time_ns()),
        "-days", "2", "-extfile", extensions, "-out", cert,
    )  # fmt: skip
    return ca_cert, cert, key


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
