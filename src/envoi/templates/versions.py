"""Publishing: the checks, immutable numbered versions, rollback to an earlier one, and diffs between them."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import utcnow
from envoi.errors import Conflict, NotFound, PublishRefused, as_dicts
from envoi.templates import audit
from envoi.templates.checks import Sample, publish_problems
from envoi.templates.design import Design
from envoi.templates.layouts import draft_design
from envoi.templates.models import Template, TemplateState, TemplateVersion
from envoi.templates.seeds import list_seeds, schema_and_sample, seed_ctx
from envoi.templates.service import get_template


async def samples_of(session: AsyncSession, template: Template, sample: dict[str, Any] | None) -> list[Sample]:
    """The event type's sample, then every seed address with its own data (or the sample when it has none)."""
    samples = [Sample("the event type's sample", sample)] if sample is not None else []
    for seed in await list_seeds(session, template.id):
        ctx = seed_ctx(seed, sample)
        email = seed.address if template.channel == "email" else None  # a phone or a token is not event.email
        samples.append(Sample(f"seed '{seed.label}'", ctx, seed.language, email, seed.external_id))
    return samples


async def publish_template(session: AsyncSession, template_id: int, actor: str) -> TemplateVersion:
    """Check the draft, freeze it with its layout and the snippets it uses as the next version, make it live."""
    template = await get_template(session, template_id, for_update=True)
    design = await draft_design(session, template)
    schema, sample = await schema_and_sample(session, template.event_type)
    problems, compiled = publish_problems(design, schema, await samples_of(session, template, sample))
    if problems or compiled is None:
        field, message = problems[0]
        summary = f"{field}: {message}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        raise PublishRefused(summary, field=field, details={"errors": as_dicts(problems)})
    await _check_route_is_free(session, template)
    used = compiled.liquid.used_snippets
    frozen = dataclasses.replace(
        design, snippets={name: source for name, source in sorted(design.snippets.items()) if name in used}
    )
    number = (
        await session.scalar(select(func.max(TemplateVersion.number)).where(TemplateVersion.template_id == template.id))
        or 0
    ) + 1
    version = TemplateVersion(
        template_id=template.id, number=number, content=frozen.as_version(), published_by=actor, published_at=utcnow()
    )
    session.add(version)
    await session.flush()
    _make_live(template, version)
    audit.record(session, template.id, actor, "published", {"version": number})
    return version


async def republish_version(session: AsyncSession, template_id: int, number: int, actor: str) -> TemplateVersion:
    """Roll back (or forward): an earlier version becomes the one new events are rendered with. The draft stays."""
    template = await get_template(session, template_id, for_update=True)
    version = await get_version(session, template_id, number)
    await _check_route_is_free(session, template)
    _make_live(template, version)
    audit.record(session, template.id, actor, "republished", {"version": number})
    return version


def _make_live(template: Template, version: TemplateVersion) -> None:
    template.live_version_id = version.id
    if template.state == TemplateState.DRAFT:
        template.state = TemplateState.PUBLISHED
    template.updated_at = utcnow()


async def _check_route_is_free(session: AsyncSession, template: Template) -> None:
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


def version_lines(version: TemplateVersion) -> list[str]:
    """A version as text, one section per field, so that a diff reads field by field."""
    design = Design.of_version(version.content)
    lines = [f"language: {design.language}", f"layout: {design.layout['name'] if design.layout else '(none)'}"]
    for field, source in design.sources().items():
        lines += ["", f"== {field} ==", *source.splitlines()]
    return lines


async def diff_versions(session: AsyncSession, template_id: int, old: int, new: int) -> str:
    before = await get_version(session, template_id, old)
    after = await get_version(session, template_id, new)
    diff = difflib.unified_diff(
        version_lines(before), version_lines(after), f"version {old}", f"version {new}", lineterm=""
    )
    return "\n".join(diff) + "\n"
