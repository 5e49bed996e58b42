"""The conformance battery every push provider passes, against a real peer on 127.0.0.1 (tests/push_peers.py):
send, bad address, temporary failure then success, permanent failure, credentials that are never the device's
fault, 1,000 messages without loss. Then each protocol's own rules.

Providers: APNs (HTTP/2, token auth), FCM HTTP v1 (service account OAuth2), Web Push (VAPID, aes128gcm).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import SecretStr, ValidationError

from envoi.channels import apns as apns_module
from envoi.channels.apns import ApnsChannel, ApnsSettings
from envoi.channels.base import Failed, InvalidAddress, Outcome, Retry, Sent
from envoi.channels.fcm import FcmChannel, FcmSettings
from envoi.channels.push import Platform, PushMessage
from envoi.channels.webpush import WebPushChannel, WebPushSettings, vapid_key
from tests.push_peers import ApnsPeer, FcmPeer, HttpsPeer, WebPushPeer
from tests.smtp_sink import _make_certificates

TEAM_ID, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "com.example.shop"
PROJECT, CLIENT_EMAIL = "shop-4b1d", "envoi@shop-4b1d.iam.gserviceaccount.com"
Channel = ApnsChannel | FcmChannel | WebPushChannel


@dataclass(frozen=True)
class Keys:
    apns: ec.EllipticCurvePrivateKey
    fcm: rsa.RSAPrivateKey
    vapid: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _make_certificates(tmp_path_factory.mktemp("push-tls"))


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(65537, 2048), new_ec_key())


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def raw_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def apns_settings(peer: ApnsPeer, ca: Path, key: ec.EllipticCurvePrivateKey) -> ApnsSettings:
    return ApnsSettings(
        team_id=TEAM_ID, key_id=KEY_ID, private_key=SecretStr(pem(key)), topic=TOPIC, url=peer.url, ca_file=ca
    )


def service_account(key: rsa.RSAPrivateKey) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "2b3c",
            "private_key": pem(key),
            "client_email": CLIENT_EMAIL,
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


def fcm_settings(peer: FcmPeer, ca: Path, key: rsa.RSAPrivateKey, **overrides: Any) -> FcmSettings:
    return FcmSettings.from_service_account(
        service_account(key), token_uri=peer.token_uri, url=peer.url, ca_file=ca, **overrides
    )


def webpush_settings(ca: Path, key: ec.EllipticCurvePrivateKey, **overrides: Any) -> WebPushSettings:
    fields: dict[str, Any] = {"allow_private_networks": True, "ttl": 3600, "urgency": "high"} | overrides
    return WebPushSettings(
        vapid_private_key=SecretStr(pem(key)), vapid_subject="mailto:ops@example.com", ca_file=ca, **fields
    )


@dataclass
class Provider:
    """A provider under test: its channel, its peer, and how to make an address the peer will accept."""

    name: str
    platform: Platform
    peer: HttpsPeer
    channel: Channel
    address: Callable[[int], str]
    malformed: str

    def message(self, token: str, ref: int = 1, **fields: Any) -> PushMessage:
        return PushMessage(ref=ref, token=token, platform=self.platform, **({"body": "Hello"} | fields))

    async def send(self, *messages: PushMessage) -> list[Outcome]:
        return await self.channel.send_many(messages)


def browser_subscription(peer: WebPushPeer, **options: Any) -> str:
    """What a browser does on subscribing: a P-256 key pair and a 16-byte auth secret, then the service's JSON."""
    return peer.subscribe(new_ec_key(), os.urandom(16), **options)


@pytest.fixture(params=["apns", "fcm", "webpush"])
async def provider(
    request: pytest.FixtureRequest, certificates: tuple[Path, Path, Path], keys: Keys
) -> AsyncIterator[Provider]:
    ca = certificates[0]
    tested: Provider
    if request.param == "apns":
        apns_peer = ApnsPeer(
            certificates, public_key=keys.apns.public_key(), team_id=TEAM_ID, key_id=KEY_ID, topic=TOPIC
        )
        channel: Channel = ApnsChannel(apns_settings(apns_peer, ca, keys.apns))
        tested = Provider("apns", "ios", apns_peer, channel, lambda n: f"{n:064x}", "not-a-hex-token")
    elif request.param == "fcm":
        fcm_peer = FcmPeer(
            certificates, public_key=keys.fcm.public_key(), client_email=CLIENT_EMAIL, project_id=PROJECT
        )
        channel = FcmChannel(fcm_settings(fcm_peer, ca, keys.fcm))
        tested = Provider("fcm", "android", fcm_peer, channel, lambda n: f"d{n}:APA91b{n:0>140}", "not a token")
    else:
        web_peer = WebPushPeer(certificates)
        channel = WebPushChannel(webpush_settings(ca, keys.vapid))
        tested = Provider(
            "webpush", "web", web_peer, channel, lambda _n: browser_subscription(web_peer), "not a subscription"
        )
    await tested.peer.start()
    yield tested
    await tested.channel.aclose()
    await tested.peer.stop()


