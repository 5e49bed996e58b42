"""The conformance battery every SMS provider passes, against a real peer on 127.0.0.1: send, bad address,
temporary failure then success, permanent failure, 1,000 messages without loss, concatenated parts, receipts.

Providers: SMPP 3.4 (against the server side of the smpp34 package).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import smpp34

from envoi.channels.base import Failed, InvalidAddress, Receipt, Retry, Sent
from envoi.channels.smpp import SmppChannel, SmppSettings
from envoi.channels.sms import SmsMessage
from tests.smsc import SmscPeer

ANN = "+33612345678"


@pytest.fixture
async def smsc() -> AsyncIterator[SmscPeer]:
    peer = SmscPeer()
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


def sms(text: str, to: str = ANN, ref: int = 1) -> SmsMessage:
    return SmsMessage(ref=ref, to=to, text=text)


async def until(condition: object, timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


async def test_send(channel: SmppChannel, smsc: SmscPeer) -> None:
    [outcome] = await channel.send_many([sms("Your code is 1234")])
    assert outcome == Sent("m1")
    assert smsc.messages() == [("33612345678", "Your code is 1234")]
    [submit] = smsc.submits
    assert (submit.source, submit.source_ton, submit.data_coding, submit.esm_class) == ("Shop", 5, 0, 0)


async def test_bad_address(channel: SmppChannel, smsc: SmscPeer) -> None:
    smsc.refuse("+33600000000")
    outcomes = await channel.send_many([sms("a", to="+33600000000"), sms("b")])
    assert isinstance(outcomes[0], InvalidAddress) and "invalid destination address" in outcomes[0].reason
    assert isinstance(outcomes[1], Sent)
    assert smsc.messages() == [("33612345678", "b")]


async def test_temporary_failure_then_success(channel: SmppChannel, smsc: SmscPeer) -> None:
    smsc.fail_next(1, smpp34.ESME_RTHROTTLED)
    [first] = await channel.send_many([sms("hello")])
    assert isinstance(first, Retry) and "throttled" in first.reason
    [second] = await channel.send_many([sms("hello")])
    assert isinstance(second, Sent)
    assert smsc.messages() == [("33612345678", "hello")]


async def test_permanent_failure(channel: SmppChannel, smsc: SmscPeer) -> None:
    smsc.fail_next(1, 0x62)  # ESME_RINVEXPIRY: this message can never go as it is
    [outcome] = await channel.send_many([sms("hello")])
    assert isinstance(outcome, Failed) and "0x62" in outcome.reason
    assert smsc.messages() == []


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


async def test_a_thousand_messages_without_loss(channel: SmppChannel, smsc: SmscPeer) -> None:
    messages = [sms(f"message {n}", to=f"+336{n:08d}", ref=n) for n in range(1000)]
    outcomes = await channel.send_many(messages)
    assert all(isinstance(o, Sent) for o in outcomes)
    assert len({o.provider_id for o in outcomes if isinstance(o, Sent)}) == 1000
    assert sorted(smsc.messages()) == sorted((m.to.lstrip("+"), m.text) for m in messages)
    assert smsc.binds == 1  # one session carried them all


async def test_long_gsm7_and_unicode_arrive_as_concatenated_parts(channel: SmppChannel, smsc: SmscPeer) -> None:
    gsm = "Your parcel is on its way. " * 15  # 405 GSM-7 characters
    unicode = "Ваша посылка в пути. " * 5  # 105 characters outside GSM-7
    outcomes = await channel.send_many([sms(gsm), sms(unicode, to="+33611111111")])
    assert all(isinstance(o, Sent) for o in outcomes)
    by_number: dict[str, list[int]] = {}
    for submit in smsc.submits:
        by_number.setdefault(submit.destination, []).append(submit.data_coding)
    assert by_number == {"33612345678": [0, 0, 0], "33611111111": [8, 8]}
    assert all(submit.esm_class == 0x40 for submit in smsc.submits)
    assert sorted(smsc.messages()) == sorted([("33612345678", gsm), ("33611111111", unicode)])


async def test_delivery_receipts_reach_the_handler(
    channel: SmppChannel, smsc: SmscPeer, receipts: list[Receipt]
) -> None:
    smsc.receipt_state["33622222222"] = "UNDELIV"
    outcomes = await channel.send_many([sms("a"), sms("b", to="+33622222222")])
    await until(lambda: len(receipts) == 2)
    ids = [o.provider_id for o in outcomes if isinstance(o, Sent)]
    assert set(receipts) == {Receipt(ids[0], True, "DELIVRD"), Receipt(ids[1], False, "UNDELIV")}


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
