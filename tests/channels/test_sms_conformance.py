"""The conformance battery every SMS provider passes, against a real peer on 127.0.0.1: send, bad address,
temporary failure then success, permanent failure, 1,000 messages without loss, concatenated parts, receipts.

Providers: SMPP 3.4 (against the server side of the smpp34 package) and Kannel (bearerbox and smsbox with
Kannel's fakesmsc as the SMSC, from Debian's packages). Each provider's own behaviour follows the battery.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import smpp34
from pydantic import SecretStr

from envoi.channels.base import Channel, Failed, InvalidAddress, Receipt, Retry, Sent
from envoi.channels.kannel import KannelChannel, KannelSettings
from envoi.channels.smpp import SmppChannel, SmppSettings
from envoi.channels.sms import SmsMessage
from tests.kannel import KannelPeer
from tests.smsc import SmscPeer

ANN = "+33612345678"


def sms(text: str, to: str = ANN, ref: int = 1) -> SmsMessage:
    return SmsMessage(ref=ref, to=to, text=text)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


class Provider:
    """What the battery needs of a provider and its peer."""

    channel: Channel[SmsMessage]
    receipts: list[Receipt]
    bad_number: str  # the peer refuses this number as an address
    unroutable_number: str  # the peer refuses any message to this number for good

    def messages(self) -> list[tuple[str, str]]:
        """(number with its +, text) of each whole message the peer got."""
        raise NotImplementedError

    def part_counts(self) -> dict[str, int]:
        raise NotImplementedError

    async def break_for_a_while(self) -> None:
        """The next send fails for a reason that passes."""

    async def repair(self) -> None: ...


class SmppProvider(Provider):
    def __init__(self, peer: SmscPeer, channel: SmppChannel, receipts: list[Receipt]) -> None:
        self.peer, self.channel, self.receipts = peer, channel, receipts
        self.bad_number, self.unroutable_number = "+33700000000", "+33700000001"
        peer.refuse(self.bad_number)
        peer.refuse(self.unroutable_number, 0x62)  # ESME_RINVEXPIRY: this message can never go as it is

    def messages(self) -> list[tuple[str, str]]:
        return [("+" + number, text) for number, text in self.peer.messages()]

    def part_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for submit in self.peer.submits:
            counts["+" + submit.destination] = counts.get("+" + submit.destination, 0) + 1
        return counts

    async def break_for_a_while(self) -> None:
        self.peer.fail_next(1, smpp34.ESME_RTHROTTLED)


class KannelProvider(Provider):
    def __init__(self, peer: KannelPeer, channel: KannelChannel, receipts: list[Receipt]) -> None:
        self.peer, self.channel, self.receipts = peer, channel, receipts
        self.bad_number, self.unroutable_number = "+9991234567", "+15551234567"  # black-listed; no route

    def messages(self) -> list[tuple[str, str]]:
        return self.peer.messages()

    def part_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for part in self.peer.parts:
            counts[part.destination] = counts.get(part.destination, 0) + 1
        return counts

    async def break_for_a_while(self) -> None:
        await self.peer.stop_smsbox()

    async def repair(self) -> None:
        await self.peer.start_smsbox()


class ReceiptEndpoint(ThreadingHTTPServer):
    """Stands for Envoi's receipt route: Kannel calls it, and it hands the call to the channel."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiptHandler)
        self.channel: KannelChannel | None = None
        self.receipts: list[Receipt] = []
        self.calls: list[dict[str, str]] = []
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/receipts/kannel"


