"""Overload: a full queue pauses ingestion for everyone, and each API key is held to its own rate; both answer 429
(REST) or a SOAP Server fault (HTTP 503) with Retry-After, store nothing, and let the same request in later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from lxml import etree
from sqlalchemy import func, select, update

from envoi.access.service import create_api_key
from envoi.app import create_app
from envoi.db.base import utcnow
from envoi.db.engine import create_engine, create_sessionmaker
from envoi.events.admission import Admission
from envoi.events.models import Event, EventMode, RateBucket
from envoi.events.rate_buckets import RateBuckets
from envoi.events.schemas import EventIn
from envoi.events.service import ingest_batch
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.workflows.activities.base import RunContext
from envoi.workflows.activities.upkeep import PurgeActivity, PurgeSettings
from tests.conftest import drain
from tests.helpers import create_type, published_template
from tests.soap.test_soap import ORDER, fault, push_event

ORDER_EVENT = {"type": "order_confirmation", "email": "ada@example.com", "ctx": {"orderId": "A-1"}}
RATE = 0.01  # events a second: a refused key waits 100 seconds for each event, so the test never sees a refill


async def stored(runtime: Runtime) -> int:
    async with runtime.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


async def new_key(runtime: Runtime, name: str) -> dict[str, str]:
    async with runtime.transaction() as session:
        _key, plaintext = await create_api_key(session, name)
    return {"Authorization": f"Bearer {plaintext}"}


def retry_after(response: httpx.Response) -> int:
    return int(response.headers["Retry-After"])


async def batch(api: httpx.AsyncClient, size: int, **headers: str) -> httpx.Response:
    return await api.post("/api/v1/events/batch", json={"events": [ORDER_EVENT] * size}, headers=headers)


async def soap_push(api: httpx.AsyncClient, **headers: str) -> tuple[httpx.Response, str, str]:
    """A PushEvent with the key in the Authorization header; the answer, and its fault's code and string."""
    response = await api.post(
        "/nl/jsp/soaprouter.jsp",
        content=push_event("", ORDER).encode(),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "nms:rtEvent#PushEvent", **headers},
    )
    root = etree.fromstring(response.content)
    code, string = fault(root) if response.status_code != 200 else ("", "")
    return response, code, string


class TestQueueDepth:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"ingest_max_queue_depth": 5})

    async def test_a_full_queue_refuses_every_key_until_the_workers_catch_up(
        self, runtime: Runtime, api: httpx.AsyncClient
    ) -> None:
        await published_template(api)
        async with runtime.transaction() as session:  # a backlog, stored before this process read the depth
            await ingest_batch(session, [EventIn.model_validate(ORDER_EVENT)] * 5, api_key_id=None)
        other = await new_key(runtime, "another system")

        single = await api.post("/api/v1/events", json=ORDER_EVENT)
        assert single.status_code == 429 and retry_after(single) > 0
        assert single.json()["error"]["code"] == "queue_full"
        assert "Nothing was stored" in single.json()["error"]["message"]
        refused_batch = await batch(api, 2, **other)  # the queue is everyone's: another key waits too
        assert refused_batch.status_code == 429 and retry_after(refused_batch) > 0
        answer, code, string = await soap_push(api, **other)
        assert answer.status_code == 503 and retry_after(answer) > 0
        assert code == "SOAP-ENV:Server" and "the queue holds 5 or more events" in string.lower()
        assert await stored(runtime) == 5

        await drain(runtime)  # the workers catch up: the next reading of the depth lets events in again
        accepted = await _retry_until_accepted(lambda: api.post("/api/v1/events", json=ORDER_EVENT))
        assert accepted.json()["status"] == "pending"
        assert (await batch(api, 2, **other)).status_code == 202
        assert await stored(runtime) == 8

    async def test_scheduled_events_and_marketing_emails_are_not_a_backlog(
        self, runtime: Runtime, api: httpx.AsyncClient
    ) -> None:
        await create_type(api, "order_confirmation")
        later = ORDER_EVENT | {"scheduled": "2999-01-01T00:00:00Z"}
        async with runtime.transaction() as session:
            await ingest_batch(session, [EventIn.model_validate(later)] * 6, api_key_id=None)
            newsletter = await ingest_batch(session, [EventIn.model_validate(ORDER_EVENT)] * 6, api_key_id=None)
            # A delivery's recipients: sent after every pushed event, so they never hold a pushed one back.
            await session.execute(update(Event).where(Event.id.in_(newsletter)).values(mode=EventMode.MARKETING))
        assert (await api.post("/api/v1/events", json=ORDER_EVENT)).status_code == 202


