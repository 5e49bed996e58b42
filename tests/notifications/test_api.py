"""REST: each operator's own notifications, newest first with the unread count; marking read; and nothing for
anyone else (another operator, a service account)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from envoi.access.service import create_api_key
from envoi.app import create_app
from envoi.notifications.service import Category, Recipients, notify
from envoi.runtime import Runtime
from tests.notifications.conftest import Operators


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test") as client:
        yield client


async def _notify(runtime: Runtime, login: str, count: int, category: Category = Category.INFO) -> list[int]:
    ids = []
    for number in range(count):
        async with runtime.transaction() as session:
            (made,) = await notify(
                session, Recipients(operators=[login]), title=f"n{number}", body="b", category=category
            )
            ids.append(made.id)
    return ids


async def test_the_list_is_newest_first_with_pages_and_the_unread_count(
    client: httpx.AsyncClient, runtime: Runtime, operators: Operators
) -> None:
    mine = await _notify(runtime, "sam@example.com", 5)
    await _notify(runtime, "sue@example.com", 2)
    headers = operators.headers("sam@example.com")

    first = (await client.get("/api/v1/notifications", params={"limit": 3}, headers=headers)).json()
    assert [item["id"] for item in first["items"]] == mine[::-1][:3]
    assert first["unread"] == 5 and first["next"] == mine[2]
    second = (await client.get("/api/v1/notifications", params={"before": first["next"]}, headers=headers)).json()
    assert [item["id"] for item in second["items"]] == mine[1::-1] and second["next"] is None
    item = first["items"][0]
    assert item | {"createdAt": None} == {
        "id": mine[4],
        "category": "info",
        "title": "n4",
        "body": "b",
        "link": None,
        "objectType": None,
        "objectId": None,
        "createdAt": None,
        "readAt": None,
        "read": False,
    }


async def test_marking_one_and_all_read(client: httpx.AsyncClient, runtime: Runtime, operators: Operators) -> None:
    ids = await _notify(runtime, "sam@example.com", 4)
    headers = operators.headers("sam@example.com")

    marked = await client.post(f"/api/v1/notifications/{ids[0]}/read", headers=headers)
    assert marked.status_code == 200 and marked.json()["read"] is True
    first_time = marked.json()["readAt"]
    again = await client.post(f"/api/v1/notifications/{ids[0]}/read", headers=headers)
    assert again.json()["readAt"] == first_time  # marking twice keeps the first time

    # "Mark all read" up to the newest one shown: one that arrived meanwhile stays unread.
    up_to = await client.post("/api/v1/notifications/read-all", params={"upTo": ids[2]}, headers=headers)
    assert up_to.json() == {"marked": 2, "unread": 1}
    unread = (await client.get("/api/v1/notifications", params={"unreadOnly": "true"}, headers=headers)).json()
    assert [item["id"] for item in unread["items"]] == [ids[3]]
    everything = await client.post("/api/v1/notifications/read-all", headers=headers)
    assert everything.json() == {"marked": 1, "unread": 0}


async def test_another_operators_notification_is_not_found(
    client: httpx.AsyncClient, runtime: Runtime, operators: Operators
) -> None:
    (theirs,) = await _notify(runtime, "sue@example.com", 1)
    sam = operators.headers("sam@example.com")
    refused = await client.post(f"/api/v1/notifications/{theirs}/read", headers=sam)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/v1/notifications", headers=sam)).json()["items"] == []
    assert (await client.post("/api/v1/notifications/read-all", headers=sam)).json() == {"marked": 0, "unread": 0}
    sue = (await client.get("/api/v1/notifications", headers=operators.headers("sue@example.com"))).json()
    assert sue["unread"] == 1


async def test_an_operator_in_no_group_reads_their_own(
    client: httpx.AsyncClient, runtime: Runtime, operators: Operators
) -> None:
    await _notify(runtime, "nobody@example.com", 1, Category.ACTION_REQUIRED)
    page = (await client.get("/api/v1/notifications", headers=operators.headers("nobody@example.com"))).json()
    assert page["unread"] == 1 and page["items"][0]["category"] == "action_required"


async def test_a_service_account_has_no_inbox(
    client: httpx.AsyncClient, runtime: Runtime, operators: Operators
) -> None:
    (some,) = await _notify(runtime, "sam@example.com", 1)
    async with runtime.transaction() as session:
        _key, plaintext = await create_api_key(session, "billing")
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert (await client.get("/api/v1/notifications", headers=headers)).json() == {
        "items": [],
        "unread": 0,
        "next": None,
    }
    assert (await client.post(f"/api/v1/notifications/{some}/read", headers=headers)).status_code == 404
    assert (await client.post("/api/v1/notifications/read-all", headers=headers)).json() == {"marked": 0, "unread": 0}


async def test_without_credentials_nothing(client: httpx.AsyncClient, operators: Operators) -> None:
    for method, path in [
        ("GET", "/api/v1/notifications"),
        ("POST", "/api/v1/notifications/read-all"),
        ("POST", "/api/v1/notifications/1/read"),
        ("GET", "/api/v1/notifications/stream"),
    ]:
        assert (await client.request(method, path)).status_code == 401
