"""REST: event types, pushing events (one or a batch), reading events back."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response

from envoi.access.api import ApiKeyId, RuntimeDep
from envoi.errors import ValidationFailed
from envoi.events import service
from envoi.events.models import EventStatus, EventType
from envoi.events.queries import event_href, get_event, list_events
from envoi.events.schemas import (
    AcceptedOut,
    BatchAcceptedOut,
    BatchIn,
    EventIn,
    EventOut,
    EventSummaryOut,
    EventTypeIn,
    EventTypeOut,
)

router = APIRouter(prefix="/api/v1", tags=["events"])
MAX_ID = 2**63 - 1
EventId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _type_out(event_type: EventType) -> EventTypeOut:
    return EventTypeOut(
        name=event_type.name,
        label=event_type.label,
        json_schema=event_type.json_schema,
        sample=event_type.sample,
        created_at=event_type.created_at,
    )


@router.post("/event-types", status_code=201, response_model=EventTypeOut, response_model_by_alias=True)
async def create_event_type(data: EventTypeIn, runtime: RuntimeDep, _key: ApiKeyId) -> EventTypeOut:
    async with runtime.transaction() as session:
        return _type_out(await service.create_event_type(session, data))


@router.get("/event-types", response_model=list[EventTypeOut])
async def list_event_types(runtime: RuntimeDep, _key: ApiKeyId) -> list[EventTypeOut]:
    async with runtime.transaction() as session:
        return [_type_out(t) for t in await service.list_event_types(session)]


@router.get("/event-types/{name}", response_model=EventTypeOut)
async def get_event_type(name: str, runtime: RuntimeDep, _key: ApiKeyId) -> EventTypeOut:
    async with runtime.transaction() as session:
        return _type_out(await service.get_event_type(session, name))


@router.put("/event-types/{name}", response_model=EventTypeOut)
async def update_event_type(name: str, data: EventTypeIn, runtime: RuntimeDep, _key: ApiKeyId) -> EventTypeOut:
    async with runtime.transaction() as session:
        return _type_out(await service.update_event_type(session, name, data))


@router.post(
    "/events",
    status_code=202,
    response_model=AcceptedOut,
    responses={409: {"description": "Idempotency-Key reused with a different body"}},
)
async def push_event(
    event: EventIn,
    runtime: RuntimeDep,
    key_id: ApiKeyId,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> AcceptedOut:
    """Store one event; it is sent within seconds. With an Idempotency-Key, a repeated request returns the
    first event's id instead of storing a second event."""
    if idempotency_key is None:
        event_id = await runtime.ingest.submit(event, key_id)  # shares a commit with concurrent requests
    else:
        async with runtime.transaction() as session:
            event_id, created = await service.ingest_event(
                session, event, api_key_id=key_id, idempotency_key=idempotency_key
            )
        if created:
            runtime.wakeup.ring()
        else:
            response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = event_href(event_id)
    return AcceptedOut(id=event_id, href=event_href(event_id))


_BATCH_SCHEMA = BatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
_BATCH_SCHEMA.pop("$defs", None)


@router.post(
    "/events/batch",
    status_code=202,
    response_model=BatchAcceptedOut,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}},
)
async def push_events(request: Request, runtime: RuntimeDep, key_id: ApiKeyId) -> BatchAcceptedOut:
    """Store up to 10,000 events in one transaction. If any is invalid, none is stored and the answer lists
    every invalid item's errors by index."""
    items = _batch_items(await request.body(), runtime.settings.batch_max_events)
    async with runtime.transaction() as session:
        ids = await service.ingest_batch(session, items, api_key_id=key_id)
    runtime.wakeup.ring()
    return BatchAcceptedOut(ids=ids)


def _batch_items(body: bytes, limit: int) -> list[Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise ValidationFailed(f"the body is not valid JSON: {error}", field="body") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise ValidationFailed("expected an object with a list 'events'", field="events")
    if extra := set(payload) - {"events"}:
        raise ValidationFailed(f"unknown field '{sorted(extra)[0]}'", field=sorted(extra)[0])
    items: list[Any] = payload["events"]
    if not items:
        raise ValidationFailed("the batch is empty", field="events")
    if len(items) > limit:
        raise ValidationFailed(f"a batch holds at most {limit} events, this one {len(items)}", field="events")
    return items


@router.get("/events/{event_id}", response_model=EventOut)
async def read_event(event_id: EventId, runtime: RuntimeDep, _key: ApiKeyId) -> EventOut:
    """An event with its status, the template version used, its messages and its timeline."""
    async with runtime.transaction() as session:
        return await get_event(session, event_id)


@router.get("/events", response_model=list[EventSummaryOut])
async def search_events(
    runtime: RuntimeDep,
    _key: ApiKeyId,
    status: Annotated[str | None, Query(description="pending, processed, delivery_failed…")] = None,
    type: Annotated[str | None, Query()] = None,
    email: Annotated[str | None, Query()] = None,
    external_id: Annotated[str | None, Query(alias="externalId")] = None,
    since: Annotated[datetime | None, Query()] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only ids below this (the next page)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[EventSummaryOut]:
    for name, value in (("type", type), ("email", email), ("externalId", external_id)):
        if value and (problem := service.text_problem(value, name)):
            raise ValidationFailed(problem[1], field=problem[0])
    wanted = None
    if status is not None:
        try:
            wanted = EventStatus[status.upper()]
        except KeyError:
            names = ", ".join(s.label for s in EventStatus)
            raise ValidationFailed(f"unknown status '{status}'; one of {names}", field="status") from None
    async with runtime.transaction() as session:
        return await list_events(
            session,
            status=wanted,
            event_type=type,
            email=email,
            external_id=external_id,
            since=since,
            before_id=before,
            limit=limit,
        )