async def _retry_until_accepted(send: Any) -> httpx.Response:
    """What a client does with a 429: wait Retry-After (here at most a tenth of a second), and send it again."""
    for _ in range(200):
        response: httpx.Response = await send()
        if response.status_code != 429:
            assert response.status_code == 202, response.text
            return response
        await asyncio.sleep(min(retry_after(response), 0.1))
    raise AssertionError(f"still refused: {response.text}")


class TestRatePerKey:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"ingest_rate_per_key": RATE, "ingest_burst_per_key": 5})

    async def test_a_noisy_key_is_refused_and_told_when_others_are_not(
        self, runtime: Runtime, api: httpx.AsyncClient
    ) -> None:
        await create_type(api, "order_confirmation")
        noisy, quiet = await new_key(runtime, "noisy"), await new_key(runtime, "quiet")

        assert (await batch(api, 4, **noisy)).status_code == 202  # 4 of its burst of 5
        assert (await api.post("/api/v1/events", json=ORDER_EVENT, headers=noisy)).status_code == 202
        refused = await api.post("/api/v1/events", json=ORDER_EVENT, headers=noisy)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 90 <= retry_after(refused) <= 100  # one event at 0.01 a second: about 100 seconds
        refused_batch = await batch(api, 3, **noisy)
        assert 290 <= retry_after(refused_batch) <= 300  # a batch counts its events
        answer, code, string = await soap_push(api, **noisy)
        assert answer.status_code == 503 and 90 <= retry_after(answer) <= 100
        assert code == "SOAP-ENV:Server" and "0.01 events a second" in string

        assert (await batch(api, 4, **quiet)).status_code == 202  # the other key has a bucket of its own
        answer, _code, _string = await soap_push(api, **quiet)
        assert answer.status_code == 200, answer.text
        assert await stored(runtime) == 10

    async def test_a_batch_larger_than_the_burst_gets_in_and_is_paid_back(
        self, runtime: Runtime, api: httpx.AsyncClient
    ) -> None:
        await create_type(api, "order_confirmation")
        assert (await batch(api, 8)).status_code == 202  # the bucket was full: 8 taken, 3 owed
        refused = await api.post("/api/v1/events", json=ORDER_EVENT)
        assert refused.status_code == 429 and 390 <= retry_after(refused) <= 400  # 3 owed and 1 wanted
        assert await stored(runtime) == 8


async def client_for(runtime: Runtime, headers: dict[str, str]) -> httpx.AsyncClient:
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test", headers=headers)


