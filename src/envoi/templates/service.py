"""Templates: create and edit drafts, publish immutable versions, unpublish, pause and resume.

Services never commit; the request does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import UTCDateTime, utcnow
from envoi.errors import Conflict, NotFound, ValidationFailed
from envoi.events.models import Event, EventStatus, EventStatusChange, EventType
from envoi.templates.adobe import jst_to_liquid
from envoi.templates.models import Template, TemplateState, TemplateVersion
from envoi.templates.rendering import compile_email
from envoi.templates.schemas import EmailContent, TemplateIn

AVAILABLE_CHANNELS = ("email",)


def _draft_content(data: TemplateIn) -> dict[str, Any]:
    if data.channel not in AVAILABLE_CHANNELS:
        raise ValidationFailed(f"channel '{data.channel}' is not available yet; use 'email'", field="channel")
    if data.email is None:
        raise ValidationFailed("an email template needs its 'email' content", field="email")
    content = data.email.model_dump(by_alias=True, exclude_none=True)
    compile_email(content)  # a syntax error is reported now, with its field and line
    return content


async def _check_event_type(session: AsyncSession, name: str) -> None:
    if await session.scalar(select(EventType.id).where(EventType.name == name)) is None:
        raise ValidationFailed(f"event type '{name}' does not exist; create it first", field="eventType")


async def create_template(session: AsyncSession, data: TemplateIn) -> Template:
    await _check_event_type(session, data.event_type)
    template = Template(name=data.name, event_type=data.event_type, channel=data.channel, content=_draft_content(data))
    session.add(template)
    await session.flush()
    return template


def convert_adobe(data: TemplateIn) -> tuple[TemplateIn, list[tuple[str, str]]]:
    """The template with its JST converted to Liquid, and each (field, snippet) that could not be."""
    if data.email is None:
        raise ValidationFailed("an email template needs its 'email' content", field="email")
    content = data.email.model_dump(by_alias=True, exclude_none=True)
    left: list[tuple[str, str]] = []
    for key in ("subject", "html", "text"):
        if content.get(key):
            conversion = jst_to_liquid(content[key])
            content[key] = conversion.liquid
            left += [(f"email.{key}", snippet) for snippet in conversion.unconverted]
    return data.model_copy(update={"email": EmailContent.model_validate(content)}), left


async def get_template(session: AsyncSession, template_id: int, *, for_update: bool = False) -> Template:
    query = select(Template).where(Template.id == template_id)
    if for_update:
        query = query.with_for_update()
    template = await session.scalar(query)
    if template is None:
        raise NotFound(f"template {template_id} does not exist")
    return template


async def list_templates(
    session: AsyncSession, *, event_type: str | None = None, channel: str | None = None
) -> list[Template]:
    query = select(Template).order_by(Template.id)
    if event_type:
        query = query.where(Template.event_type == event_type)
    if channel:
        query = query.where(Template.channel == channel)
    return list((await session.scalars(query)).all())


async def update_template(session: AsyncSession, template_id: int, data: TemplateIn) -> Template:
    template = await get_template(session, template_id, for_update=True)
    if data.event_type != template.event_type:
        raise ValidationFailed("a template's event type cannot change; create another", field="eventType")
    if data.channel != template.channel:
        raise ValidationFailed("a template's channel cannot change; create another", field="channel")
    template.name = data.name
    template.content = _draft_content(data)
    template.updated_at = utcnow()
    return template


async def list_versions(session: AsyncSession, template_ids: list[int]) -> dict[int, list[TemplateVersion]]:
    versions: dict[int, list[TemplateVersion]] = {i: [] for i in template_ids}
    rows = await session.scalars(
        select(TemplateVersion)
        .where(TemplateVersion.template_id.in_(template_ids))
        .order_by(TemplateVersion.template_id, TemplateVersion.number)
    )
    for version in rows:
        versions[version.template_id].append(version)
    return versions


async def get_version(session: AsyncSession, template_id: int, number: int) -> TemplateVersion:
    version = await session.scalar(
        select(TemplateVersion).where(TemplateVersion.template_id == template_id, TemplateVersion.number == number)
    )
    if version is None:
        raise NotFound(f"template {template_id} has no version {number}")
    return version


async def publish_template(session: AsyncSession, template_id: int) -> TemplateVersion:
    """Freeze the draft as the next version and make it live for its event type and channel."""
    template = await get_template(session, template_id, for_update=True)
    content = dict(template.content)
    if not content.get("html") and not content.get("text"):
        raise ValidationFailed("an email needs an HTML or a text body before it is published", field="email.html")
    compile_email(content)
    live = await session.scalar(
        select(Template.id).where(
            Template.event_type == template.event_type,
            Template.channel == template.channel,
            Template.state != TemplateState.DRAFT,
            Template.id != template.id,
        )
    )
    if live is not None:
        raise Conflict(
            f"template {live} is already live for '{template.event_type}' on {template.channel}; unpublish it first",
            field="eventType",
        )
    number = (
        await session.scalar(select(func.max(TemplateVersion.number)).where(TemplateVersion.template_id == template.id))
        or 0
    ) + 1
    version = TemplateVersion(template_id=template.id, number=number, content=content)
    session.add(version)
    await session.flush()
    template.live_version_id = version.id
    if template.state == TemplateState.DRAFT:
        template.state = TemplateState.PUBLISHED
    template.updated_at = utcnow()
    return version


async def unpublish_template(session: AsyncSession, template_id: int) -> tuple[Template, int]:
    """Take the template offline; its paused events go back to the queue and will fail routing."""
    template = await get_template(session, template_id, for_update=True)
    template.state = TemplateState.DRAFT
    template.live_version_id = None
    template.updated_at = utcnow()
    await session.flush()
    return template, await _release_paused_events(session, template.id, "template unpublished")


async def pause_template(session: AsyncSession, template_id: int) -> Template:
    template = await get_template(session, template_id, for_update=True)
    if template.state == TemplateState.DRAFT:
        raise Conflict("only a published template can be paused", field="state")
    template.state = TemplateState.PAUSED
    template.updated_at = utcnow()
    return template


async def resume_template(session: AsyncSession, template_id: int) -> tuple[Template, int]:
    template = await get_template(session, template_id, for_update=True)
    if template.state == TemplateState.DRAFT:
        raise Conflict("only a paused template can be resumed; this one is not published", field="state")
    template.state = TemplateState.PUBLISHED
    template.updated_at = utcnow()
    await session.flush()
    return template, await _release_paused_events(session, template.id, "template resumed")


async def _release_paused_events(session: AsyncSession, template_id: int, reason: str) -> int:
    now = utcnow()
    paused = (Event.status == EventStatus.PAUSED) & (Event.template_id == template_id)
    await session.execute(
        insert(EventStatusChange).from_select(
            ["event_id", "status", "at", "reason"],
            select(Event.id, literal(EventStatus.PENDING.value), literal(now, UTCDateTime()), literal(reason)).where(
                paused
            ),
        )
    )
    result = await session.execute(
        update(Event)
        .where(paused)
        .values(status=EventStatus.PENDING, next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class LiveRoute:
    template_id: int
    state: str
    version_id: int
    content: dict[str, Any]


async def find_live_routes(session: AsyncSession, routes: set[tuple[str, str]]) -> dict[tuple[str, str], LiveRoute]:
    """The live template of each (event type, channel), in one query; routes with none are absent."""
    if not routes:
        return {}
    types = {event_type for event_type, _ in routes}
    rows = await session.execute(
        select(
            Template.event_type,
            Template.channel,
            Template.id,
            Template.state,
            TemplateVersion.id,
            TemplateVersion.content,
        )
        .join(TemplateVersion, TemplateVersion.id == Template.live_version_id)
        .where(Template.event_type.in_(types), Template.state != TemplateState.DRAFT)
    )
    found: dict[tuple[str, str], LiveRoute] = {}
    for event_type, channel, tid, state, vid, content in rows:
        if (event_type, channel) in routes:
            found[(event_type, channel)] = LiveRoute(tid, state, vid, content)
    return found
