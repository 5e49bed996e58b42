"""The email copy of a notification: an ``envoi_notification`` event, delivered by the worker through the
published internal template, to the outbox when no SMTP server is set, with the console link made absolute."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from envoi.events.models import Event, EventType
from envoi.notifications.email import EVENT_TYPE, EmailCopy, ensure_notification_email
from envoi.notifications.objects import ObjectRef
from envoi.notifications.service import Category, Recipients, notify
from envoi.runtime import Runtime
from envoi.templates.models import Template
from tests.conftest import drain
from tests.notifications.conftest import Operators


async def test_the_email_copy_lands_in_the_outbox_with_the_link(
    api: httpx.AsyncClient, runtime: Runtime, operators: Operators
) -> None:
    async with runtime.transaction() as session:
        await notify(
            session,
            Recipients(groups=["delivery_supervisors"]),
            title="Template 3 needs you",
            body="Its variant B <won>.",
            category=Category.ACTION_REQUIRED,
            about=ObjectRef("template", "3"),
            email=EmailCopy("Envoi <ops@example.com>", "https://envoi.example.com/"),
        )
    await drain(runtime)
    outbox = (await api.get("/api/v1/outbox")).json()
    assert sorted(mail["to"] for mail in outbox) == ["sam@example.com", "sue@example.com"]
    mail = next(m for m in outbox if m["to"] == "sam@example.com")
    assert mail["subject"] == "[Envoi] Template 3 needs you" and mail["from"] == "Envoi <ops@example.com>"
    assert 'href="https://envoi.example.com/console/templates/3"' in mail["html"]
    assert "Hello Sam," in mail["html"] and "Its variant B &lt;won&gt;." in mail["html"]
    assert "https://envoi.example.com/console/templates/3" in mail["text"]
    events = (await api.get("/api/v1/events", params={"type": EVENT_TYPE})).json()
    assert {e["status"] for e in events} == {"processed"}


async def test_without_email_no_event(runtime: Runtime, operators: Operators) -> None:
    async with runtime.transaction() as session:
        await notify(session, Recipients(groups=["delivery_supervisors"]), title="t", body="b")
        assert await session.scalar(select(func.count()).select_from(Event)) == 0
        assert await session.scalar(select(EventType.id).where(EventType.name == EVENT_TYPE)) is None


async def test_the_internal_template_is_made_once_even_by_processes_racing(runtime: Runtime) -> None:
    async def ensure() -> None:
        async with runtime.transaction() as session:
            await ensure_notification_email(session, "Envoi <notifications@example.com>")

    await asyncio.gather(*(ensure() for _ in range(3)))
    await ensure()
    async with runtime.transaction() as session:
        assert await session.scalar(select(func.count()).where(EventType.name == EVENT_TYPE)) == 1
        templates = list(await session.scalars(select(Template).where(Template.event_type == EVENT_TYPE)))
    assert [(t.channel, t.state) for t in templates] == [("email", "published")]
