"""Templates: create, edit and delete drafts; unpublish, pause and resume (publishing is in versions.py).

Services never commit; the request does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import UTCDateTime, utcnow
from envoi.errors import Conflict, NotFound, ValidationFailed, invalid
from envoi.events.models import Event, EventStatus, EventStatusChange, EventType
from envoi.templates import audit
from envoi.templates.adobe import jst_to_liquid
from envoi.templates.compiled import CompiledTemplate
from envoi.templates.design import Design
from envoi.templates.layouts import get_layout
from envoi.templates.models import Template, TemplateState, TemplateVersion
from envoi.templates.schemas import VARIANT_MODELS, EmailContent, TemplateIn


async def _draft_content(session: AsyncSession, data: TemplateIn) -> dict[str, Any]:
    channel = data.channel
    content = getattr(data, channel)
    if content is None:
        raise ValidationFailed(f"a {channel} template needs its '{channel}' content", field=channel)
    for other in VARIANT_MODELS:
        if other != channel and getattr(data, other) is not None:
            raise ValidationFailed(f"a {channel} template has no '{other}' content", field=other)
    if data.layout is not None:
        if channel != "email":
            raise ValidationFailed(f"layouts wrap email bodies; a {channel} template has none", field="layout")
        await get_layout(session, data.layout)
    variants = {}
    for language, variant in data.variants.items():
        given = variant.model_dump(by_alias=True, exclude_none=True) if isinstance(variant, BaseModel) else variant
        try:
            checked = VARIANT_MODELS[channel].model_validate(given)
        except PydanticValidationError as error:
            where = [".".join(["variants", language, *map(str, e["loc"])]) for e in error.errors()]
            raise invalid([(f, e["msg"]) for f, e in zip(where, error.errors(), strict=True)]) from None
        variants[language] = checked.model_dump(by_alias=True, exclude_none=True)
    design = Design(
        content=content.model_dump(by_alias=True, exclude_none=True),
        channel=channel,
        language=data.language,
        variants=variants,
    )
    CompiledTemplate(design)  # a syntax error is reported now, with its field and line; the rest at publish
    return design.as_draft(data.layout)


async def _check_event_type(session: AsyncSession, name: str) -> None:
    if await session.scalar(select(EventType.id).where(EventType.name == name)) is None:
        raise ValidationFailed(f"event type '{name}' does not exist; create it first", field="eventType")


async def create_template(session: AsyncSession, data: TemplateIn, actor: str) -> Template:
    await _check_event_type(session, data.event_type)
    template = Template(
        name=data.name,
        event_type=data.event_type,
        channel=data.channel,
        content=await _draft_content(session, data),
    )
    session.add(template)
    await session.flush()
    audit.record(session, template.id, actor, "created")
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


async def get_template(
    session: AsyncSession, template_id: int, *, for_update: bool = False, deleted: bool = False
) -> Template:
    """The template; with ``deleted``, also one that was deleted (for its audit trail)."""
    query = select(Template).where(Template.id == template_id)
    if not deleted:
        query = query.where(Template.deleted_at.is_(None))
    if for_update:
        query = query.with_for_update()
    template = await session.scalar(query)
    if template is None:
        raise NotFound(f"template {template_id} does not exist")
    return template


async def list_templates(
    session: AsyncSession, *, event_type: str | None = None, channel: str | None = None
) -> list[Template]:
    query = select(Template).where(Template.deleted_at.is_(None)).order_by(Template.id)
    if event_type:
        query = query.where(Template.event_type == event_type)
    if channel:
        query = query.where(Template.channel == channel)
    return list((await session.scalars(query)).all())


async def update_template(session: AsyncSession, template_id: int, data: TemplateIn, actor: str) -> Template:
    template = await get_template(session, template_id, for_update=True)
    if data.event_type != template.event_type:
        raise ValidationFailed("a template's event type cannot change; create another", field="eventType")
    if data.channel != template.channel:
        raise ValidationFailed("a template's channel cannot change; create another", field="channel")
    template.name = data.name
    template.content = await _draft_content(session, data)
    template.updated_at = utcnow()
    audit.record(session, template.id, actor, "updated")
    return template


async def delete_template(session: AsyncSession, template_id: int, actor: str) -> None:
    """Hide a draft for good. Its versions stay, so that the messages sent with them still show what they were."""
    template = await get_template(session, template_id, for_update=True)
    if template.state != TemplateState.DRAFT:
        raise Conflict(f"template {template_id} is {template.state}; unpublish it before deleting it", field="state")
    template.deleted_at = utcnow()
    audit.record(session, template.id, actor, "deleted")


async def unpublish_template(session: AsyncSession, template_id: int, actor: str) -> tuple[Template, int]:
    """Take the template offline; its paused events go back to the queue and will fail routing."""
    template = await get_template(session, template_id, for_update=True)
    if template.state == TemplateState.DRAFT:
        raise Conflict(f"template {template_id} is not published", field="state")
    audit.record(session, template.id, actor, "unpublished")
    template.state = TemplateState.DRAFT
    template.live_version_id = None
    template.updated_at = utcnow()
    await session.flush()
    return template, await _release_paused_events(session, template.id, "template unpublished")


async def pause_template(session: AsyncSession, template_id: int, actor: str) -> Template:
    template = await get_template(session, template_id, for_update=True)
    if template.state == TemplateState.DRAFT:
        raise Conflict("only a published template can be paused", field="state")
    audit.record(session, template.id, actor, "paused")
    template.state = TemplateState.PAUSED
    template.updated_at = utcnow()
    return template


async def resume_template(session: AsyncSession, template_id: int, actor: str) -> tuple[Template, int]:
    template = await get_template(session, template_id, for_update=True)
    if template.state == TemplateState.DRAFT:
        raise Conflict("only a paused template can be resumed; this one is not published", field="state")
    audit.record(session, template.id, actor, "resumed")
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
    """What an event is rendered with: a template's live version, or (ids None) an email delivery's variant."""

    template_id: int | None
    state: str
    version_id: int | None
    content: dict[str, Any]
    key: object = None  # what its compiled form is cached by: the version id, or (delivery id, variant)

    @property
    def cache_key(self) -> object:
        return self.version_id if self.key is None else self.key


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