class _ReceiptHandler(BaseHTTPRequestHandler):
    server: ReceiptEndpoint

    def do_GET(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        self.server.calls.append(query)
        assert self.server.channel is not None
        receipt = self.server.channel.receipt_from(query)
        if receipt is not None:
            self.server.receipts.append(receipt)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
async def receipt_endpoint() -> AsyncIterator[ReceiptEndpoint]:
    endpoint = ReceiptEndpoint()
    yield endpoint
    endpoint.shutdown()
    endpoint.server_close()


@pytest.fixture
async def kannel(tmp_path: Path) -> AsyncIterator[KannelPeer]:
    peer = KannelPeer(tmp_path)
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
async def receipts() -> list[Receipt]:
    return []


@pytest.fixture
async def channel(smsc: SmscPeer, receipts: list[Receipt]) -> AsyncIterator[SmppChannel]:
    async def record(receipt: Receipt) -> None:
        receipts.append(receipt)

    sms = SmppChannel(SmppSettings.from_url(smsc.url), on_receipt=record)
    yield sms
    await sms.aclose()


def kannel_settings(peer: KannelPeer, endpoint: ReceiptEndpoint, **changes: Any) -> KannelSettings:
    fields = {
        "sendsms_url": peer.sendsms_url,
        "username": "envoi",
        "password": SecretStr("secret"),
        "source": "Shop",
        "receipt_url": endpoint.url,
        "receipt_secret": SecretStr("a long random string"),
        "timeout": 5,
    }
    return KannelSettings.model_validate(fields | changes)


@pytest.fixture
async def kannel_channel(kannel: KannelPeer, receipt_endpoint: ReceiptEndpoint) -> AsyncIterator[KannelChannel]:
    channel = KannelChannel(kannel_settings(kannel, receipt_endpoint))
    receipt_endpoint.channel = channel
    yield channel
    await channel.aclose()


@pytest.fixture(params=["smpp", "kannel"])
def provider(request: pytest.FixtureRequest) -> Provider:
    if request.param == "smpp":
        peer, receipts = request.getfixturevalue("smsc"), request.getfixturevalue("receipts")
        return SmppProvider(peer, request.getfixturevalue("channel"), receipts)
    endpoint = request.getfixturevalue("receipt_endpoint")
    return KannelProvider(
        request.getfixturevalue("kannel"), request.getfixturevalue("kannel_channel"), endpoint.receipts
    )


async def test_send(provider: Provider) -> None:
    [outcome] = await provider.channel.send_many([sms("Your code is 1234")])
    assert isinstance(outcome, Sent) and outcome.provider_id
    await until(lambda: provider.messages() == [(ANN, "Your code is 1234")])


async def test_bad_address(provider: Provider) -> None:
    outcomes = await provider.channel.send_many([sms("a", to=provider.bad_number), sms("b")])
    assert isinstance(outcomes[0], InvalidAddress), outcomes[0]
    assert isinstance(outcomes[1], Sent)
    await until(lambda: provider.messages() == [(ANN, "b")])


async def test_temporary_failure_then_success(provider: Provider) -> None:
    await provider.break_for_a_while()
    [first] = await provider.channel.send_many([sms("hello")])
    assert isinstance(first, Retry), first
    await provider.repair()
    [second] = await provider.channel.send_many([sms("hello")])
    assert isinstance(second, Sent)
    await until(lambda: provider.messages() == [(ANN, "hello")])


async def test_permanent_failure(provider: Provider) -> None:
    outcomes = await provider.channel.send_many([sms("hello", to=provider.unroutable_number), sms("b")])
    assert isinstance(outcomes[0], Failed), outcomes[0]
    assert isinstance(outcomes[1], Sent)
    await until(lambda: provider.messages() == [(ANN, "b")])


async def test_a_thousand_messages_without_loss(provider: Provider) -> None:
    messages = [sms(f"message {n}", to=f"+336{n:08d}", ref=n) for n in range(1000)]
    outcomes = await provider.channel.send_many(messages)
    assert all(isinstance(o, Sent) for o in outcomes), outcomes
    assert len({o.provider_id for o in outcomes if isinstance(o, Sent)}) == 1000
    expected = sorted((m.to, m.text) for m in messages)
    await until(lambda: len(provider.messages()) >= 1000, timeout=30)
    assert sorted(provider.messages()) == expected


async def test_long_gsm7_and_unicode_arrive_as_concatenated_parts(provider: Provider) -> None:
    gsm = "Your parcel is on its way. " * 15  # 405 GSM-7 characters: 3 parts of 153
    unicode = "Ваша посылка в пути. " * 5  # 105 characters outside GSM-7: 2 parts of 67
    outcomes = await provider.channel.send_many([sms(gsm), sms(unicode, to="+33611111111")])
    assert all(isinstance(o, Sent) for o in outcomes), outcomes
    await until(lambda: len(provider.messages()) == 2)
    assert provider.part_counts() == {ANN: 3, "+33611111111": 2}
    assert sorted(provider.messages()) == sorted([(ANN, gsm), ("+33611111111", unicode)])


async def test_a_delivery_receipt_reaches_the_handler(provider: Provider) -> None:
    outcomes = await provider.channel.send_many([sms("a"), sms("b" * 300, to="+33622222222")])
    ids = {o.provider_id for o in outcomes if isinstance(o, Sent)}
    await until(lambda: len(provider.receipts) == 2)
    await asyncio.sleep(0.2)  # and no more: one receipt for a long message too
    assert {(r.provider_id, r.delivered, r.status) for r in provider.receipts} == {(i, True, "DELIVRD") for i in ids}


# SMPP


async def test_smpp_sends_gsm7_unpacked_with_its_sender(channel: SmppChannel, smsc: SmscPeer) -> None:
    [outcome] = await channel.send_many([sms("Your code is 1234")])
    assert outcome == Sent("m1")
    [submit] = smsc.submits
    assert (submit.source, submit.source_ton, submit.data_coding, submit.esm_class) == ("Shop", 5, 0, 0)


async def test_smpp_parts_carry_a_user_data_header(channel: SmppChannel, smsc: SmscPeer) -> None:
    outcomes = await channel.send_many([sms("x" * 200), sms("ж" * 100, to="+33611111111")])
    assert all(isinstance(o, Sent) for o in outcomes), outcomes
    assert sorted((s.data_coding, s.esm_class) for s in smsc.submits) == [(0, 0x40)] * 2 + [(8, 0x40)] * 2
    assert smsc.binds == 1  # one session carried them all


async def test_smpp_receipts_say_undelivered_too(channel: SmppChannel, smsc: SmscPeer, receipts: list[Receipt]) -> None:
    smsc.receipt_state["33622222222"] = "UNDELIV"
    [outcome] = await channel.send_many([sms("b", to="+33622222222")])
    await until(lambda: len(receipts) == 1)
    assert isinstance(outcome, Sent) and receipts == [Receipt(outcome.provider_id or "", False, "UNDELIV")]


async def test_an_smsc_that_is_down_means_retry_and_it_reconnects(smsc: SmscPeer) -> None:
    await smsc.stop()
    channel = SmppChannel(SmppSettings.from_url(smsc.url + "&timeout=2&rebind_after=0.5"))
    try:
        [outcome] = await channel.send_many([sms("hello")])
        assert isinstance(outcome, Retry) and "SMSC unreachable" in outcome.reason
        restarted = SmscPeer()
        restarted.port, restarted.server = smsc.port, smpp34.Server("127.0.0.1", smsc.port, system_id="TestSMSC")
        await restarted.start()
        [waiting] = await channel.send_many([sms("too soon")])  # no bind attempt for a moment after a failed one
        assert isinstance(waiting, Retry) and "moments ago" in waiting.reason
        await asyncio.sleep(0.6)
        try:
            assert await channel.send_many([sms("hello again")]) == [Sent("m1")]
            assert restarted.messages() == [("33612345678", "hello again")]
        finally:
            await restarted.stop()
    finally:
        await channel.aclose()


def test_the_password_never_shows() -> None:
    settings = SmppSettings.from_url("smpp://envoi:s3cr%40t@smsc.example.net:2775?source=Shop&window=20")
    assert settings.password.get_secret_value() == "s3cr@t" and settings.window == 20
    assert "s3cr" not in repr(settings) and "s3cr" not in str(settings.model_dump())
    with pytest.raises(ValueError, match="unknown options: sourse"):
        SmppSettings.from_url("smpp://envoi:pw@host?sourse=Shop")


async def test_a_text_too_long_for_one_sms_fails_alone(channel: SmppChannel, smsc: SmscPeer) -> None:
    outcomes = await channel.send_many([sms("ж" * 17_200), sms("short")])
    assert isinstance(outcomes[0], Failed) and "at most 255" in outcomes[0].reason
    assert isinstance(outcomes[1], Sent) and smsc.messages() == [("33612345678", "short")]


async def test_a_long_sms_asks_for_one_receipt_for_its_last_part(
    channel: SmppChannel, smsc: SmscPeer, receipts: list[Receipt]
) -> None:
    [outcome] = await channel.send_many([sms("x" * 400)])
    assert isinstance(outcome, Sent) and outcome.provider_id == smsc.submits[-1].message_id == "m3"
    await until(lambda: len(receipts) == 1)
    await asyncio.sleep(0.2)
    assert receipts == [Receipt("m3", True, "DELIVRD")]


# Kannel


async def test_kannel_reports_are_signed_and_only_final_ones_count(
    kannel_channel: KannelChannel, receipt_endpoint: ReceiptEndpoint
) -> None:
    [outcome] = await kannel_channel.send_many([sms("a")])
    assert isinstance(outcome, Sent) and outcome.provider_id
    await until(lambda: len(receipt_endpoint.receipts) == 1)
    [call] = receipt_endpoint.calls
    assert (call["ref"], call["type"]) == (outcome.provider_id, "1") and len(call["sig"]) == 32
    with pytest.raises(PermissionError):
        kannel_channel.receipt_from(call | {"ref": "someone-else"})
    with pytest.raises(PermissionError):
        kannel_channel.receipt_from({k: v for k, v in call.items() if k != "sig"})
    assert kannel_channel.receipt_from(call | {"type": "8"}) is None  # the SMSC took it: not final
    assert kannel_channel.receipt_from(call | {"type": "2"}) == Receipt(outcome.provider_id, False, "UNDELIV")


async def test_kannel_refuses_a_text_longer_than_its_user_may_send(
    kannel: KannelPeer, receipt_endpoint: ReceiptEndpoint
) -> None:
    channel = KannelChannel(kannel_settings(kannel, receipt_endpoint, max_parts=2))
    try:
        outcomes = await channel.send_many([sms("x" * 400), sms("y" * 300)])
        assert isinstance(outcomes[0], Failed) and "3 parts" in outcomes[0].reason
        assert isinstance(outcomes[1], Sent)
        await until(lambda: len(kannel.messages()) == 1)
        assert kannel.messages() == [(ANN, "y" * 300)]  # never cut short by Kannel
    finally:
        await channel.aclose()


async def test_kannel_wrong_credentials_retry_and_never_quarantine(
    kannel: KannelPeer, receipt_endpoint: ReceiptEndpoint
) -> None:
    channel = KannelChannel(kannel_settings(kannel, receipt_endpoint, password=SecretStr("wrong")))
    try:
        [outcome] = await channel.send_many([sms("a")])
        assert isinstance(outcome, Retry) and "credentials" in outcome.reason
        assert "wrong" not in repr(channel.settings)
    finally:
        await channel.aclose()