@pytest.fixture
async def second_api(runtime: Runtime, api: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same database, called with the same key as ``api``."""
    other = Runtime.create(runtime.settings)
    async with await client_for(other, {"Authorization": api.headers["Authorization"]}) as client:
        yield client
    await other.aclose()


class TestRateSharedByProcesses:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"ingest_rate_per_key": RATE, "ingest_burst_per_key": 6})

    async def test_two_processes_draw_from_one_bucket(
        self, runtime: Runtime, api: httpx.AsyncClient, second_api: httpx.AsyncClient
    ) -> None:
        await create_type(api, "order_confirmation")
        for client in (api, second_api, api, second_api):
            assert (await client.post("/api/v1/events", json=ORDER_EVENT)).status_code == 202
        assert (await batch(second_api, 2)).status_code == 202  # 6 of the key's burst of 6, over two processes
        for client in (api, second_api):
            refused = await client.post("/api/v1/events", json=ORDER_EVENT)
            assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
            assert 90 <= retry_after(refused) <= 100
        answer, _code, string = await soap_push(second_api, Authorization=api.headers["Authorization"])
        assert answer.status_code == 503 and "0.01 events a second" in string
        assert await stored(runtime) == 6

    async def test_a_refused_key_gets_in_again_once_its_tokens_are_back(
        self, runtime: Runtime, api: httpx.AsyncClient, second_api: httpx.AsyncClient
    ) -> None:
        await create_type(api, "order_confirmation")
        fast = runtime.settings.model_copy(update={"ingest_rate_per_key": 4.0, "ingest_burst_per_key": 2})
        runtime.admission = Admission(fast, runtime.sessionmaker)
        assert (await batch(api, 4)).status_code == 202  # 2 owed: an event waits three quarters of a second
        refused = await api.post("/api/v1/events", json=ORDER_EVENT)
        assert refused.status_code == 429 and retry_after(refused) == 1
        await asyncio.sleep(0.8)  # this process asks the database again rather than refusing on what it knew
        assert (await api.post("/api/v1/events", json=ORDER_EVENT)).status_code == 202

    async def test_with_the_database_away_a_request_is_answered_503_and_nothing_is_stored(
        self, runtime: Runtime, api: httpx.AsyncClient
    ) -> None:
        await create_type(api, "order_confirmation")
        away = Settings(database_url="postgresql://postgres@127.0.0.1:9/envoi", data_dir=runtime.settings.data_dir)
        engine = create_engine(away)  # nothing listens on port 9: the connection is refused
        runtime.admission = Admission(runtime.settings, create_sessionmaker(engine))
        try:
            answer = await api.post("/api/v1/events", json=ORDER_EVENT)
            soap, code, _string = await soap_push(api, Authorization=api.headers["Authorization"])
        finally:
            await engine.dispose()
        assert answer.status_code == 503 and retry_after(answer) > 0
        assert answer.json()["error"]["code"] == "store_unavailable"
        assert soap.status_code == 503 and code == "SOAP-ENV:Server" and retry_after(soap) > 0
        assert await stored(runtime) == 0


class TestRateUnderConcurrency:
    RATE, BURST = 5.0, 10

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"ingest_rate_per_key": self.RATE, "ingest_burst_per_key": self.BURST})

    async def test_concurrent_requests_never_take_more_than_the_bucket_gives(
        self, runtime: Runtime, api: httpx.AsyncClient, second_api: httpx.AsyncClient
    ) -> None:
        await create_type(api, "order_confirmation")
        started = time.monotonic()
        answers = await asyncio.gather(
            *(client.post("/api/v1/events", json=ORDER_EVENT) for _ in range(40) for client in (api, second_api))
        )
        elapsed = time.monotonic() - started
        statuses = [answer.status_code for answer in answers]
        assert set(statuses) == {202, 429}
        admitted = statuses.count(202)
        assert self.BURST <= admitted <= self.BURST + self.RATE * elapsed, (admitted, elapsed)
        assert await stored(runtime) == admitted


class TestRateWithinTheBurst:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"ingest_rate_per_key": RATE, "ingest_burst_per_key": 50})

    async def test_concurrent_requests_within_the_burst_all_get_in_and_each_is_counted(
        self, runtime: Runtime, api: httpx.AsyncClient, second_api: httpx.AsyncClient
    ) -> None:
        await create_type(api, "order_confirmation")
        answers = await asyncio.gather(
            *(client.post("/api/v1/events", json=ORDER_EVENT) for _ in range(15) for client in (api, second_api))
        )
        assert [answer.status_code for answer in answers] == [202] * 30
        assert (await batch(api, 20)).status_code == 202  # 50 of 50
        refused = await second_api.post("/api/v1/events", json=ORDER_EVENT)
        assert refused.status_code == 429 and 90 <= retry_after(refused) <= 100


class TestStaleBuckets:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"ingest_rate_per_key": 1000.0, "ingest_burst_per_key": 5})

    async def test_the_purge_deletes_buckets_that_filled_up_again(self, runtime: Runtime) -> None:
        buckets = RateBuckets.of(runtime.settings)
        async with runtime.transaction() as session:
            assert await buckets.take(session, "key 1", 5.0, 5.0) is None  # full again in 5 ms
            session.add(RateBucket(key="key 2", tokens=-1e9, counted_at=time.time()))  # owes for 11 days
        await asyncio.sleep(0.02)
        async with runtime.transaction() as session:
            context = RunContext(session, runtime.settings, 0, "purge", 0, utcnow())
            await PurgeActivity().run(PurgeSettings(), None, context)
        async with runtime.transaction() as session:
            assert list(await session.scalars(select(RateBucket.key))) == ["key 2"]
