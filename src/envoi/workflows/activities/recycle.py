"""The ``recycle_failed_events`` activity (Adobe's own example of a workflow): events that failed on one channel
are sent again on another, once each. A recycled event's idempotency key names the one it came from, which
both dedupes the next runs and shows where it came from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from sqlalchemy import select

from envoi.events.models import Event, EventStatus, EventStatusChange, IdempotencyKey
from envoi.events.schemas import EventIn
from envoi.events.service import ingest_many
from envoi.workflows.activities.base import (
    Activity,
    ActivityFailed,
    ActivitySettings,
    Done,
    Duration,
    RunContext,
    parse_duration,
)
from envoi.workflows.activities.push_events import copy_of

Channel = Literal["email", "sms", "push"]
_CHUNK = 500


class RecycleSettings(ActivitySettings):
    from_channel: Channel = "sms"
    to_channel: Channel = "email"
    failed_within: Duration = Field("1d", description="Events that failed in this last period.")
    event_types: list[str] = Field(default_factory=list, description="Empty: every type.")
    limit: int = Field(10_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _different(self) -> RecycleSettings:
        if self.from_channel == self.to_channel:
            raise ValueError("from_channel and to_channel must differ")
        return self


def _address(event: Event, channel: str) -> str | None:
    return {"email": event.email, "sms": event.mobile_phone, "push": event.registration_token}[channel]


def recycled_key(event_id: int) -> str:
    return f"recycled-from:{event_id}"


class RecycleFailedEventsActivity(Activity[RecycleSettings]):
    kind = "recycle_failed_events"
    settings_model = RecycleSettings
    description = "Re-creates events that ended delivery_failed on one channel as events for another channel."

    async def run(self, settings: RecycleSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        session = context.session
        since = context.now - parse_duration(settings.failed_within)
        failed = (
            select(Event)
            .join(EventStatusChange, EventStatusChange.event_id == Event.id)
            .where(
                EventStatusChange.status == EventStatus.DELIVERY_FAILED,
                EventStatusChange.at >= since,
                Event.status == EventStatus.DELIVERY_FAILED,
                Event.channel == settings.from_channel,
            )
            .distinct()
            .order_by(Event.id)
        )
        if settings.event_types:
            failed = failed.where(Event.type.in_(settings.event_types))
        created = refused = seen = skipped = 0
        after = 0
        while seen < settings.limit:
            events = list(
                await session.scalars(failed.where(Event.id > after).limit(min(_CHUNK, settings.limit - seen)))
            )
            if not events:
                break
            after, seen = events[-1].id, seen + len(events)
            done = set(
                await session.scalars(
                    select(IdempotencyKey.key).where(
                        IdempotencyKey.api_key_id.is_(None),
                        IdempotencyKey.key.in_([recycled_key(e.id) for e in events]),
                    )
                )
            )
            todo = []
            for e in events:
                if recycled_key(e.id) in done:
                    continue
                if _address(e, settings.to_channel):
                    todo.append(e)
                else:
                    skipped += 1
                    if skipped <= 10:
                        context.log(f"event {e.id} not recycled: it has no address for {settings.to_channel}")
            copies: list[tuple[EventIn, int | None]] = [
                (copy_of(e, e.type, settings.to_channel, "realtime", f"recycled from event {e.id}"), None) for e in todo
            ]
            keys = [recycled_key(e.id) for e in todo]
            results = (
                await ingest_many(session, copies, region=context.settings.default_region, keys=keys) if copies else []
            )
            for source, result in zip(todo, results, strict=True):
                if isinstance(result, int):
                    created += 1
                else:
                    refused += 1
                    if refused <= 10:
                        context.log(f"event {source.id} not recycled: {result.message}")
        context.log(
            f"{created} {settings.from_channel} events recycled as {settings.to_channel}, {refused} refused, "
            f"{skipped} without an address for {settings.to_channel}"
        )
        if refused and not created:
            raise ActivityFailed(f"none of the {refused} failed events could be recycled as {settings.to_channel}")
        return Done(count=created)