async def test_send(provider: Provider) -> None:
    address = provider.address(1)
    data = {"order": "A-1042", "url": "/orders/A-1042"}
    message = provider.message(
        address, title="Order shipped", body="Your parcel is on its way 📦", data=data, badge=3, sound="chime.caf"
    )
    [outcome] = await provider.send(message)
    [got] = provider.peer.received
    assert outcome == Sent(got.id)
    assert (got.token, got.title, got.body, dict(got.data)) == (address, "Order shipped", message.body, data)
    assert (got.badge, got.sound) == (3, "chime.caf")


async def test_send_a_body_alone(provider: Provider) -> None:
    [outcome] = await provider.send(provider.message(provider.address(1), body="Your code is 1234"))
    [got] = provider.peer.received
    assert outcome == Sent(got.id)
    assert (got.title, got.body, dict(got.data), got.badge, got.sound) == (None, "Your code is 1234", {}, None, None)


async def test_bad_address(provider: Provider) -> None:
    dead, good = provider.address(2), provider.address(3)
    provider.peer.unregister(dead)
    outcomes = await provider.send(
        provider.message(provider.malformed), provider.message(dead, ref=2), provider.message(good, ref=3)
    )
    assert isinstance(outcomes[0], InvalidAddress)
    assert isinstance(outcomes[1], InvalidAddress)
    assert isinstance(outcomes[2], Sent)
    assert [r.token for r in provider.peer.received] == [good]


@pytest.mark.parametrize(("status", "retry_after", "after"), [(429, "7", 7.0), (503, "120", 120.0), (500, None, None)])
async def test_temporary_failure_then_success(
    provider: Provider, status: int, retry_after: str | None, after: float | None
) -> None:
    address = provider.address(1)
    provider.peer.fail_next(1, status, retry_after)
    [first] = await provider.send(provider.message(address))
    assert isinstance(first, Retry) and str(status) in first.reason and first.after == after
    [second] = await provider.send(provider.message(address))
    assert isinstance(second, Sent)
    assert [r.token for r in provider.peer.received] == [address]


async def test_permanent_failure(provider: Provider) -> None:
    too_large = provider.message(provider.address(1), body="x" * 5000)  # every provider takes at most 4 KiB
    outcomes = await provider.send(too_large, provider.message(provider.address(2), ref=2))
    assert isinstance(outcomes[0], Failed)
    assert isinstance(outcomes[1], Sent) and len(provider.peer.received) == 1


async def test_a_peer_that_is_down_means_retry(provider: Provider) -> None:
    address = provider.address(1)
    await provider.peer.stop()
    [outcome] = await provider.send(provider.message(address))
    assert isinstance(outcome, Retry) and "unreachable" in outcome.reason


async def test_a_thousand_messages_without_loss(provider: Provider) -> None:
    messages = [provider.message(provider.address(n), ref=n, body=f"message {n}") for n in range(1000)]
    outcomes = await provider.send(*messages)
    assert all(isinstance(o, Sent) for o in outcomes)
    assert len({o.provider_id for o in outcomes if isinstance(o, Sent)}) == 1000
    assert sorted((r.token, r.body) for r in provider.peer.received) == sorted((m.token, m.body) for m in messages)
    assert provider.peer.http_versions == {"2"}
    assert len(provider.peer.connections) == 1  # HTTP/2: every request a stream on one connection


# APNs


@pytest.fixture
async def apns_peer(certificates: tuple[Path, Path, Path], keys: Keys) -> AsyncIterator[ApnsPeer]:
    peer = ApnsPeer(certificates, public_key=keys.apns.public_key(), team_id=TEAM_ID, key_id=KEY_ID, topic=TOPIC)
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
async def apns(apns_peer: ApnsPeer, certificates: tuple[Path, Path, Path], keys: Keys) -> AsyncIterator[ApnsChannel]:
    channel = ApnsChannel(apns_settings(apns_peer, certificates[0], keys.apns))
    yield channel
    await channel.aclose()


