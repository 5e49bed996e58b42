"""REST: templates, their versions, publish, unpublish, pause and resume."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.api import ApiKeyId, RuntimeDep
from envoi.templates import service
from envoi.templates.models import Template, TemplateVersion
from envoi.templates.schemas import (
    AdobeImportIn,
    AdobeImportOut,
    EmailContent,
    PublishOut,
    StateOut,
    TemplateIn,
    TemplateOut,
    UnconvertedOut,
    VersionDetailOut,
    VersionOut,
)

router = APIRouter(prefix="/api/v1/templates", tags=["templates"])
TemplateId = Annotated[int, Path(ge=1, le=2**63 - 1)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _template_out(template: Template, versions: list[TemplateVersion]) -> TemplateOut:
    live = next((v.number for v in versions if v.id == template.live_version_id), None)
    return TemplateOut(
        id=template.id,
        name=template.name,
        event_type=template.event_type,
        channel=template.channel,
        state=template.state,
        email=EmailContent.model_validate(template.content) if template.channel == "email" else None,
        live_version=live,
        versions=[VersionOut(version=v.number, published_at=v.published_at) for v in versions],
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def _state_out(template: Template, live_version: int | None, released: int = 0) -> StateOut:
    return StateOut(id=template.id, state=template.state, live_version=live_version, released_events=released)


@router.post("", status_code=201, response_model=TemplateOut)
async def create_template(data: TemplateIn, runtime: RuntimeDep, _key: ApiKeyId) -> TemplateOut:
    """Create a draft. Nothing is sent with it until it is published."""
    async with runtime.transaction() as session:
        return _template_out(await service.create_template(session, data), [])


@router.post("/import-adobe", status_code=201, response_model=AdobeImportOut)
async def import_adobe_template(data: AdobeImportIn, runtime: RuntimeDep, _key: ApiKeyId) -> AdobeImportOut:
    """Create a draft from an Adobe Campaign template: JST expressions become Liquid; whatever cannot be
    converted stays visible in the draft and is listed here, never dropped."""
    converted, left = service.convert_adobe(data)
    async with runtime.transaction() as session:
        template = await service.create_template(session, converted)
    return AdobeImportOut(
        template=_template_out(template, []),
        unconverted=[UnconvertedOut(field=field, snippet=snippet) for field, snippet in left],
    )


@router.get("", response_model=list[TemplateOut])
async def list_templates(
    runtime: RuntimeDep, _key: ApiKeyId, eventType: str | None = None, channel: str | None = None
) -> list[TemplateOut]:
    async with runtime.transaction() as session:
        templates = await service.list_templates(session, event_type=eventType, channel=channel)
        versions = await service.list_versions(session, [t.id for t in templates])
    return [_template_out(t, versions[t.id]) for t in templates]


@router.get("/{template_id}", response_model=TemplateOut)
async def get_template(template_id: TemplateId, runtime: RuntimeDep, _key: ApiKeyId) -> TemplateOut:
    async with runtime.transaction() as session:
        template = await service.get_template(session, template_id)
        versions = await service.list_versions(session, [template_id])
    return _template_out(template, versions[template_id])


@router.put("/{template_id}", response_model=TemplateOut)
async def update_template(
    template_id: TemplateId, data: TemplateIn, runtime: RuntimeDep, _key: ApiKeyId
) -> TemplateOut:
    """Replace the draft. The live version does not change until the next publish."""
    async with runtime.transaction() as session:
        template = await service.update_template(session, template_id, data)
        versions = await service.list_versions(session, [template_id])
    return _template_out(template, versions[template_id])


@router.get("/{template_id}/versions/{number}", response_model=VersionDetailOut)
async def get_version(
    template_id: TemplateId, number: VersionNumber, runtime: RuntimeDep, _key: ApiKeyId
) -> VersionDetailOut:
    async with runtime.transaction() as session:
        version = await service.get_version(session, template_id, number)
    return VersionDetailOut(
        template_id=template_id,
        version=version.number,
        published_at=version.published_at,
        email=EmailContent.model_validate(version.content),
    )


@router.post("/{template_id}/publish", response_model=PublishOut)
async def publish_template(template_id: TemplateId, runtime: RuntimeDep, _key: ApiKeyId) -> PublishOut:
    """Freeze the draft as a new numbered version and make it the one new events are rendered with."""
    async with runtime.transaction() as session:
        version = await service.publish_template(session, template_id)
    return PublishOut(version=version.number)


@router.post("/{template_id}/unpublish", response_model=StateOut)
async def unpublish_template(template_id: TemplateId, runtime: RuntimeDep, _key: ApiKeyId) -> StateOut:
    """Events of its type and channel fail routing from now on; its paused events are released to fail too."""
    async with runtime.transaction() as session:
        template, released = await service.unpublish_template(session, template_id)
    runtime.wakeup.ring()
    return _state_out(template, None, released)


@router.post("/{template_id}/pause", response_model=StateOut)
async def pause_template(template_id: TemplateId, runtime: RuntimeDep, _key: ApiKeyId) -> StateOut:
    """New and pending events of this template wait with status paused until it is resumed."""
    async with runtime.transaction() as session:
        template = await service.pause_template(session, template_id)
        live = await _live_number(session, template)
    return _state_out(template, live)


@router.post("/{template_id}/resume", response_model=StateOut)
async def resume_template(template_id: TemplateId, runtime: RuntimeDep, _key: ApiKeyId) -> StateOut:
    """Send again, starting with the events that waited while it was paused."""
    async with runtime.transaction() as session:
        template, released = await service.resume_template(session, template_id)
        live = await _live_number(session, template)
    runtime.wakeup.ring()
    return _state_out(template, live, released)


async def _live_number(session: AsyncSession, template: Template) -> int | None:
    if template.live_version_id is None:
        return None
    version = await session.get(TemplateVersion, template.live_version_id)
    return version.number if version else None
