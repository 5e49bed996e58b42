"""REST: event types, pushing events (one or a batch), reading events back."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ValidationError

from envoi.access.api import CanEditTemplates, CanView, RuntimeDep, authenticate_request
from envoi.access.audit import audit
from envoi.errors import ValidationFailed, input_problems, invalid
from envoi.events import service, types
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
from envoi.events.validation import text_problem
from envoi.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["events"])
ParsedModel = TypeVar("ParsedModel", bound=BaseModel)
MAX_ID = 2**63 - 1
EventId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _type_out(event_type: EventType) -> EventTypeOut:
    return EventTypeOut(
        name=event_type.name,
        label=event_type.label,
        json_schema=event_type.json_schema,
        sample=event_type.sample,
        default_channel=event_type.default_channel,
        fallback_channel=event_type.fallback_channel,
        profile_based=event_type.profile_based,
        created_at=event_type.created_at,
    )


@router.post("/event-types", status_code=201, response_model=EventTypeOut, response_model_by_alias=True)
async def create_event_type(data: EventTypeIn, runtime: RuntimeDep, who: CanEditTemplates) -> EventTypeOut:
    async with runtime.transaction() as session:
        created = await types.create_event_type(session, data)
        audit(session, who, "created", "event_type", created.name)
        return _type_out(created)


@router.get("/event-types", response_model=list[EventTypeOut])
async def list_event_types(runtime: RuntimeDep, _who: CanView) -> list[EventTypeOut]:
    async with runtime.transaction() as session:
        return [_type_out(t) for t in await types.list_event_types(session)]


@router.get("/event-types/{name}", response_model=EventTypeOut)
async def get_event_type(name: str, runtime: RuntimeDep, _who: CanView) -> EventTypeOut:
    async with runtime.transaction() as session:
        return _type_out(await types.get_event_type(session, name))


@router.put("/event-types/{name}", response_model=EventTypeOut)
async def update_event_type(name: str, data: EventTypeIn, runtime: RuntimeDep, who: CanEditTemplates) -> EventTypeOut:
    async with runtime.transaction() as session:
        changed = await types.update_event_type(session, name, data)
        audit(session, who, "changed", "event_type", name)
        return _type_out(changed)


def _hot_route(body_schema: dict[str, Any], extra_parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """OpenAPI for routes that parse their own request: FastAPI's per-parameter machinery costs more than the
    rest of an ingestion request put together, so these two read the body and the key themselves."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}},
        "security": [{"HTTPBearer": []}],
        "parameters": extra_parameters or [],
    }


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


# Schemas the hot routes refer to, which FastAPI cannot see; envoi.app adds them to the OpenAPI components.
OPENAPI_SCHEMAS: dict[str, dict[str, Any]] = {"EventIn": _schema_of(EventIn)}

_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Repeat a request safely: the same key and body return the first event's id.",
}

# Nothing was stored; the same request succeeds after Retry-After seconds (503 is documented for every route).
_RETRY_LATER: dict[int | str, dict[str, Any]] = {
    429: {"description": "The queue is full (queue_full) or this key's rate is exceeded (rate_limited)"},
}


@router.post(
    "/events",
    status_code=202,
    response_model=AcceptedOut,
    responses={409: {"description": "Idempotency-Key reused with a different body"}, **_RETRY_LATER},
    openapi_extra=_hot_route({"$ref": "#/components/schemas/EventIn"}, [_IDEMPOTENCY_HEADER]),
)
async def push_event(request: Request) -> Response:
    """Store one event; it is sent within seconds. With an Idempotency-Key, a repeated request returns the
    first event's id instead of storing a second event."""
    who = await authenticate_request(request)
    key_id = who.key_id
    runtime: Runtime = request.app.state.runtime
    await runtime.admission.check_queue()
    await runtime.admission.take(who, 1)
    event = _parse(EventIn, await request.body())
    idempotency_key = request.headers.get("idempotency-key")
    headers = {}
    if idempotency_key is None:
        event_id = await runtime.ingest.submit(event, key_id)  # shares a commit with concurrent requests
    else:
        if len(idempotency_key) > 255:
            raise ValidationFailed("at most 255 characters", field="Idempotency-Key")
        async with runtime.transaction() as session:
            event_id, created = await service.ingest_event(
                session,
                event,
                api_key_id=key_id,
                idempotency_key=idempotency_key,
                region=runtime.settings.default_region,
            )
        if created:
            runtime.wakeup.ring()
        else:
            headers["Idempotent-Replayed"] = "true"
    href = event_href(event_id)
    headers["Location"] = href
    body = f'{{"id":{event_id},"href":"{href}","status":"pending"}}'
    return Response(body, status_code=202, media_type="application/json", headers=headers)


def _parse(model: type[ParsedModel], body: bytes) -> ParsedModel:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise invalid(input_problems(error.errors()), prefix=True) from None


@router.post(
    "/events/batch",
    status_code=202,
    response_model=BatchAcceptedOut,
    responses=_RETRY_LATER,
    openapi_extra=_hot_route(_schema_of(BatchIn)),
)
async def push_events(request: Request) -> Response:
    """Store up to 10,000 events in one transaction. If any is invalid, none is stored and the answer lists
    every invalid item's errors by index."""
    who = await authenticate_request(request)
    key_id = who.key_id
    runtime: Runtime = request.app.state.runtime
    await runtime.admission.check_queue()
    body, limit = await request.body(), runtime.settings.batch_max_events
    items: list[Any]
    try:
        items = BatchIn.model_validate_json(body).events  # a well-formed batch: parsed and checked in one pass
    except ValidationError:
        items = _batch_items(body, limit)  # the slow path, which names every bad item by its index
    _check_size(len(items), limit)
    await runtime.admission.take(who, len(items))
    async with runtime.transaction() as session:
        ids = await service.ingest_batch(session, items, api_key_id=key_id, region=runtime.settings.default_region)
    runtime.wakeup.ring()
    return Response(f'{{"ids":[{",".join(map(str, ids))}]}}', status_code=202, media_type="application/json")


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
    _check_size(len(items), limit)
    return items


def _check_size(count: int, limit: int) -> None:
    if not count:
        raise ValidationFailed("the batch is empty", field="events")
    if count > limit:
        raise ValidationFailed(f"a batch holds at most {limit} events, this one {count}", field="events")


@router.get("/events/{event_id}", response_model=EventOut)
async def read_event(event_id: EventId, runtime: RuntimeDep, _who: CanView) -> EventOut:
    """An event with its status, the template version used, its messages and its timeline."""
    async with runtime.transaction() as session:
        return await get_event(session, event_id)


@router.get("/events", response_model=list[EventSummaryOut])
async def search_events(
    runtime: RuntimeDep,
    _who: CanView,
    status: Annotated[str | None, Query(description="pending, processed, delivery_failed…")] = None,
    type: Annotated[str | None, Query()] = None,
    email: Annotated[str | None, Query()] = None,
    external_id: Annotated[str | None, Query(alias="externalId")] = None,
    since: Annotated[datetime | None, Query()] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only ids below this (the next page)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[EventSummaryOut]:
    for name, value in (("type", type), ("email", email), ("externalId", external_id)):
        if value and (problem := text_problem(value, name)):
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