def ios(token: str = "ab" * 32, **fields: Any) -> PushMessage:
    return PushMessage(ref=1, token=token, platform="ios", **({"body": "Hello"} | fields))


async def test_apns_request(apns: ApnsChannel, apns_peer: ApnsPeer) -> None:
    await apns.send_many([ios(title="Hi", body="there", data={"order": "A-1"}, badge=2, sound="default")])
    [got] = apns_peer.received
    assert got.payload == {
        "order": "A-1",
        "aps": {"alert": {"title": "Hi", "body": "there"}, "badge": 2, "sound": "default"},
    }
    headers = got.headers
    assert (headers["apns-topic"], headers["apns-push-type"], headers["apns-priority"]) == (TOPIC, "alert", "10")
    token = headers["authorization"].removeprefix("bearer ")
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    assert jwt.decode(token, options={"verify_signature": False}).keys() == {"iss", "iat"}
    assert apns_peer.http_versions == {"2"}


async def test_apns_an_expired_provider_token_is_renewed_never_quarantined(
    apns: ApnsChannel, apns_peer: ApnsPeer
) -> None:
    assert all(isinstance(o, Sent) for o in await apns.send_many([ios(), ios()]))
    apns_peer.expire_provider_tokens()
    [refused] = await apns.send_many([ios()])
    assert isinstance(refused, Retry) and "ExpiredProviderToken" in refused.reason
    [sent] = await apns.send_many([ios()])
    assert isinstance(sent, Sent)
    first, *_, last = apns_peer.provider_tokens
    assert len(set(apns_peer.provider_tokens)) == 2 and last != first


async def test_apns_the_provider_token_is_reused_then_renewed_after_50_minutes(
    apns: ApnsChannel, apns_peer: ApnsPeer
) -> None:
    await apns.send_many([ios(), ios(), ios()])
    assert len(set(apns_peer.provider_tokens)) == 1  # Apple refuses renewals more often than every 20 minutes
    cached = apns._token
    assert cached is not None
    apns._token = dataclasses.replace(cached, issued_at=cached.issued_at - apns_module.TOKEN_LIFETIME)
    await apns.send_many([ios()])
    assert len(set(apns_peer.provider_tokens)) == 2


async def test_apns_a_key_apple_does_not_know_is_retry_never_invalid_address(
    apns_peer: ApnsPeer, certificates: tuple[Path, Path, Path]
) -> None:
    channel = ApnsChannel(apns_settings(apns_peer, certificates[0], new_ec_key()))
    try:
        outcomes = await channel.send_many([ios(), ios("cd" * 32)])
    finally:
        await channel.aclose()
    assert all(isinstance(o, Retry) and "InvalidProviderToken" in o.reason for o in outcomes)
    assert apns_peer.received == []


async def test_apns_device_token_for_another_app(apns: ApnsChannel, apns_peer: ApnsPeer) -> None:
    apns_peer.topic = "com.example.other"
    [outcome] = await apns.send_many([ios()])
    assert outcome == InvalidAddress("APNs: DeviceTokenNotForTopic (400)")


# FCM


@pytest.fixture
async def fcm_peer(certificates: tuple[Path, Path, Path], keys: Keys) -> AsyncIterator[FcmPeer]:
    peer = FcmPeer(certificates, public_key=keys.fcm.public_key(), client_email=CLIENT_EMAIL, project_id=PROJECT)
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
async def fcm(fcm_peer: FcmPeer, certificates: tuple[Path, Path, Path], keys: Keys) -> AsyncIterator[FcmChannel]:
    channel = FcmChannel(fcm_settings(fcm_peer, certificates[0], keys.fcm))
    yield channel
    await channel.aclose()


def android(token: str = "d1:APA91b" + "x" * 140, **fields: Any) -> PushMessage:
    return PushMessage(ref=1, token=token, platform="android", **({"body": "Hello"} | fields))


async def test_fcm_request(fcm: FcmChannel, fcm_peer: FcmPeer) -> None:
    await fcm.send_many([android(title="Hi", body="there", data={"order": "A-1"}, badge=2, sound="default")])
    [got] = fcm_peer.received
    assert got.payload == {
        "token": "d1:APA91b" + "x" * 140,
        "notification": {"title": "Hi", "body": "there"},
        "data": {"order": "A-1"},
        "android": {"notification": {"sound": "default", "notification_count": 2}},
        "apns": {"payload": {"aps": {"sound": "default", "badge": 2}}},
    }
    assert got.headers["authorization"].startswith("Bearer ya29.") and fcm_peer.grants == 1


