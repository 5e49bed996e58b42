"""Pushing events over REST: what is accepted, what is refused with which error, and that refusals store nothing."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from envoi.events.models import Event
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import make_client
from tests.helpers import ORDER_SCHEMA, create_type, event, push


async def count_events(runtime: Runtime) -> int:
    async with runtime.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


async def test_push_event_is_stored_pending_with_every_field(api: httpx.AsyncClient) -> None:
    await create_type(api)
    response = await api.post(
        "/api/v1/events",
        json={
            "type": "order_confirmation",
            "email": "Ada@Example.com",
            "mobilePhone": "+33600000000",
            "ctx": {"orderId": "A-1", "items": [{"name": "pen"}]},
            "externalId": "cust-42",
            "origin": "shop",
            "language": "fr",
            "expiration": "2099-01-01T00:00:00Z",
        },
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["href"] == f"/api/v1/events/{body['id']}"
    assert response.headers["location"] == body["href"]
    stored = await event(api, body["id"])
    assert stored["status"] == "pending"
    assert stored["email"] == "Ada@example.com"  # domain normalized, local part kept
    assert stored["ctx"] == {"orderId": "A-1", "items": [{"name": "pen"}]}
    assert stored["externalId"] == "cust-42"
    assert stored["channel"] == "email"
    assert stored["mode"] == "realtime"
    assert stored["expiration"].startswith("2099-01-01")
    assert [t["status"] for t in stored["timeline"]] == ["received"]


async def test_unknown_event_type_is_422_naming_it_and_stores_nothing(api: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await api.post("/api/v1/events", json={"type": "nope", "email": "a@example.com"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "type"
    assert "nope" in error["message"]
    assert await count_events(runtime) == 0


async def test_invalid_email_is_422_naming_the_field(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    response = await api.post("/api/v1/events", json={"type": "order_confirmation", "email": "not-an-address"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "email"
    assert await count_events(runtime) == 0


async def test_email_channel_needs_an_email(api: httpx.AsyncClient) -> None:
    await create_type(api)
    response = await api.post("/api/v1/events", json={"type": "order_confirmation", "ctx": {}})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "email"


async def test_ctx_is_checked_against_the_event_type_schema(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api, schema=ORDER_SCHEMA)
    response = await api.post(
        "/api/v1/events", json={"type": "order_confirmation", "email": "a@example.com", "ctx": {"orderId": 5}}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "ctx.orderId"
    assert "string" in error["message"]
    assert await count_events(runtime) == 0


async def test_unknown_field_and_bad_channel_are_refused(api: httpx.AsyncClient) -> None:
    await create_type(api)
    typo = await api.post("/api/v1/events", json={"type": "order_confirmation", "emial": "a@example.com"})
    assert typo.status_code == 422
    assert typo.json()["error"]["field"] == "emial"
    channel = await api.post(
        "/api/v1/events", json={"type": "order_confirmation", "email": "a@example.com", "wishedChannel": 7}
    )
    assert channel.status_code == 422
    assert channel.json()["error"]["field"] == "wishedChannel"


async def test_same_idempotency_key_and_body_returns_the_first_event(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    body = {"type": "order_confirmation", "email": "a@example.com", "ctx": {"orderId": "A-1"}}
    first = await api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "order-A-1"})
    again = await api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "order-A-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_events(runtime) == 1


async def test_same_idempotency_key_with_another_body_is_409(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    body = {"type": "order_confirmation", "email": "a@example.com", "ctx": {"orderId": "A-1"}}
    await api.post("/api/v1/events", json=body, headers={"Idempotency-Key": "k"})
    other = await api.post("/api/v1/events", json=body | {"ctx": {"orderId": "B-2"}}, headers={"Idempotency-Key": "k"})
    assert other.status_code == 409
    assert other.json()["error"]["field"] == "Idempotency-Key"
    assert await count_events(runtime) == 1


async def test_batch_is_stored_whole_and_returns_ids_in_order(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    events = [{"type": "order_confirmation", "email": f"u{i}@example.com", "ctx": {"n": i}} for i in range(250)]
    response = await api.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 202, response.text
    ids = response.json()["ids"]
    assert len(ids) == 250 and ids == sorted(ids)
    assert (await event(api, ids[17]))["ctx"] == {"n": 17}
    assert await count_events(runtime) == 250


async def test_batch_with_bad_items_lists_each_by_index_and_stores_nothing(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await create_type(api)
    good = {"type": "order_confirmation", "email": "a@example.com"}
    events = [good, {"type": "order_confirmation", "email": "broken"}, good, {"type": "ghost", "email": "b@x.org"}]
    response = await api.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "batch_rejected"
    assert [(item["index"], item["errors"][0]["field"]) for item in error["items"]] == [(1, "email"), (3, "type")]
    assert await count_events(runtime) == 0


async def test_batch_with_a_malformed_item_reports_it(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    events = [{"type": "order_confirmation", "email": "a@example.com"}, {"email": "b@example.com", "ctx": []}]
    response = await api.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 422
    (item,) = response.json()["error"]["items"]
    assert item["index"] == 1
    assert {e["field"] for e in item["errors"]} == {"type", "ctx"}
    assert await count_events(runtime) == 0


async def test_batch_over_the_limit_is_refused(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    events = [{"type": "order_confirmation", "email": "a@example.com"}] * 10_001
    response = await api.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 422
    assert "10000" in response.json()["error"]["message"]
    assert await count_events(runtime) == 0


async def test_no_or_wrong_api_key_is_401(api: httpx.AsyncClient, runtime: Runtime) -> None:
    body = {"type": "order_confirmation", "email": "a@example.com"}
    anonymous = await api.post("/api/v1/events", json=body, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = await api.get("/api/v1/events/1", headers={"Authorization": "Bearer envoi_wrong"})
    assert wrong.status_code == 401
    assert await count_events(runtime) == 0


async def test_events_can_be_searched(api: httpx.AsyncClient) -> None:
    await create_type(api)
    first = await push(api, email="a@example.com", externalId="c-1")
    await push(api, email="b@example.com", externalId="c-2")
    found = (await api.get("/api/v1/events", params={"externalId": "c-1"})).json()
    assert [e["id"] for e in found] == [first]
    by_status = (await api.get("/api/v1/events", params={"status": "pending"})).json()
    assert len(by_status) == 2
    bad = await api.get("/api/v1/events", params={"status": "lost"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"


async def test_missing_required_ctx_field_is_named(api: httpx.AsyncClient) -> None:
    await create_type(api, schema=ORDER_SCHEMA)
    response = await api.post("/api/v1/events", json={"type": "order_confirmation", "email": "a@example.com"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "ctx.orderId"


async def test_body_that_is_not_json_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/events", content=b"not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"
    batch = await api.post("/api/v1/events/batch", content=b"{", headers={"Content-Type": "application/json"})
    assert batch.status_code == 422 and batch.json()["error"]["field"] == "body"


async def test_values_no_database_can_store_are_422_and_store_nothing(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    head = b'{"type": "order_confirmation", "email": "a@example.com", '
    for body, field in (
        (head + b'"ctx": {"total": NaN}}', "ctx.total"),
        (head + b'"ctx": {"total": 1e999}}', "ctx.total"),
        (head + b'"ctx": {"note": "a\\u0000b"}}', "ctx.note"),
        (head + b'"ctx": {"note": "\\ud800"}}', "body"),  # refused by the JSON parser itself, which says why
        (head + b'"externalId": "x\\u0000"}', "externalId"),
        (head + b'"scheduled": "9999-12-31T23:59:59-14:00"}', "scheduled"),
    ):
        response = await api.post("/api/v1/events", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == field, body
    batch = b'{"events": [' + head + b'"ctx": {"n": NaN}}]}'
    response = await api.post("/api/v1/events/batch", content=batch, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["items"][0]["errors"][0]["field"] == "ctx.n"
    assert await count_events(runtime) == 0


async def test_out_of_range_ids_and_odd_queries_are_4xx(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"/api/v1/events/{2**63}")).status_code == 422
    assert (await api.get("/api/v1/events", params={"before": 2**70})).status_code == 422
    assert (await api.get("/api/v1/events", params={"email": "\x00"})).status_code == 422
    missing = await api.get("/api/v1/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    deep = b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await api.post("/api/v1/events/batch", content=deep, headers={"Content-Type": "application/json"})
    assert response.status_code == 422


async def test_schemas_with_remote_refs_are_refused(api: httpx.AsyncClient) -> None:
    remote = {"name": "r", "label": "r", "schema": {"$ref": "https://example.com/schema.json"}}
    response = await api.post("/api/v1/event-types", json=remote)
    assert response.status_code == 422 and response.json()["error"]["field"] == "schema"
    dangling = {"name": "d", "label": "d", "schema": {"$ref": "#/$defs/missing"}}
    response = await api.post("/api/v1/event-types", json=dangling)
    assert response.status_code == 422 and response.json()["error"]["field"] == "schema"


async def test_concurrent_pushes_share_commits_and_each_gets_its_own_answer(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await create_type(api, schema=ORDER_SCHEMA)

    async def one(i: int) -> httpx.Response:
        ctx = {"orderId": f"A-{i}"} if i % 10 else {"orderId": i}  # every tenth breaks the schema
        return await api.post(
            "/api/v1/events", json={"type": "order_confirmation", "email": f"u{i}@example.com", "ctx": ctx}
        )

    responses = await asyncio.gather(*(one(i) for i in range(200)))
    accepted = {i: r.json()["id"] for i, r in enumerate(responses) if r.status_code == 202}
    refused = [i for i, r in enumerate(responses) if r.status_code == 422]
    assert refused == list(range(0, 200, 10))
    assert len(accepted) == 180 and len(set(accepted.values())) == 180
    assert await count_events(runtime) == 180
    assert (await event(api, accepted[7]))["ctx"] == {"orderId": "A-7"}
    assert (await event(api, accepted[7]))["email"] == "u7@example.com"


async def test_phone_numbers_are_checked_and_normalized(api: httpx.AsyncClient) -> None:
    await create_type(api)
    base = {"type": "order_confirmation", "email": "a@example.com"}
    bad = await api.post("/api/v1/events", json=base | {"mobilePhone": "call me"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "mobilePhone"
    short = await api.post("/api/v1/events", json=base | {"mobilePhone": "+33 1"})
    assert short.status_code == 422 and short.json()["error"]["field"] == "mobilePhone"
    good = await api.post("/api/v1/events", json=base | {"mobilePhone": "+33 6 12-34-56-78"})
    assert good.status_code == 202
    assert (await event(api, good.json()["id"]))["mobilePhone"] == "+33612345678"
    # Without a default region a national number cannot become E.164: refused where an SMS would go to it,
    # kept as digits on an email event (for the record).
    national = {"mobilePhone": "06 12 34 56 78"}
    for_sms = await api.post("/api/v1/events", json=base | national | {"wishedChannel": "sms"})
    assert for_sms.status_code == 422 and "ENVOI_DEFAULT_REGION" in for_sms.json()["error"]["message"]
    kept = await api.post("/api/v1/events", json=base | national)
    assert kept.status_code == 202 and (await event(api, kept.json()["id"]))["mobilePhone"] == "0612345678"
    by_country = await api.post("/api/v1/events", json=base | national | {"wishedChannel": "sms", "country": "fr"})
    assert (await event(api, by_country.json()["id"]))["mobilePhone"] == "+33612345678"


async def test_national_numbers_take_the_default_region(settings: Settings) -> None:
    runtime = Runtime.create(settings.model_copy(update={"default_region": "FR"}))
    try:
        async with await make_client(runtime) as api:
            await create_type(api)
            body = {"type": "order_confirmation", "email": "a@example.com", "mobilePhone": "06 12 34 56 78"}
            single = await api.post("/api/v1/events", json=body)
            batch = await api.post(
                "/api/v1/events/batch", json={"events": [body | {"mobilePhone": "0033 7 00 00 00 01"}]}
            )
            assert single.status_code == 202 and batch.status_code == 202, batch.text
            assert (await event(api, single.json()["id"]))["mobilePhone"] == "+33612345678"
            assert (await event(api, batch.json()["ids"][0]))["mobilePhone"] == "+33700000001"
    finally:
        await runtime.aclose()


APNS_TOKEN = "A3" * 32  # an APNs device token: 32 bytes, in hex
WEB_TOKEN = '{"endpoint": "https://push.example.net/send/x1", "keys": {"p256dh": "BNc", "auth": "tBH"}}'


async def test_push_events_store_their_token_and_platform(api: httpx.AsyncClient) -> None:
    await create_type(api)
    ios = await push(api, email=None, wishedChannel=41, registrationToken=APNS_TOKEN)
    android = await push(api, wishedChannel="push", registrationToken="d1:APA91b-x_y", platform="android")
    web = await push(api, wishedChannel="push", registrationToken=WEB_TOKEN)
    shown = [await event(api, event_id) for event_id in (ios, android, web)]
    assert [(e["channel"], e["platform"]) for e in shown] == [("push", "ios"), ("push", "android"), ("push", "web")]
    assert shown[0]["registrationToken"] == APNS_TOKEN.lower()
    assert shown[1]["registrationToken"] == "d1:APA91b-x_y"
    assert shown[2]["registrationToken"] == WEB_TOKEN.replace(": ", ":").replace(", ", ",")  # compact: one browser
    # Kept for the record, unchecked, when the event goes by email.
    kept = await event(api, await push(api, registrationToken="anything at all"))
    assert (kept["channel"], kept["registrationToken"], kept["platform"]) == ("email", "anything at all", None)


async def test_push_events_need_a_token_of_their_platform(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await create_type(api)
    await create_type(api, "app_notice", defaultChannel="push")

    async def refused(**fields: object) -> dict[str, str]:
        response = await api.post(
            "/api/v1/events", json={"type": "order_confirmation", "wishedChannel": "push"} | fields
        )
        assert response.status_code == 422, response.text
        return dict(response.json()["error"])

    assert (await refused())["field"] == "registrationToken"
    assert "registration token" in (await refused(email="a@example.com"))["message"]
    by_type = await api.post("/api/v1/events", json={"type": "app_notice", "email": "a@example.com"})
    assert by_type.status_code == 422 and by_type.json()["error"]["field"] == "registrationToken"
    assert (await refused(registrationToken=APNS_TOKEN, platform="windows"))["field"] == "platform"
    assert (await refused(registrationToken=APNS_TOKEN))["field"] == "platform"  # hex: not enough to tell
    short = await refused(registrationToken="ab" * 10, platform="ios")
    assert short["field"] == "registrationToken" and "APNs device token" in short["message"]
    assert (await refused(registrationToken="d1 APA91b", platform="android"))["field"] == "registrationToken"
    for not_a_subscription in (
        '{"endpoint": "http://push.example.net/x", "keys": {"p256dh": "a", "auth": "b"}}',
        '{"endpoint": "https://push.example.net/x"}',
        "https://push.example.net/x",
        "{oops",
    ):
        error = await refused(registrationToken=not_a_subscription, platform="web")
        assert error["field"] == "registrationToken" and "Web Push subscription" in error["message"]
    assert (await refused(registrationToken="x" * 2001, platform="android"))["field"] == "registrationToken"
    batch = [
        {"type": "app_notice", "registrationToken": APNS_TOKEN, "platform": "ios"},
        {"type": "app_notice", "registrationToken": "{}"},
    ]
    response = await api.post("/api/v1/events/batch", json={"events": batch})
    assert response.status_code == 422
    assert [(i["index"], i["errors"][0]["field"]) for i in response.json()["error"]["items"]] == [
        (1, "registrationToken")
    ]
    assert await count_events(runtime) == 0


async def test_event_types_may_default_to_push(api: httpx.AsyncClient) -> None:
    created = await create_type(api, "app_notice", defaultChannel="push", fallbackChannel="email")
    assert (created["defaultChannel"], created["fallbackChannel"]) == ("push", "email")
    same = await api.post(
        "/api/v1/event-types", json={"name": "t", "label": "T", "defaultChannel": "push", "fallbackChannel": "push"}
    )
    assert same.status_code == 422 and same.json()["error"]["field"] == "fallbackChannel"
    # Without a token, the fallback's address will do: the event goes straight to it when it is sent.
    event_id = await push(api, type="app_notice", email="a@example.com")
    assert (await event(api, event_id))["channel"] == "push"
