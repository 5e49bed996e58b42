"""REST: templates, their versions and audit trail; publish, roll back, unpublish, pause, resume, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.api import CanEditTemplates, CanPublish, CanView, RuntimeDep
from envoi.templates import audit, service, versions
from envoi.templates.design import Design
from envoi.templates.models import Template, TemplateVersion
from envoi.templates.schemas import (
    VARIANT_MODELS,
    AdobeImportIn,
    AdobeImportOut,
    AnyVariant,
    AuditEntryOut,
    EmailContent,
    LayoutContent,
    PublishOut,
    PushContent,
    SmsContent,
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


def _version_out(version: TemplateVersion) -> VersionOut:
    return VersionOut(version=version.number, published_at=version.published_at, published_by=version.published_by)


def _template_out(template: Template, versions: list[TemplateVersion]) -> TemplateOut:
    live = next((v.number for v in versions if v.id == template.live_version_id), None)
    draft = Design.of_draft(template.content)
    return TemplateOut(
        id=template.id,
        name=template.name,
        event_type=template.event_type,
        channel=template.channel,
        state=template.state,
        language=draft.language,
        layout=template.content.get("layout"),
        email=EmailContent.model_validate(draft.content) if draft.channel == "email" else None,
        sms=SmsContent.model_validate(draft.content) if draft.channel == "sms" else None,
        push=PushContent.model_validate(draft.content) if draft.channel == "push" else None,
        variants=_variants_out(draft),
        live_version=live,
        versions=[_version_out(v) for v in versions],
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def _variants_out(design: Design) -> dict[str, AnyVariant]:
    model = VARIANT_MODELS[design.channel]
    return {language: model.model_validate(variant) for language, variant in design.variants.items()}


def _state_out(template: Template, live_version: int | None, released: int = 0) -> StateOut:
    return StateOut(id=template.id, state=template.state, live_version=live_version, released_events=released)


@router.post("", status_code=201, response_model=TemplateOut)
async def create_template(data: TemplateIn, runtime: RuntimeDep, who: CanEditTemplates) -> TemplateOut:
    """Create a draft. Nothing is sent with it until it is published."""
    async with runtime.transaction() as session:
        return _template_out(await service.create_template(session, data, who.actor), [])


@router.post("/import-adobe", status_code=201, response_model=AdobeImportOut)
async def import_adobe_template(data: AdobeImportIn, runtime: RuntimeDep, who: CanEditTemplates) -> AdobeImportOut:
    """Create a draft from an Adobe Campaign template: JST expressions become Liquid; whatever cannot be
    converted stays visible in the draft and is listed here, never dropped."""
    converted, left = service.convert_adobe(data)
    async with runtime.transaction() as session:
        template = await service.create_template(session, converted, who.actor)
    return AdobeImportOut(
        template=_template_out(template, []),
        unconverted=[UnconvertedOut(field=field, snippet=snippet) for field, snippet in left],
    )


@router.get("", response_model=list[TemplateOut])
async def list_templates(
    runtime: RuntimeDep, _who: CanView, eventType: str | None = None, channel: str | None = None
) -> list[TemplateOut]:
    async with runtime.transaction() as session:
        templates = await service.list_templates(session, event_type=eventType, channel=channel)
        found = await versions.list_versions(session, [t.id for t in templates])
    return [_template_out(t, found[t.id]) for t in templates]


@router.get("/{template_id}", response_model=TemplateOut)
async def get_template(template_id: TemplateId, runtime: RuntimeDep, _who: CanView) -> TemplateOut:
    async with runtime.transaction() as session:
        template = await service.get_template(session, template_id)
        found = await versions.list_versions(session, [template_id])
    return _template_out(template, found[template_id])


@router.put("/{template_id}", response_model=TemplateOut)
async def update_template(
    template_id: TemplateId, data: TemplateIn, runtime: RuntimeDep, who: CanEditTemplates
) -> TemplateOut:
    """Replace the draft. The live version does not change until the next publish."""
    async with runtime.transaction() as session:
        template = await service.update_template(session, template_id, data, who.actor)
        found = await versions.list_versions(session, [template_id])
    return _template_out(template, found[template_id])


@router.delete("/{template_id}", status_code=204)
async def delete_template(template_id: TemplateId, runtime: RuntimeDep, who: CanEditTemplates) -> None:
    """Delete a draft; a published or paused template must be unpublished first. Its versions are kept for the
    messages sent with them."""
    async with runtime.transaction() as session:
        await service.delete_template(session, template_id, who.actor)


@router.get("/{template_id}/versions", response_model=list[VersionOut])
async def list_versions(template_id: TemplateId, runtime: RuntimeDep, _who: CanView) -> list[VersionOut]:
    async with runtime.transaction() as session:
        await service.get_template(session, template_id)
        found = await versions.list_versions(session, [template_id])
    return [_version_out(v) for v in found[template_id]]


@router.get("/{template_id}/versions/{number}", response_model=VersionDetailOut)
async def get_version(
    template_id: TemplateId, number: VersionNumber, runtime: RuntimeDep, _who: CanView
) -> VersionDetailOut:
    async with runtime.transaction() as session:
        template = await service.get_template(session, template_id)
        version = await versions.get_version(session, template_id, number)
    design = Design.of_version(version.content)
    return VersionDetailOut(
        template_id=template_id,
        version=version.number,
        published_at=version.published_at,
        published_by=version.published_by,
        live=version.id == template.live_version_id,
        language=design.language,
        email=EmailContent.model_validate(design.content) if design.channel == "email" else None,
        sms=SmsContent.model_validate(design.content) if design.channel == "sms" else None,
        push=PushContent.model_validate(design.content) if design.channel == "push" else None,
        variants=_variants_out(design),
        layout=LayoutContent.model_validate(design.layout) if design.layout else None,
        snippets=design.snippets,
    )


@router.get(
    "/{template_id}/versions/{number}/diff/{other}",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "A unified diff, field by field."}},
)
async def diff_versions(
    template_id: TemplateId, number: VersionNumber, other: VersionNumber, runtime: RuntimeDep, _who: CanView
) -> str:
    """What changed from version `number` to version `other`, as a unified diff (empty when nothing did)."""
    async with runtime.transaction() as session:
        return await versions.diff_versions(session, template_id, number, other)


@router.post("/{template_id}/publish", response_model=PublishOut)
async def publish_template(template_id: TemplateId, runtime: RuntimeDep, who: CanPublish) -> PublishOut:
    """Check the draft and freeze it, with its layout and snippets, as a new numbered version that new events
    are rendered with. Refused (422, `publish_refused`) with the list of every problem found."""
    async with runtime.transaction() as session:
        version = await versions.publish_template(session, template_id, who.actor)
    return PublishOut(version=version.number)


@router.post("/{template_id}/versions/{number}/republish", response_model=PublishOut)
async def republish_version(
    template_id: TemplateId, number: VersionNumber, runtime: RuntimeDep, who: CanPublish
) -> PublishOut:
    """Roll back: make an earlier version live again. New events use it; the draft is left as it is."""
    async with runtime.transaction() as session:
        version = await versions.republish_version(session, template_id, number, who.actor)
    return PublishOut(version=version.number)


@router.get("/{template_id}/audit", response_model=list[AuditEntryOut])
async def audit_trail(
    template_id: TemplateId, runtime: RuntimeDep, _who: CanView, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[AuditEntryOut]:
    """Who created, changed, published, rolled back, paused, proofed or deleted it, newest first."""
    async with runtime.transaction() as session:
        await service.get_template(session, template_id, deleted=True)
        entries = await audit.trail(session, template_id, limit=limit)
    return [AuditEntryOut(at=e.at, actor=e.actor, action=e.action, details=e.details) for e in entries]


@router.post("/{template_id}/unpublish", response_model=StateOut)
async def unpublish_template(template_id: TemplateId, runtime: RuntimeDep, who: CanPublish) -> StateOut:
    """Events of its type and channel fail routing from now on; its paused events are released to fail too."""
    async with runtime.transaction() as session:
        template, released = await service.unpublish_template(session, template_id, who.actor)
    runtime.wakeup.ring()
    return _state_out(template, None, released)


@router.post("/{template_id}/pause", response_model=StateOut)
async def pause_template(template_id: TemplateId, runtime: RuntimeDep, who: CanPublish) -> StateOut:
    """New and pending events of this template wait with status paused until it is resumed."""
    async with runtime.transaction() as session:
        template = await service.pause_template(session, template_id, who.actor)
        live = await _live_number(session, template)
    return _state_out(template, live)


@router.post("/{template_id}/resume", response_model=StateOut)
async def resume_template(template_id: TemplateId, runtime: RuntimeDep, who: CanPublish) -> StateOut:
    """Send again, starting with the events that waited while it was paused."""
    async with runtime.transaction() as session:
        template, released = await service.resume_template(session, template_id, who.actor)
        live = await _live_number(session, template)
    runtime.wakeup.ring()
    return _state_out(template, live, released)


async def _live_number(session: AsyncSession, template: Template) -> int | None:
    if template.live_version_id is None:
        return None
    version = await session.get(TemplateVersion, template.live_version_id)
    return version.number if version else None
