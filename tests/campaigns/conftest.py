"""Marketing email tests: a real SMTP sink, operators who create and edit deliveries (and some who do not),
1,000 profiles in an audience, opens made by fetching the pixel of the emails the sink received."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.access.service import create_api_key
from envoi.campaigns.models import Audience, Profile
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.smtp_sink import ReceivedEmail

# Who makes the email (cora), who edits it (ed, eve), and who does not (dora, a delivery supervisor too).
PEOPLE = ("cora@example.com", "ed@example.com", "eve@example.com", "dora@example.com")
MAKERS = {"cora@example.com", "ed@example.com", "eve@example.com"}
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36"
_PIXEL = re.compile(r'src="https?://[^/"]+(/t/o/[^"]+\.gif)"')


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Tests open emails right after sending them (no scanner window) and run A/B tests of a second."""
    return settings.model_copy(
        update={
            "tracking_bot_window_seconds": 0.0,
            "ab_test_min_duration_seconds": 1.0,
            "public_url": "http://envoi.test",
        }
    )


@pytest.fixture
def mk_runtime(smtp_runtime: Runtime) -> Runtime:
    """The runtime whose emails go to the SMTP sink, with the settings above."""
    return smtp_runtime


@pytest.fixture
def mk_api(smtp_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return smtp_api


@dataclass
class People:
    ids: dict[str, int]
    keys: dict[str, str]

    def headers(self, login: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[login]}"}


@pytest.fixture
async def people(mk_runtime: Runtime) -> People:
    ids, keys = {}, {}
    async with mk_runtime.transaction() as session:
        for login in PEOPLE:
            operator = await create_operator(session, email=login, name=login.split("@")[0].title(), password="x" * 12)
            await add_member(session, "delivery_supervisors", operator.id)
            ids[login] = operator.id
            _key, keys[login] = await create_api_key(session, login, operator_id=operator.id)
    return People(ids, keys)


async def add_profiles(runtime: Runtime, count: int, *, language: str = "en", start: int = 0) -> None:
    async with runtime.transaction() as session:
        session.add_all(
            Profile(
                email=f"p{n}@example.com",
                first_name=f"First{n}",
                last_name="Last",
                language=language,
                external_id=f"ext-{n}",
                attributes={"n": n},
                subscribed=True,
            )
            for n in range(start, start + count)
        )


async def add_audience(runtime: Runtime, name: str = "english", language: str = "en") -> int:
    async with runtime.transaction() as session:
        audience = Audience(
            name=name, label=name.title(), filters=[{"field": "language", "op": "eq", "value": language}]
        )
        session.add(audience)
        await session.flush()
        return audience.id


async def template_id(api: httpx.AsyncClient, name: str) -> int:
    response = await api.get("/api/v1/delivery-templates")
    assert response.status_code == 200, response.text
    return next(t["id"] for t in response.json() if t["name"] == name)


def pixel_path(received: ReceivedEmail) -> str:
    html = received.message.get_body(("html",))
    assert html is not None
    found = _PIXEL.search(html.get_content())
    assert found, "no open pixel in the email"
    return found[1].replace("&amp;", "&")


def variant(received: ReceivedEmail, subjects: dict[str, str]) -> str:
    return subjects[str(received.message["Subject"])]


def ab_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "label": "November news",
        "variants": [
            {
                "name": "A",
                "from": "News <news@example.com>",
                "subject": "Our November news",
                "html": '<p>Hello {{ profile.firstName }}</p><p><a href="https://shop.example.com/?p=1&amp;q=2">Shop</a></p>',
            },
            {
                "name": "B",
                "from": "News <news@example.com>",
                "subject": "{{ profile.firstName }}, 20 % off this week",
                "html": '<p>Hi {{ profile.firstName }}</p><p><a href="https://shop.example.com/sale">Sale</a></p>',
            },
        ],
        "testSplit": [10, 10],
        "testDurationSeconds": 1,
        "criterion": "open_rate",
        "winnerMode": "automatic",
        "seed": 42,
    }
    return body | changes
