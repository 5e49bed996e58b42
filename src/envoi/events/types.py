"""Event types: create, change, read. A type must exist before templates or events can use it."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.errors import Conflict, NotFound, ValidationFailed
from envoi.events.models import MARKETING_EVENT_TYPE, EventType
from envoi.events.schemas import EventTypeIn
from envoi.events.validation import SCHEMA_UNUSABLE, ctx_errors, text_problem


def _remote_ref(schema: Any) -> str | None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return ref
        return next((r for value in schema.values() if (r := _remote_ref(value))), None)
    if isinstance(schema, list):
        return next((r for value in schema if (r := _remote_ref(value))), None)
    return None


def _check_schema(data: EventTypeIn) -> None:
    if data.fallback_channel is not None and data.fallback_channel == (data.default_channel or "email"):
        raise ValidationFailed("the fallback must be another channel than the default one", field="fallbackChannel")
    problems: list[tuple[str, str]] = []
    if data.json_schema is not None:
        try:
            Draft202012Validator.check_schema(data.json_schema)
        except SchemaError as error:
            raise ValidationFailed(f"not a valid JSON Schema: {error.message}", field="schema") from error
        if ref := _remote_ref(data.json_schema):
            raise ValidationFailed(f"only local $ref (#/...) are allowed, not '{ref}'", field="schema")
        if problem := text_problem(data.json_schema, "schema"):
            raise ValidationFailed(problem[1], field=problem[0])
        # Applied to the sample (or to {}), which also shows whether it can be applied at all.
        problems = ctx_errors(json.dumps(data.json_schema, sort_keys=True), data.sample or {})
        if problems and problems[0][1].startswith(SCHEMA_UNUSABLE):
            raise ValidationFailed(problems[0][1].replace("the event type's schema", "this schema"), field="schema")
    if data.sample is not None and (problem := text_problem(data.sample, "sample")):
        raise ValidationFailed(problem[1], field=problem[0])
    if data.sample is not None and data.json_schema is not None and problems:
        field, message = problems[0]
        raise ValidationFailed(f"the sample does not match the schema: {message}", field="sample" + field[3:])


async def create_event_type(session: AsyncSession, data: EventTypeIn) -> EventType:
    _check_schema(data)
    if data.name == MARKETING_EVENT_TYPE:
        raise Conflict(
            f"'{MARKETING_EVENT_TYPE}' is the type of marketing emails' events: choose another", field="name"
        )
    if await session.scalar(select(EventType.id).where(EventType.name == data.name)) is not None:
        raise Conflict(f"event type '{data.name}' already exists", field="name")
    event_type = EventType(
        name=data.name,
        label=data.label,
        json_schema=data.json_schema,
        sample=data.sample,
        default_channel=data.default_channel,
        fallback_channel=data.fallback_channel,
        profile_based=data.profile_based,
    )
    session.add(event_type)
    await session.flush()
    return event_type


async def update_event_type(session: AsyncSession, name: str, data: EventTypeIn) -> EventType:
    event_type = await get_event_type(session, name)
    if data.name != name:
        raise ValidationFailed("an event type's name cannot change", field="name")
    _check_schema(data)
    event_type.label = data.label
    event_type.json_schema = data.json_schema
    event_type.sample = data.sample
    event_type.default_channel = data.default_channel
    event_type.fallback_channel = data.fallback_channel
    event_type.profile_based = data.profile_based
    return event_type


async def get_event_type(session: AsyncSession, name: str) -> EventType:
    event_type = await session.scalar(select(EventType).where(EventType.name == name))
    if event_type is None:
        raise NotFound(f"event type '{name}' does not exist")
    return event_type


async def list_event_types(session: AsyncSession) -> list[EventType]:
    return list((await session.scalars(select(EventType).order_by(EventType.name))).all())


# --- validation --------------------------------------------------------------------------------------------
