"""Events: search by status, type, address, external id and date; one event with its timeline and messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.addresses import normalize_email, normalize_phone
from envoi.console.forms import FieldErrors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of
from envoi.console.session import CanView
from envoi.events.models import Event, EventStatus
from envoi.events.queries import get_event
from envoi.events.types import list_event_types

router = console_router()
PAGE_SIZE = 50
EventId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@dataclass(frozen=True, slots=True)
class EventSearch:
    status: EventStatus | None = None
    event_type: str = ""
    address: str = ""  # an email (without case) or a mobile phone
    external_id: str = ""
    start: datetime | None = None
    end: datetime | None = None  # exclusive
    before_id: int | None = None


def _day(value: str, field: str, errors: FieldErrors) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = "A date as YYYY-MM-DD."
        return None


def parse_search(params: dict[str, str]) -> tuple[EventSearch, FieldErrors]:
    errors: FieldErrors = {}
    status = None
    if params.get("status"):
        try:
            status = EventStatus[params["status"].upper()]
        except KeyError:
            errors["status"] = "Not a status."
    start, end = _day(params.get("from", ""), "from", errors), _day(params.get("to", ""), "to", errors)
    before = params.get("before", "")
    search = EventSearch(
        status=status,
        event_type=params.get("type", "").strip(),
        address=params.get("address", "").strip(),
        external_id=params.get("externalId", "").strip(),
        start=datetime.combine(start, time(), UTC) if start else None,
        end=datetime.combine(end, time(), UTC) + timedelta(days=1) if end else None,  # the whole "to" day
        before_id=int(before) if before.isdecimal() and 0 < int(before) < 2**63 else None,
    )
    return search, errors


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except ValueError:
        return value


def _phone(value: str, region: str | None) -> str:
    try:
        return normalize_phone(value, region)
    except ValueError:
        return value


async def search_events(
    session: AsyncSession, search: EventSearch, *, region: str | None = None, limit: int = PAGE_SIZE
) -> list[Event]:
    """Newest first; the next page is the events before the last id of this one."""
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if search.status is not None:
        query = query.where(Event.status == search.status)
    if search.event_type:
        query = query.where(Event.type == search.event_type)
    if search.address:
        email, phone = _email(search.address).lower(), _phone(search.address, region)
        query = query.where(or_(func.lower(Event.email) == email, Event.mobile_phone == phone))
    if search.external_id:
        query = query.where(Event.external_id == search.external_id)
    if search.start is not None:
        query = query.where(Event.created_at >= search.start)
    if search.end is not None:
        query = query.where(Event.created_at < search.end)
    if search.before_id is not None:
        query = query.where(Event.id < search.before_id)
    return list((await session.scalars(query)).all())


@router.get("/events")
async def events(request: Request, _viewer: CanView) -> HTMLResponse:
    params = dict(request.query_params)
    search, errors = parse_search(params)
    runtime = runtime_of(request)
    async with runtime.transaction() as session:
        found = [] if errors else await search_events(session, search, region=runtime.settings.default_region)
        event_types = await list_event_types(session)
    following = {k: v for k, v in params.items() if k != "before" and v} | (
        {"before": str(found[-1].id)} if len(found) == PAGE_SIZE else {}
    )
    context = {
        "events": found,
        "values": params,
        "errors": errors,
        "statuses": [s.label for s in EventStatus],
        "event_types": [t.name for t in event_types],
        "next_page": following if "before" in following else None,
        "label_of": lambda value: EventStatus(value).label,
    }
    return render(request, "events.html", context)


@router.get("/events/{event_id}")
async def event(request: Request, event_id: EventId, _viewer: CanView) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        found = await get_event(session, event_id)
    outbox_ids = {
        message.id: message.provider_id.removeprefix("outbox-")
        for message in found.messages
        if message.provider_id and message.provider_id.startswith("outbox-")
    }
    return render(request, "event.html", {"event": found, "outbox_ids": outbox_ids})
