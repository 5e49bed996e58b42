"""The filter language on SQLite and PostgreSQL (every op, JSON attributes as numbers, numeric text, strings and
booleans), its validation errors naming ``filters[i]…``, counts, and audiences through the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from envoi.access.models import AuditEntry
from envoi.campaigns.audiences import audience_condition, check_filters, count_audience
from envoi.campaigns.models import Delivery, DeliveryState, Profile
from envoi.errors import ValidationFailed
from envoi.runtime import Runtime

PEOPLE = [
    Profile(
        email="ada@example.com",
        phone="+33612345678",
        first_name="Ada",
        last_name="Lovelace",
        language="fr",
        external_id="C-1",
        attributes={"points": 120, "tier": "gold", "vip": True, "since": "2019-03-01"},
        created_at=datetime(2024, 1, 10, 12, tzinfo=UTC),
    ),
    Profile(  # as a CSV import stores them: attribute values are text
        email="bob.smith@example.org",
        first_name="Bob",
        language="en",
        attributes={"points": "45", "tier": "silver"},
        created_at=datetime(2024, 2, 10, 12, tzinfo=UTC),
    ),
    Profile(
        external_id="C-3",
        first_name="Cy",
        language="fr",
        attributes={"points": 7.5, "tier": "gold", "vip": False},
        created_at=datetime(2024, 3, 10, 12, tzinfo=UTC),
    ),
    Profile(
        email="dee@example.com",
        first_name="Dee",
        last_name="O_Neil",
        external_id="C-4",
        attributes={"points": "lots", "note": None},
        subscribed=False,
        created_at=datetime(2024, 4, 10, 12, tzinfo=UTC),
    ),
]
EVERYONE = {"Ada", "Bob", "Cy", "Dee"}
_COLUMNS = ("email", "phone", "first_name", "last_name", "language", "external_id", "attributes", "subscribed")


@pytest.fixture
async def people(runtime: Runtime) -> Runtime:
    async with runtime.transaction() as session:
        for person in PEOPLE:
            values = {name: getattr(person, name) for name in (*_COLUMNS, "created_at")}
            session.add(Profile(**{name: value for name, value in values.items() if value is not None}))
    return runtime


async def names(runtime: Runtime, *conditions: dict[str, Any]) -> set[str]:
    async with runtime.transaction() as session:
        query = select(Profile.first_name).where(audience_condition(list(conditions)))
        return {str(name) for name in (await session.scalars(query)).all()}


def c(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


CASES = [
    (c("email", "eq", "ADA@example.com"), {"Ada"}),
    (c("email", "ne", "ada@example.com"), {"Bob", "Cy", "Dee"}),  # Cy has no email: not equal either
    (c("email", "in", ["ada@example.com", "DEE@example.com"]), {"Ada", "Dee"}),
    (c("email", "not_in", ["ada@example.com"]), {"Bob", "Cy", "Dee"}),
    (c("email", "contains", "SMITH"), {"Bob"}),
    (c("email", "starts_with", "Dee@"), {"Dee"}),
    (c("email", "ends_with", "@EXAMPLE.COM"), {"Ada", "Dee"}),
    (c("email", "exists"), {"Ada", "Bob", "Dee"}),
    (c("email", "not_exists"), {"Cy"}),
    (c("phone", "eq", "+33 6 12 34 56 78"), {"Ada"}),
    (c("first_name", "starts_with", "a"), {"Ada"}),
    (c("last_name", "contains", "_"), {"Dee"}),  # _ is a LIKE wildcard: it must be escaped
    (c("last_name", "contains", "%"), set()),
    (c("language", "eq", "fr"), {"Ada", "Cy"}),
    (c("language", "ne", "fr"), {"Bob", "Dee"}),
    (c("language", "in", ["en", "de"]), {"Bob"}),
    (c("external_id", "starts_with", "C-"), {"Ada", "Cy", "Dee"}),
    (c("subscribed", "eq", True), {"Ada", "Bob", "Cy"}),
    (c("subscribed", "ne", True), {"Dee"}),
    (c("subscribed", "eq", False), {"Dee"}),
    (c("created_at", "gte", "2024-02-10T12:00:00Z"), {"Bob", "Cy", "Dee"}),
    (c("created_at", "gt", "2024-02-10T12:00:00Z"), {"Cy", "Dee"}),
    (c("created_at", "lt", "2024-02-10"), {"Ada"}),
    (c("created_at", "lte", "2024-03-10T13:00:00+01:00"), {"Ada", "Bob", "Cy"}),
    (c("attributes.points", "gt", 40), {"Ada", "Bob"}),  # Bob's "45" is text holding a number
    (c("attributes.points", "gte", 45), {"Ada", "Bob"}),
    (c("attributes.points", "lt", 45.5), {"Bob", "Cy"}),
    (c("attributes.points", "lte", 7.5), {"Cy"}),
    (c("attributes.points", "eq", 45), {"Bob"}),
    (c("attributes.points", "ne", 120), {"Bob", "Cy", "Dee"}),
    (c("attributes.points", "in", [120, 7.5]), {"Ada", "Cy"}),
    (c("attributes.points", "in", ["lots", 45]), {"Bob", "Dee"}),
    (c("attributes.points", "not_in", [120, "lots"]), {"Bob", "Cy"}),
    (c("attributes.tier", "eq", "gold"), {"Ada", "Cy"}),
    (c("attributes.tier", "ne", "gold"), {"Bob", "Dee"}),
    (c("attributes.tier", "not_in", ["gold"]), {"Bob", "Dee"}),
    (c("attributes.tier", "contains", "IL"), {"Bob"}),
    (c("attributes.tier", "starts_with", "G"), {"Ada", "Cy"}),
    (c("attributes.tier", "ends_with", "ver"), {"Bob"}),
    (c("attributes.since", "gte", "2019-01-01"), {"Ada"}),  # ISO dates compare as text
    (c("attributes.since", "lt", "2019-01-01"), set()),
    (c("attributes.vip", "eq", True), {"Ada"}),
    (c("attributes.vip", "eq", False), {"Cy"}),
    (c("attributes.vip", "ne", True), {"Bob", "Cy", "Dee"}),
    (c("attributes.tier", "exists"), {"Ada", "Bob", "Cy"}),
    (c("attributes.tier", "not_exists"), {"Dee"}),
    (c("attributes.note", "exists"), set()),  # a null attribute is no value
    (c("attributes.points", "exists"), EVERYONE),
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=lambda v: str(v) if isinstance(v, dict) else "")
async def test_each_condition_keeps_the_right_profiles(
    people: Runtime, condition: dict[str, Any], expected: set[str]
) -> None:
    assert await names(people, condition) == expected


async def test_every_condition_must_hold_and_no_condition_keeps_everyone(people: Runtime) -> None:
    assert await names(people, c("language", "eq", "fr"), c("attributes.points", "gt", 100)) == {"Ada"}
    assert await names(people) == EVERYONE


async def test_the_count_says_who_a_marketing_email_would_reach(people: Runtime) -> None:
    async with people.transaction() as session:
        assert await count_audience(session, []) == {"total": 4, "subscribed": 3, "reachable": 2}
        gold = [c("attributes.tier", "eq", "gold")]  # Cy has no email
        assert await count_audience(session, gold) == {"total": 2, "subscribed": 2, "reachable": 1}
        assert await count_audience(session, [c("email", "eq", "nobody@example.com")]) == {
            "total": 0,
            "subscribed": 0,
            "reachable": 0,
        }


INVALID = [
    ({"filters": "everyone"}, "filters"),
    ([c("nope", "eq", 1)], "filters[0].field"),
    ([c("email", "exists"), c("subscribed", "contains", "x")], "filters[1].op"),
    ([c("email", "eq", 3)], "filters[0].value"),
    ([c("email", "eq")], "filters[0].value"),
    ([c("created_at", "gt", "yesterday")], "filters[0].value"),
    ([c("attributes.points", "in", [])], "filters[0].value"),
    ([c("attributes.points", "gt", True)], "filters[0].value"),
    ([c("email", "exists", "yes")], "filters[0].value"),
    ([c("email", "eq", "a") | {"x": 1}], "filters[0].x"),
    ([c('attributes.a"b', "eq", "x")], "filters[0].field"),
    ([c("language", "eq", "fr"), "fr"], "filters[1]"),
    ([{"op": "eq", "value": "x"}], "filters[0].field"),
]


@pytest.mark.parametrize(("filters", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_filters_name_the_condition_and_its_part(filters: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_filters(filters["filters"] if isinstance(filters, dict) else filters)
    assert raised.value.field == field


async def test_audiences_are_created_counted_changed_and_deleted(api: httpx.AsyncClient, people: Runtime) -> None:
    body = {"name": "french_vip", "label": "VIP in France", "filters": [c("language", "eq", "fr")]}
    created = await api.post("/api/v1/audiences", json=body)
    assert created.status_code == 201, created.text
    audience = created.json()
    assert (audience["name"], audience["filters"]) == ("french_vip", body["filters"])
    assert audience["createdBy"].endswith("(tests)")  # the API key's name
    count = (await api.get(f"/api/v1/audiences/{audience['id']}/count")).json()
    assert count == {"total": 2, "subscribed": 2, "reachable": 1}

    changed = await api.patch(
        f"/api/v1/audiences/{audience['id']}", json={"filters": [c("subscribed", "eq", True)], "label": "Subscribed"}
    )
    assert changed.status_code == 200, changed.text
    assert (await api.get(f"/api/v1/audiences/{audience['id']}/count")).json()["total"] == 3
    assert [a["label"] for a in (await api.get("/api/v1/audiences")).json()] == ["Subscribed"]

    async with people.transaction() as session:
        session.add(Delivery(name="news", label="News", variants=[], audience_id=audience["id"]))
    refused = await api.delete(f"/api/v1/audiences/{audience['id']}")
    assert refused.status_code == 409 and "news" in refused.json()["error"]["message"]
    async with people.transaction() as session:
        delivery = await session.scalar(select(Delivery).where(Delivery.audience_id == audience["id"]))
        assert delivery is not None
        delivery.state = DeliveryState.SENT
    assert (await api.delete(f"/api/v1/audiences/{audience['id']}")).status_code == 204
    assert (await api.get(f"/api/v1/audiences/{audience['id']}")).status_code == 404
    async with people.transaction() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "audience"))).all()
        assert list(actions) == ["created", "updated", "deleted"]


async def test_audience_refusals_name_the_field(api: httpx.AsyncClient, people: Runtime) -> None:
    assert (await api.post("/api/v1/audiences", json={"name": "all", "label": "All"})).status_code == 201
    duplicate = await api.post("/api/v1/audiences", json={"name": "all", "label": "Again"})
    assert (duplicate.status_code, duplicate.json()["error"]["field"]) == (409, "name")
    bad_name = await api.post("/api/v1/audiences", json={"name": "VIP FR", "label": "x"})
    assert (bad_name.status_code, bad_name.json()["error"]["field"]) == (422, "name")
    bad_filter = await api.post(
        "/api/v1/audiences",
        json={"name": "x", "label": "x", "filters": [c("email", "exists"), c("subscribed", "gt", 1)]},
    )
    assert bad_filter.status_code == 422
    problem = bad_filter.json()["error"]
    assert problem["field"] == "filters[1].op" and problem["message"].startswith("filters[1].op: subscribed takes")
    assert problem["errors"] == [{"field": "filters[1].op", "message": "subscribed takes one of eq, ne"}]


async def test_a_preview_counts_unsaved_filters(api: httpx.AsyncClient, people: Runtime) -> None:
    preview = await api.post("/api/v1/audiences/preview", json={"filters": [c("attributes.points", "gte", 45)]})
    assert preview.json() == {"total": 2, "subscribed": 2, "reachable": 2}
    wrong = await api.post("/api/v1/audiences/preview", json={"filters": [c("attributes.points", "gte", None)]})
    assert (wrong.status_code, wrong.json()["error"]["field"]) == (422, "filters[0].value")