async def test_fcm_a_refused_access_token_is_replaced_never_quarantined(fcm: FcmChannel, fcm_peer: FcmPeer) -> None:
    assert isinstance((await fcm.send_many([android()]))[0], Sent)
    fcm_peer.revoke_access_tokens()
    [refused] = await fcm.send_many([android()])
    assert isinstance(refused, Retry) and "access token" in refused.reason
    [sent] = await fcm.send_many([android()])
    assert isinstance(sent, Sent) and fcm_peer.grants == 2


async def test_fcm_the_access_token_is_renewed_before_it_expires(fcm: FcmChannel, fcm_peer: FcmPeer) -> None:
    fcm_peer.expires_in = 1
    assert all(isinstance(o, Sent) for o in await fcm.send_many([android()] * 20))
    assert fcm_peer.grants == 1  # one exchange in flight, whatever the number of sends
    await asyncio.sleep(1.0)
    assert isinstance((await fcm.send_many([android()]))[0], Sent)
    assert fcm_peer.grants == 2


async def test_fcm_credentials_the_token_endpoint_refuses_are_retry_never_invalid_address(
    fcm: FcmChannel, fcm_peer: FcmPeer
) -> None:
    fcm_peer.refuse_credentials = True
    outcomes = await fcm.send_many([android()] * 20)
    assert all(isinstance(o, Retry) and "check client_email" in o.reason for o in outcomes)
    assert fcm_peer.requests == 1 and fcm_peer.received == []  # one refusal told every waiting send


async def test_fcm_permission_denied_is_retry_and_another_senders_token_is_invalid(
    fcm_peer: FcmPeer, certificates: tuple[Path, Path, Path], keys: Keys
) -> None:
    fcm_peer.other_sender.add("d2:APA91b" + "y" * 140)
    good = FcmChannel(fcm_settings(fcm_peer, certificates[0], keys.fcm))
    wrong_project = FcmChannel(fcm_settings(fcm_peer, certificates[0], keys.fcm, project_id="someone-else"))
    try:
        [mismatch] = await good.send_many([android("d2:APA91b" + "y" * 140)])
        [denied] = await wrong_project.send_many([android()])
    finally:
        await good.aclose()
        await wrong_project.aclose()
    assert isinstance(mismatch, InvalidAddress) and "SENDER_ID_MISMATCH" in mismatch.reason
    assert isinstance(denied, Retry) and "PERMISSION_DENIED" in denied.reason


# Web Push


@pytest.fixture
async def webpush_peer(certificates: tuple[Path, Path, Path]) -> AsyncIterator[WebPushPeer]:
    peer = WebPushPeer(certificates)
    await peer.start()
    yield peer
    await peer.stop()


def web(token: str, **fields: Any) -> PushMessage:
    return PushMessage(ref=1, token=token, platform="web", **({"body": "Hello"} | fields))


async def send_web(settings: WebPushSettings, *messages: PushMessage) -> list[Outcome]:
    channel = WebPushChannel(settings)
    try:
        return await channel.send_many(messages)
    finally:
        await channel.aclose()


