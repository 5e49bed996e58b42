"""Attachment and webhook URLs that point inside the network (loopback, private ranges, the cloud metadata
address, IPv6 loopback, a name that resolves to a private address, numeric disguises) are refused before any
connection, unless the setting allows private networks.

No packet leaves for those addresses, even if the guard broke: the network layer under it is replaced by one
that records where it was asked to connect and connects nowhere. A name is resolved by a stand-in too.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx
import pytest
from pydantic import SecretStr

from envoi.delivery.worker import Worker
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.webhooks.sender import WebhookSender
from tests.conftest import drain, make_client
from tests.helpers import event, published_template, push
from tests.smtp_sink import SmtpSink

FAKE_NAMES = {"intranet.shop.test": ["10.1.2.3"], "mixed.shop.test": ["93.184.216.34", "10.1.2.3"]}
URLS = {
    "loopback": "https://127.0.0.1/invoice.pdf",
    "private 10/8": "https://10.0.0.5/invoice.pdf",
    "private 192.168/16": "https://192.168.1.10/invoice.pdf",
    "cloud metadata": "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "IPv6 loopback": "https://[::1]/invoice.pdf",
    "IPv4-mapped metadata": "https://[::ffff:169.254.169.254]/latest/",
    "decimal metadata": "https://2852039166/latest/",
    "name resolving to 10.1.2.3": "https://intranet.shop.test/invoice.pdf",
    "name resolving to public and private": "https://mixed.shop.test/invoice.pdf",
}
REFUSED_ADDRESS = {
    "loopback": "127.0.0.1",
    "private 10/8": "10.0.0.5",
    "private 192.168/16": "192.168.1.10",
    "cloud metadata": "169.254.169.254",
    "IPv6 loopback": "::1",
    "IPv4-mapped metadata": "169.254.169.254",
    "decimal metadata": "169.254.169.254",
    "name resolving to 10.1.2.3": "10.1.2.3",
    "name resolving to public and private": "10.1.2.3",
}


class Network:
    """Where outbound requests asked to connect; none of them connects."""

    def __init__(self) -> None:
        self.connects: list[str] = []


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    recorded = Network()

    async def connect_tcp(_backend: Any, host: str, port: int, *_args: Any, **_kwargs: Any) -> Any:
        recorded.connects.append(host)
        raise httpcore.ConnectError(f"test network: no connection to {host}:{port}")

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect_tcp)
    real = asyncio.BaseEventLoop.getaddrinfo

    async def getaddrinfo(loop: asyncio.AbstractEventLoop, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in FAKE_NAMES:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in FAKE_NAMES[name]
            ]
        return await real(loop, host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return recorded


async def _envoi(
    settings: Settings, smtp_sink: SmtpSink, **changes: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    runtime = Runtime.create(settings.model_copy(update={"smtp_url": SecretStr(smtp_sink.url), **changes}))
    async with await make_client(runtime) as client:
        yield client, runtime
    await runtime.aclose()


async def test_attachment_urls_inside_the_network_fail_the_event_without_a_connection(
    settings: Settings, smtp_sink: SmtpSink, network: Network
) -> None:
    async for api, runtime in _envoi(settings, smtp_sink):
        await published_template(api)
        ids = {name: await push(api, ctx={"orderId": name, "attachmentURL": url}) for name, url in URLS.items()}
        await drain(runtime)
        for name, event_id in ids.items():
            found = await event(api, event_id)
            assert found["status"] == "delivery_failed", (name, found)
            assert "attachment refused" in found["lastError"] and "not a public address" in found["lastError"], name
            assert REFUSED_ADDRESS[name] in found["lastError"], (name, found["lastError"])
    assert network.connects == [] and smtp_sink.messages == []


async def test_attachment_urls_inside_the_network_are_fetched_when_allowed(
    settings: Settings, smtp_sink: SmtpSink, network: Network
) -> None:
    async for api, runtime in _envoi(settings, smtp_sink, attachment_allow_private_networks=True):
        await published_template(api)
        for name in ("private 10/8", "cloud metadata", "IPv6 loopback", "name resolving to 10.1.2.3"):
            await push(api, ctx={"orderId": name, "attachmentURL": URLS[name]})
        await _one_batch(runtime)
    # The guard let each through to the (recording) network: only the setting made the difference.
    assert sorted(set(network.connects)) == ["10.0.0.5", "10.1.2.3", "169.254.169.254", "::1"]


async def _one_batch(runtime: Runtime) -> None:
    worker = Worker(runtime.settings, runtime.sessionmaker, runtime.channels, runtime.outbound)
    assert await worker.deliver_one_batch() == 4


WEBHOOK_URLS = {
    name: URLS[name]
    for name in ("loopback", "private 10/8", "cloud metadata", "IPv6 loopback", "name resolving to 10.1.2.3")
}


@pytest.mark.parametrize("allowed", [False, True], ids=["default", "allowed"])
async def test_webhook_urls_inside_the_network_are_refused_unless_allowed(
    settings: Settings, smtp_sink: SmtpSink, network: Network, allowed: bool
) -> None:
    async for api, runtime in _envoi(settings, smtp_sink):
        await published_template(api)
        hooks = {}
        for name, url in WEBHOOK_URLS.items():
            created = await api.post("/api/v1/webhooks", json={"url": url, "changes": ["event.processed"]})
            assert created.status_code == 201, created.text
            hooks[name] = created.json()["id"]
        await push(api)
        await drain(runtime)
        sender = WebhookSender(
            runtime.settings.model_copy(update={"webhook_allow_private_networks": allowed}), runtime.sessionmaker
        )
        try:
            assert await sender.send_due() == len(WEBHOOK_URLS)
        finally:
            await sender.pool.aclose()
        for name, hook_id in hooks.items():
            [attempt] = (await api.get(f"/api/v1/webhooks/{hook_id}/attempts")).json()
            assert attempt["statusCode"] is None, (name, attempt)
            if not allowed:
                assert "not a public address" in attempt["response"], (name, attempt)
    expected = ["10.0.0.5", "10.1.2.3", "127.0.0.1", "169.254.169.254", "::1"] if allowed else []
    assert sorted(set(network.connects)) == expected
