"""A database that cannot be reached: every door that needs it (the API key check, a console session, SOAP logins
and session tokens, ingestion, reads) answers 503 with Retry-After and the cause in plain words, never a 500 and
never the driver's message, which would show the database's address and password."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from envoi.app import create_app
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.processes import free_port
from tests.soap.test_soap import ORDER, envelope, fault, push_event

PASSWORD = "hunter2-do-not-show"
ORDER_EVENT = {"type": "order_confirmation", "email": "ada@example.com", "ctx": {"orderId": "A-1"}}
CAUSES = {
    "sqlite": "the database file cannot be opened",  # its volume is not mounted
    "postgresql": "the database cannot be reached",  # nothing listens at its address
}


@pytest.fixture(params=sorted(CAUSES))
async def unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client of an Envoi whose database is gone, and the cause its answers must give."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'unmounted' / 'envoi.db'}"
    else:
        url = f"postgresql://envoi:{PASSWORD}@127.0.0.1:{free_port()}/envoi"
    settings = Settings(database_url=url, data_dir=tmp_path, load_demo_data=False)
    runtime = Runtime.create(settings)
    app = create_app(settings, run_worker=False, runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://envoi.test") as client:
        yield client, CAUSES[request.param]
    await runtime.aclose()
    # aiosqlite stops the thread of a connection that failed to open by a message to it: let it end while this
    # event loop, which it answers, still runs.
    for _ in range(200):
        if not any("_connection_worker_thread" in thread.name for thread in threading.enumerate()):
            break
        await asyncio.sleep(0.01)


def check_503(response: httpx.Response, cause: str) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] == "store_unavailable" and error["cause"] == cause
    assert error["retryAfter"] == int(response.headers["Retry-After"])
    assert PASSWORD not in response.text and "127.0.0.1" not in response.text and "unmounted" not in response.text


async def test_rest_answers_503_at_the_key_check_and_the_session_check(
    unreachable: tuple[httpx.AsyncClient, str],
) -> None:
    client, cause = unreachable
    key = {"Authorization": "Bearer envoi_an-api-key-this-process-never-checked"}
    check_503(await client.post("/api/v1/events", json=ORDER_EVENT, headers=key), cause)
    check_503(await client.post("/api/v1/events/batch", json={"events": [ORDER_EVENT]}, headers=key), cause)
    check_503(await client.get("/api/v1/events/1", headers=key), cause)
    check_503(await client.get("/api/v1/events", headers={"Cookie": "envoi_session=a-console-session"}), cause)
    check_503(await client.get("/healthz"), cause)


async def test_soap_answers_a_server_fault_with_503_for_every_way_of_logging_in(
    unreachable: tuple[httpx.AsyncClient, str],
) -> None:
    client, cause = unreachable
    logon = envelope(
        '<urn:Logon xmlns:urn="urn:xtk:session"><urn:sessiontoken/>'
        "<urn:strLogin>ops@example.com</urn:strLogin><urn:strPassword>secret</urn:strPassword></urn:Logon>"
    )
    calls = [
        ("nms:rtEvent#PushEvent", push_event("", ORDER), {"Authorization": "Bearer envoi_a-key"}),
        ("nms:rtEvent#PushEvent", push_event("ops@example.com/secret", ORDER), {}),
        ("nms:rtEvent#PushEvent", push_event("a-logon-session-token", ORDER), {}),
        ("xtk:session#Logon", logon, {}),
    ]
    for action, body, headers in calls:
        response = await client.post(
            "/nl/jsp/soaprouter.jsp",
            content=body.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action, **headers},
        )
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) > 0
        code, string = fault(etree.fromstring(response.content))
        assert code == "SOAP-ENV:Server" and cause in string and "try again" in string
        assert PASSWORD not in response.text and "127.0.0.1" not in response.text