async def test_webpush_request(webpush_peer: WebPushPeer, certificates: tuple[Path, Path, Path], keys: Keys) -> None:
    subscription = browser_subscription(webpush_peer, application_server_key=raw_public(keys.vapid))
    message = web(subscription, title="Hi", body="there", data={"order": "A-1"}, badge=2, sound="default")
    await send_web(webpush_settings(certificates[0], keys.vapid), message)
    [got] = webpush_peer.received  # the peer decrypted it with the browser's key: the encryption is right
    assert got.payload == {"title": "Hi", "body": "there", "data": {"order": "A-1"}, "badge": 2, "sound": "default"}
    headers = got.headers
    assert (headers["ttl"], headers["urgency"], headers["content-encoding"]) == ("3600", "high", "aes128gcm")
    scheme, _, params = headers["authorization"].partition(" ")
    values = dict(part.split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and base64.urlsafe_b64decode(values["k"] + "==") == raw_public(keys.vapid)
    claims = jwt.decode(values["t"], options={"verify_signature": False})
    assert claims["aud"] == webpush_peer.url and claims["sub"] == "mailto:ops@example.com"


async def test_webpush_a_subscription_for_another_vapid_key_fails_without_quarantine(
    webpush_peer: WebPushPeer, certificates: tuple[Path, Path, Path], keys: Keys
) -> None:
    subscription = browser_subscription(webpush_peer, application_server_key=raw_public(new_ec_key()))
    [outcome] = await send_web(webpush_settings(certificates[0], keys.vapid), web(subscription))
    assert isinstance(outcome, Failed) and "another VAPID key" in outcome.reason


@pytest.mark.parametrize(
    "token",
    [
        "{}",
        '{"endpoint": "https://push.example.net/x"}',
        '{"endpoint": "https://push.example.net/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}',
        '{"endpoint": "ftp://push.example.net/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}',
        "[1, 2]",
    ],
)
async def test_webpush_malformed_subscriptions(
    token: str, webpush_peer: WebPushPeer, certificates: tuple[Path, Path, Path], keys: Keys
) -> None:
    [outcome] = await send_web(webpush_settings(certificates[0], keys.vapid), web(token))
    assert isinstance(outcome, InvalidAddress)


async def test_webpush_refuses_plain_http_and_private_endpoints(
    webpush_peer: WebPushPeer, certificates: tuple[Path, Path, Path], keys: Keys
) -> None:
    port = webpush_peer.port
    loopback = browser_subscription(webpush_peer)
    localhost = browser_subscription(webpush_peer, url=f"https://localhost:{port}")
    ipv6 = browser_subscription(webpush_peer, url=f"https://[::1]:{port}")
    plain = browser_subscription(webpush_peer, url=f"http://127.0.0.1:{port}")
    settings = webpush_settings(certificates[0], keys.vapid, allow_private_networks=False)
    outcomes = await send_web(settings, *(web(token) for token in (loopback, localhost, ipv6, plain)))
    assert all(isinstance(o, InvalidAddress) and "not a public address" in o.reason for o in outcomes[:3])
    assert outcomes[3] == InvalidAddress("a Web Push endpoint must be an https URL")
    assert webpush_peer.requests == 0


# Settings


def test_secrets_never_show(keys: Keys) -> None:
    settings = [
        ApnsSettings(team_id=TEAM_ID, key_id=KEY_ID, private_key=SecretStr(pem(keys.apns)), topic=TOPIC),
        FcmSettings.from_service_account(service_account(keys.fcm)),
        WebPushSettings(vapid_private_key=SecretStr(pem(keys.vapid)), vapid_subject="https://example.com"),
    ]
    for shown in settings:
        assert "PRIVATE KEY" not in repr(shown) and "PRIVATE KEY" not in str(shown.model_dump())
    assert settings[0].url == "https://api.push.apple.com"
    fcm = settings[1]
    assert isinstance(fcm, FcmSettings)
    assert (fcm.project_id, fcm.client_email, fcm.private_key_id) == (PROJECT, CLIENT_EMAIL, "2b3c")
    assert (fcm.token_uri, fcm.url) == ("https://oauth2.googleapis.com/token", "https://fcm.googleapis.com")


def test_a_wrong_key_is_refused_without_showing_it(keys: Keys) -> None:
    secret = pem(keys.fcm)  # an RSA key where Apple's EC key belongs, and the reverse
    with pytest.raises(ValidationError, match="EC P-256") as apple:
        ApnsSettings(team_id=TEAM_ID, key_id=KEY_ID, private_key=SecretStr(secret), topic=TOPIC)
    with pytest.raises(ValidationError, match="RSA key") as google:
        FcmSettings.from_service_account(service_account(keys.fcm), private_key=SecretStr(pem(keys.apns)))
    with pytest.raises(ValidationError, match="vapid_private_key must be") as vapid:
        WebPushSettings(vapid_private_key=SecretStr("not a key"), vapid_subject="mailto:ops@example.com")
    for error in (apple, google, vapid):
        assert "PRIVATE KEY" not in str(error.value) and "not a key" not in str(error.value)
    with pytest.raises(ValueError, match="not a service account"):
        FcmSettings.from_service_account('{"type": "authorized_user"}')


def test_a_vapid_key_as_web_push_tools_print_it(keys: Keys) -> None:
    raw = keys.vapid.private_numbers().private_value.to_bytes(32)
    printed = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    settings = WebPushSettings(vapid_private_key=SecretStr(printed), vapid_subject="mailto:ops@example.com")
    assert raw_public(vapid_key(settings.vapid_private_key)) == raw_public(keys.vapid)
