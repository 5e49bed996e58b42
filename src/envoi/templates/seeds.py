"""Seed addresses: the test recipients of a template, each with the sample event data it is rendered with."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.addresses import normalize_email, normalize_phone, normalize_push_token, push_platform, push_token_word
from envoi.db.base import dump_json, utcnow
from envoi.errors import NotFound, ValidationFailed, invalid
from envoi.events.models import EventType
from envoi.events.validation import ctx_errors, text_problem
from envoi.soap.xml import MalformedXml, child, ctx_to_json, local_name, parse_document
from envoi.templates.models import SeedAddress, Template
from envoi.templates.schemas import SeedIn


def xml_ctx(source: str, *, field: str) -> dict[str, Any]:
    """Adobe-style ``<ctx>...</ctx>`` (or any element holding one) as JSON, the way the SOAP API maps it."""
    try:
        root = parse_document(source.encode())
    except MalformedXml as error:
        raise ValidationFailed(error.message, field=field) from None
    ctx = root if local_name(root) == "ctx" else child(root, "ctx")
    if ctx is None:
        raise ValidationFailed("expected a <ctx> element", field=field)
    return ctx_to_json(ctx)


async def schema_and_sample(session: AsyncSession, event_type: str) -> tuple[Any, dict[str, Any] | None]:
    """The event type's JSON Schema and sample ctx (either may be None), in one query."""
    query = select(EventType.json_schema, EventType.sample).where(EventType.name == event_type)
    schema, sample = (await session.execute(query)).one()
    return schema, sample


def event_data(schema: Any, ctx: dict[str, Any] | None, ctx_xml: str | None) -> dict[str, Any] | None:
    """The ctx given inline (JSON or XML), checked against the event type's schema like an event's would be."""
    if ctx_xml is not None:
        ctx = xml_ctx(ctx_xml, field="ctxXml")
    if ctx is None:
        return None
    problem = text_problem(ctx, "ctx")
    if problem:
        raise invalid([problem])
    if schema is not None:
        problems = ctx_errors(dump_json(schema), ctx)
        if problems:
            raise invalid(problems, prefix=True)
    return ctx


def seed_ctx(seed: SeedAddress, sample: dict[str, Any] | None) -> dict[str, Any]:
    """The data a seed is rendered with: its own, or the event type's sample when it has none."""
    return seed.ctx if seed.ctx is not None else sample or {}


async def list_seeds(session: AsyncSession, template_id: int) -> list[SeedAddress]:
    rows = await session.scalars(
        select(SeedAddress).where(SeedAddress.template_id == template_id).order_by(SeedAddress.id)
    )
    return list(rows)


async def get_seed(session: AsyncSession, template_id: int, seed_id: int) -> SeedAddress:
    seed = await session.scalar(
        select(SeedAddress).where(SeedAddress.id == seed_id, SeedAddress.template_id == template_id)
    )
    if seed is None:
        raise NotFound(f"template {template_id} has no seed address {seed_id}", field="seedId")
    return seed


async def save_seed(
    session: AsyncSession, template: Template, data: SeedIn, seed_id: int | None = None, *, region: str | None = None
) -> SeedAddress:
    """Add a seed address, or replace seed ``seed_id``; ``region`` is that of phone numbers without a +country.
    A push seed is a registration token and its platform, checked as an event's are."""
    address, platform = seed_address(template.channel, data.address, data.platform, region)
    schema, _sample = await schema_and_sample(session, template.event_type)
    ctx = event_data(schema, data.ctx, data.ctx_xml)
    if seed_id is None:
        seed = SeedAddress(template_id=template.id)
        session.add(seed)
    else:
        seed = await get_seed(session, template.id, seed_id)
    seed.label, seed.address, seed.platform, seed.external_id = data.label, address, platform, data.external_id
    seed.language, seed.ctx, seed.updated_at = data.language, ctx, utcnow()
    await session.flush()
    return seed


def seed_address(channel: str, address: str, platform: str | None, region: str | None) -> tuple[str, str | None]:
    """The address as stored, and its platform (push only)."""
    if channel != "push" and platform is not None:
        raise ValidationFailed(f"only push seeds have a platform, not {channel} ones", field="platform")
    try:
        if channel == "sms":
            return normalize_phone(address, region), None
        if channel == "email":
            return normalize_email(address), None
    except ValueError as error:
        kind = "phone number" if channel == "sms" else "email address"
        raise ValidationFailed(f"not a valid {kind}: {error}", field="address") from None
    platform = push_platform(address, platform)
    if platform is None:
        raise ValidationFailed("ios, android or web is required with a registration token", field="platform")
    try:
        return normalize_push_token(address, platform), platform
    except ValueError as error:
        raise ValidationFailed(f"not a valid {push_token_word(platform)}: {error}", field="address") from None


async def delete_seed(session: AsyncSession, template_id: int, seed_id: int) -> None:
    await session.delete(await get_seed(session, template_id, seed_id))
