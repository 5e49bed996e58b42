"""notify(): whom it reaches (operators, groups, the roles of an object), once each, and what it refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from envoi.access.models import Operator
from envoi.errors import NotFound, ValidationFailed
from envoi.notifications.models import Notification
from envoi.notifications.objects import ObjectRef, console_link
from envoi.notifications.service import Category, Recipients, notify
from envoi.runtime import Runtime
from tests.conftest import make_client
from tests.notifications.conftest import Operators


async def _recipients(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.transaction() as session:
        rows = await session.execute(
            select(Operator.email, Notification.title)
            .join(Operator, Operator.id == Notification.operator_id)
            .order_by(Notification.id)
        )
        return [(email, title) for email, title in rows]


async def test_an_operator_named_several_ways_gets_one_notification(runtime: Runtime, operators: Operators) -> None:
    async with runtime.transaction() as session:
        made = await notify(
            session,
            Recipients(
                operators=["SUE@example.com", operators.ids["ed@example.com"]],
                groups=["delivery_supervisors", "template_editors"],
            ),
            title="Hello",
            body="Once each",
        )
    assert sorted(n.operator_id for n in made) == sorted(
        operators.ids[login] for login in ("sam@example.com", "sue@example.com", "ed@example.com")
    )
    assert sorted(email for email, _ in await _recipients(runtime)) == [
        "ed@example.com",
        "sam@example.com",
        "sue@example.com",
    ]
    assert {n.category for n in made} == {"info"} and all(n.read_at is None for n in made)


async def test_a_templates_creator_and_editors_are_its_roles(runtime: Runtime, operators: Operators) -> None:
    app_client = await make_client(runtime)
    async with app_client:
        app_client.headers.update(operators.headers("ed@example.com"))
        assert (await app_client.post("/api/v1/event-types", json={"name": "welcome", "label": "W"})).status_code == 201
        content = {"from": "shop@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
        created = await app_client.post(
            "/api/v1/templates", json={"name": "W", "eventType": "welcome", "email": content}
        )
        assert created.status_code == 201, created.text
        template_id = created.json()["id"]
        # sue edits it with her key; sam only reads it
        edited = await app_client.put(
            f"/api/v1/templates/{template_id}",
            json={"name": "W2", "eventType": "welcome", "email": content},
            headers=operators.headers("sue@example.com"),
        )
        assert edited.status_code == 200, edited.text
        read = await app_client.get(f"/api/v1/templates/{template_id}", headers=operators.headers("sam@example.com"))
        assert read.status_code == 200
    async with runtime.transaction() as session:
        made = await notify(
            session,
            Recipients(roles_of=[ObjectRef("template", str(template_id))], operators=["ed@example.com"]),
            title="Your template",
            body="b",
            about=ObjectRef("template", str(template_id)),
        )
    assert sorted(n.operator_id for n in made) == sorted(
        [operators.ids["ed@example.com"], operators.ids["sue@example.com"]]
    )
    assert {n.link for n in made} == {f"/console/templates/{template_id}"}
    assert {(n.object_type, n.object_id) for n in made} == {("template", str(template_id))}


async def test_deactivated_operators_are_left_out(runtime: Runtime, operators: Operators) -> None:
    async with runtime.transaction() as session:
        await session.execute(update(Operator).where(Operator.email == "sam@example.com").values(active=False))
    async with runtime.transaction() as session:
        made = await notify(
            session, Recipients(operators=["sam@example.com"], groups=["delivery_supervisors"]), title="t", body="b"
        )
    assert [n.operator_id for n in made] == [operators.ids["sue@example.com"]]


@pytest.mark.parametrize(
    ("recipients", "fields", "error"),
    [
        (Recipients(groups=["no_such_group"]), {}, NotFound),
        (Recipients(operators=["ghost@example.com"]), {}, NotFound),
        (Recipients(roles_of=[ObjectRef("planet", "3")]), {}, ValidationFailed),
        (Recipients(groups=["viewers"]), {"link": "javascript:alert(1)"}, ValidationFailed),
        (Recipients(groups=["viewers"]), {"link": "//evil.example.com/x"}, ValidationFailed),
        (Recipients(groups=["viewers"]), {"title": "  "}, ValidationFailed),
        (Recipients(groups=["viewers"]), {"category": "urgent"}, ValueError),
    ],
)
async def test_what_notify_refuses(
    runtime: Runtime, operators: Operators, recipients: Recipients, fields: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        async with runtime.transaction() as session:
            await notify(session, recipients, **({"title": "t", "body": "b"} | fields))  # type: ignore[arg-type]
    assert await _recipients(runtime) == []


async def test_links_and_categories(runtime: Runtime, operators: Operators) -> None:
    assert console_link(ObjectRef("event_type", "a b")) == "/console/events?type=a+b"
    assert console_link(ObjectRef("event", "7")) == "/console/events/7"
    assert console_link(ObjectRef("planet", "7")) is None
    async with runtime.transaction() as session:
        (made,) = await notify(
            session,
            Recipients(operators=["nobody@example.com"]),
            title="t",
            body="b",
            category=Category.ACTION_REQUIRED,
            link="https://docs.example.com/runbook",
            about=ObjectRef("event", "7"),
        )
    assert (made.category, made.link) == ("action_required", "https://docs.example.com/runbook")


async def test_nobody_to_notify_is_not_an_error(runtime: Runtime, operators: Operators) -> None:
    async with runtime.transaction() as session:
        assert await notify(session, Recipients(groups=["workflow_supervisors"]), title="t", body="b") == []
