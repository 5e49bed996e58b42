"""SmtpChannel against a real SMTP server (tests/smtp_sink.py) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from envoi.channels.base import EmailMessage, Failed, InvalidAddress, Outcome, Retry, Sent
from envoi.channels.smtp import SmtpChannel, SmtpSettings
from tests.smtp_sink import SmtpSink, start_sink

USERNAME = "envoi@relay.test"
PASSWORD = "s3cret:p@ss/word"  # characters that must be URL-encoded
QUEUED = re.compile(r"^2\.0\.0 Ok: queued as [0-9A-F]{6}$")

ChannelFactory = Callable[..., SmtpChannel]


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = start_sink()
    yield server
    server.stop()


@pytest.fixture
def tls_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    server = start_sink(tls=True, username=USERNAME, password=PASSWORD, cert_dir=tmp_path)
    yield server
    server.stop()


@pytest.fixture
async def make_channel() -> AsyncIterator[ChannelFactory]:
    """Build channels from a URL (plus from_url's options); every one is closed after the test."""
    channels: list[SmtpChannel] = []

    def make(url: str, **options: object) -> SmtpChannel:
        options.setdefault("timeout", 5.0)
        channel = SmtpChannel(SmtpSettings.from_url(url, **options))  # type: ignore[arg-type]
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        await channel.aclose()


def message(ref: int, to: str | None = None, **fields: object) -> EmailMessage:
    values: dict[str, object] = {
        "sender": "Boutique <shop@example.com>",
        "to": to or f"client{ref}@example.org",
        "subject": f"Message {ref}",
        "text": f"Text {ref}",
    }
    values.update(fields)
    return EmailMessage(ref=ref, **values)  # type: ignore[arg-type]


def assert_sent(outcome: Outcome) -> str:
    assert isinstance(outcome, Sent), outcome
    assert outcome.provider_id is not None
    assert QUEUED.match(outcome.provider_id), outcome.provider_id
    return outcome.provider_id


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_multipart_message_arrives_intact(sink: SmtpSink, make_channel: ChannelFactory) -> None:
    channel = make_channel(sink.url)
    sent = EmailMessage(
        ref=42,
        sender="Boutique Éloïse <shop@example.com>",
        to="Zoë Client <client@example.org>",
        subject="Commande n°42 — merci",
        text="Bonjour,\nvotre commande n°42 est partie.\n.\nÀ bientôt",
        html="<p>Votre commande <b>n°42</b> est partie.</p>",
        reply_to="support@example.com",
        message_id="<order-42@envoi.test>",
        headers={"X-Envoi-Event": "order-shipped"},
    )

    outcomes = await channel.send_many([sent])

    assert_sent(outcomes[0])
    [received] = await sink.wait_for(1)
    assert received.mail_from == "shop@example.com"
    assert received.rcpt_tos == ["client@example.org"]
    mime = received.message
    assert mime["Subject"] == "Commande n°42 — merci"
    assert mime["From"].addresses[0].display_name == "Boutique Éloïse"
    assert mime["From"].addresses[0].addr_spec == "shop@example.com"
    assert mime["To"].addresses[0].display_name == "Zoë Client"
    assert mime["To"].addresses[0].addr_spec == "client@example.org"
    # ASCII addresses need no SMTPUTF8: non-ASCII headers travel RFC 2047-encoded.
    assert received.raw.split(b"\r\n\r\n", 1)[0].isascii()
    assert mime["Reply-To"] == "support@example.com"
    assert mime["Message-ID"] == "<order-42@envoi.test>"
    assert mime["X-Envoi-Event"] == "order-shipped"
    assert mime.get_content_type() == "multipart/alternative"
    text_part, html_part = mime.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    # The lone "." line survives SMTP's dot-stuffing.
    assert text_part.get_content() == "Bonjour,\nvotre commande n°42 est partie.\n.\nÀ bientôt\n"
    assert html_part.get_content_type() == "text/html"
    assert html_part.get_content() == "<p>Votre commande <b>n°42</b> est partie.</p>\n"


async def test_many_messages_share_a_few_reused_connections(sink: SmtpSink, make_channel: ChannelFactory) -> None:
    channel = make_channel(sink.url, connections=3)
    batch = [message(ref) for ref in range(50)]

    outcomes = await channel.send_many(batch)

    provider_ids = [assert_sent(outcome) for outcome in outcomes]
    assert len(set(provider_ids)) == 50
    received = await sink.wait_for(50)
    assert sorted(item.rcpt_tos[0] for item in received) == sorted(m.to for m in batch)
    assert {str(item.message["Subject"]) for item in received} == {m.subject for m in batch}
    assert sink.connections_opened == 3  # spread over the whole pool, concurrently

    second = await channel.send_many([message(ref) for ref in range(50, 60)])

    assert all(isinstance(outcome, Sent) for outcome in second)
    await sink.wait_for(60)
    assert sink.connections_opened == 3  # the next call reuses them


async def test_outcomes_follow_input_order(sink: SmtpSink, make_channel: ChannelFactory) -> None:
    channel = make_channel(sink.url, connections=4)
    sink.reject_recipient("ghost7@example.org")
    batch = [message(ref, to=f"ghost{ref}@example.org" if ref == 7 else None) for ref in range(20)]

    outcomes = await channel.send_many(batch)

    assert [type(outcome) for outcome in outcomes] == [InvalidAddress if i == 7 else Sent for i in range(20)]


async def test_recipient_refused_5xx_is_invalid_address_others_sent(
    sink: SmtpSink, make_channel: ChannelFactory
) -> None:
    channel = make_channel(sink.url, connections=2)
    sink.reject_recipient("ghost@example.org")
    batch = [message(0), message(1, to="Ghost <ghost@example.org>"), message(2), message(3)]

    outcomes = await channel.send_many(batch)

    assert outcomes[1] == InvalidAddress("550 5.1.1 User unknown")
    for index in (0, 2, 3):
        assert_sent(outcomes[index])
    received = await sink.wait_for(3)
    assert sorted(item.rcpt_tos[0] for item in received) == [batch[i].to for i in (0, 2, 3)]


async def test_recipient_refused_4xx_is_retry(sink: SmtpSink, make_channel: ChannelFactory) -> None:
    channel = make_channel(sink.url)
    sink.reject_recipient("busy@example.org", code=450, text="4.2.1 Mailbox busy")

    outcomes = await channel.send_many([message(0, to="busy@example.org"), message(1)])

    assert outcomes[0] == Retry("450 4.2.1 Mailbox busy")
    assert_sent(outcomes[1])


async def test_temporary_failure_at_data_is_retry(sink: SmtpSink, make_channel: ChannelFactory) -> None:
    channel = make_channel(sink.url, connections=1)  # one connection: the first message gets the 451
    sink.fail_next_data(1)

    outcomes = await channel.send_many([message(0), message(1)])

    assert outcomes[0] == Retry("451 4.3.0 Try again later")
    assert_sent(outcomes[1])  # and the connection is still good for the next one
    [received] = await sink.wait_for(1)
    assert received.rcpt_tos == ["client1@example.org"]


async def test_permanent_failure_at_data_is_failed(sink: SmtpSink, make_channel: ChannelFactory) -> None:
    channel = make_channel(sink.url, connections=1)
    sink.fail_next_data(1, code=554, text="5.6.0 Message content rejected")

    outcomes = await channel.send_many([message(0), message(1)])

    assert outcomes[0] == Failed("554 5.6.0 Message content rejected")
    assert_sent(outcomes[1])


async def test_server_down_is_retry_for_every_message(make_channel: ChannelFactory) -> None:
    port = closed_port()
    channel = make_channel(f"smtp://127.0.0.1:{port}", connections=2)

    outcomes = await channel.send_many([message(ref) for ref in range(5)])

    assert len(outcomes) == 5
    for outcome in outcomes:
        assert isinstance(outcome, Retry), outcome
        assert f"cannot connect to 127.0.0.1:{port}" in outcome.reason


@pytest.mark.parametrize("client_noticed", [False, True], ids=["stale", "noticed"])
async def test_reconnects_after_the_server_closed_pooled_connections(
    sink: SmtpSink, make_channel: ChannelFactory, client_noticed: bool
) -> None:
    channel = make_channel(sink.url, connections=2)
    assert all(isinstance(o, Sent) for o in await channel.send_many([message(r) for r in range(4)]))
    assert sink.connections_opened == 2

    sink.drop_connections()
    if client_noticed:
        await asyncio.sleep(0.2)  # the client reads the EOF while idle
    # Otherwise its next command meets the dead socket, and the message goes again on a fresh connection.
    outcomes = await channel.send_many([message(ref) for ref in range(4, 8)])

    for outcome in outcomes:
        assert_sent(outcome)
    assert len(await sink.wait_for(8)) == 8
    assert sink.connections_opened == 4


async def test_cancelled_call_leaves_the_pool_usable(sink: SmtpSink, make_channel: ChannelFactory) -> None:
    channel = make_channel(sink.url, connections=2)
    call = asyncio.create_task(channel.send_many([message(ref) for ref in range(1000)]))
    await sink.wait_for(3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    outcomes = await channel.send_many([message(ref) for ref in range(1000, 1010)])

    for outcome in outcomes:
        assert_sent(outcome)


async def test_starttls_and_auth_deliver(tls_sink: SmtpSink, make_channel: ChannelFactory) -> None:
    assert tls_sink.ca_file is not None
    channel = make_channel(tls_sink.url, ca_file=tls_sink.ca_file)
    assert channel.settings.mode == "starttls"
    assert channel.settings.password == SecretStr(PASSWORD)

    outcomes = await channel.send_many([message(0), message(1)])

    assert_sent(outcomes[0])
    assert_sent(outcomes[1])
    assert len(await tls_sink.wait_for(2)) == 2


async def test_wrong_password_is_retry_and_delivers_nothing(tls_sink: SmtpSink, make_channel: ChannelFactory) -> None:
    url = tls_sink.url.replace("s3cret", "wrong")
    channel = make_channel(url, ca_file=tls_sink.ca_file)

    with capture_logs() as logs:
        outcomes = await channel.send_many([message(0), message(1)])

    for outcome in outcomes:
        assert isinstance(outcome, Retry), outcome
        assert "535" in outcome.reason
        assert "wrong" not in outcome.reason
    assert tls_sink.messages == []
    assert any(entry["event"] == "smtp.auth_failed" and entry["log_level"] == "error" for entry in logs)
    assert "wrong" not in repr(logs)


async def test_missing_credentials_are_retry_not_failed(tls_sink: SmtpSink, make_channel: ChannelFactory) -> None:
    url = f"smtp://{tls_sink.host}:{tls_sink.port}?starttls=true"  # no user: MAIL FROM gets 530
    channel = make_channel(url, ca_file=tls_sink.ca_file)

    outcomes = await channel.send_many([message(0)])

    assert isinstance(outcomes[0], Retry), outcomes[0]
    assert outcomes[0].reason.startswith("530 ")
    assert tls_sink.messages == []


async def test_untrusted_certificate_is_retry(tls_sink: SmtpSink, make_channel: ChannelFactory) -> None:
    channel = make_channel(tls_sink.url)  # no ca_file: the sink's CA is not in the system store

    outcomes = await channel.send_many([message(0)])

    assert isinstance(outcomes[0], Retry), outcomes[0]
    assert "CERTIFICATE_VERIFY_FAILED" in outcomes[0].reason
    assert tls_sink.messages == []


async def test_empty_batch(make_channel: ChannelFactory) -> None:
    channel = make_channel(f"smtp://127.0.0.1:{closed_port()}")
    assert await channel.send_many([]) == []


@pytest.mark.parametrize(
    ("url", "host", "port", "mode", "username", "password"),
    [
        ("smtp://relay.example.com", "relay.example.com", 25, "plain", None, None),
        ("smtp://relay.example.com:2525", "relay.example.com", 2525, "plain", None, None),
        ("smtp://relay.example.com?starttls=true", "relay.example.com", 587, "starttls", None, None),
        ("smtp://u:p@relay.example.com:25?starttls=true", "relay.example.com", 25, "starttls", "u", "p"),
        ("smtp://relay.example.com?starttls=false", "relay.example.com", 25, "plain", None, None),
        ("smtps://relay.example.com", "relay.example.com", 465, "tls", None, None),
        ("SMTPS://Relay.Example.com:1465/", "relay.example.com", 1465, "tls", None, None),
        ("smtps://me%40corp.com:p%40ss%3Aw%2Fd@relay.example.com", "relay.example.com", 465, "tls",
         "me@corp.com", "p@ss:w/d"),
        ("smtp://apikey@[::1]:2525", "::1", 2525, "plain", "apikey", None),
    ],
)  # fmt: skip
def test_from_url(url: str, host: str, port: int, mode: str, username: str | None, password: str | None) -> None:
    settings = SmtpSettings.from_url(url, timeout=7.5, connections=2)

    assert (settings.host, settings.port, settings.mode) == (host, port, mode)
    assert settings.username == username
    assert (settings.password.get_secret_value() if settings.password else None) == password
    assert (settings.timeout, settings.connections, settings.ca_file) == (7.5, 2, None)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://relay.example.com", "smtp://"),
        ("relay.example.com:25", "smtp://"),
        ("smtp://", "no host"),
        ("smtp://user:hunter2@:25", "no host"),
        ("smtp://relay.example.com:notaport", "invalid port"),
        ("smtp://relay.example.com:99999", "invalid port"),
        ("smtp://relay.example.com?startls=true", "starttls"),
        ("smtp://relay.example.com?starttls=maybe", "starttls"),
        ("smtps://relay.example.com?starttls=true", "already TLS"),
        ("smtp://relay.example.com/path", "path"),
    ],
)
def test_from_url_rejects(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)) as raised:
        SmtpSettings.from_url(url)
    assert "hunter2" not in str(raised.value)


def test_password_never_shown() -> None:
    settings = SmtpSettings.from_url("smtps://user:hunter2@relay.example.com", ca_file=Path("/tmp/ca.pem"))

    assert settings.password is not None
    assert settings.password.get_secret_value() == "hunter2"
    for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert "hunter2" not in shown
    assert "user" in repr(settings)
