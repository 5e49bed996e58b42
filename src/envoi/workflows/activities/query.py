"""The ``query`` activity: selects events by type, status, channel and age. Its output is the selection itself
(the filters and the highest id at the time), not the rows, so a run carries a few bytes however many match."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator
from sqlalchemy import Select, func, select

from envoi.events.models import Event, EventStatus
from envoi.workflows.activities.base import (
    Activity,
    ActivityFailed,
    ActivitySettings,
    Done,
    Duration,
    RunContext,
    parse_duration,
)

_STATUSES = {status.label: status for status in EventStatus}


class QuerySettings(ActivitySettings):
    event_types: list[str] = Field(default_factory=list, description="Any of these types; empty: every type.")
    statuses: list[str] = Field(default_factory=list, description="Any of these statuses; empty: every status.")
    channels: list[Literal["email", "sms", "push"]] = Field(default_factory=list, description="Empty: every channel.")
    received_within: Duration | None = Field(None, description="Only events received in the last 15m, 1d...")
    limit: int = Field(10_000, ge=1, le=1_000_000)

    @field_validator("statuses")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in _STATUSES]
        if unknown:
            raise ValueError(f"unknown statuses {', '.join(unknown)}; statuses are {', '.join(_STATUSES)}")
        return value


def selection(filters: dict[str, Any], since: datetime | None, max_id: int) -> tuple[Select[Event], int]:
    """The events a query selected, in id order, and how many at most."""
    settings = QuerySettings.model_validate(filters)
    query = select(Event).where(Event.id <= max_id).order_by(Event.id)
    if settings.event_types:
        query = query.where(Event.type.in_(settings.event_types))
    if settings.statuses:
        query = query.where(Event.status.in_([int(_STATUSES[s]) for s in settings.statuses]))
    if settings.channels:
        query = query.where(Event.channel.in_(settings.channels))
    if since is not None:
        query = query.where(Event.created_at >= since)
    return query, settings.limit


def selected(given: dict[str, Any] | None) -> tuple[Select[Event], int]:
    """The selection an activity was given, or ActivityFailed when its predecessor selected nothing."""
    if not given or given.get("source") != "events":
        raise ActivityFailed("its input is not a selection of events: put a query before it")
    since = datetime.fromisoformat(given["since"]) if given.get("since") else None
    return selection(given["filters"], since, int(given["max_id"]))


class QueryActivity(Activity[QuerySettings]):
    kind = "query"
    settings_model = QuerySettings
    description = "Selects events by type, status, channel and age."

    async def run(self, settings: QuerySettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        since = context.now - parse_duration(settings.received_within) if settings.received_within else None
        max_id = int(await context.session.scalar(select(func.max(Event.id))) or 0)
        filters = settings.model_dump(exclude_defaults=True)
        query, limit = selection(filters, since, max_id)
        count = int(await context.session.scalar(select(func.count()).select_from(query.limit(limit).subquery())) or 0)
        context.log(f"{count} events selected")
        output = {"source": "events", "filters": filters, "max_id": max_id, "count": count}
        if since is not None:
            output["since"] = since.isoformat()
        return Done(output=output, count=count)
