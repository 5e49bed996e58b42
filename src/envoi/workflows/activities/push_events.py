"""The ``push_events`` activity: turns the events a query selected into new events of a type, with the same
recipient and data, which the workers then deliver like any other."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from envoi.events.models import Event
from envoi.events.schemas import EventIn
from envoi.events.service import ingest_many
from envoi.workflows.activities.base import Activity, ActivityFailed, ActivitySettings, Done, RunContext
from envoi.workflows.activities.query import selected

_CHUNK = 500


class PushEventsSettings(ActivitySettings):
    event_type: str = Field(min_length=1, max_length=100)
    channel: Literal["email", "sms", "push"] | None = Field(None, description="Unset: the event type's default.")
    mode: Literal["realtime", "batch"] = "batch"


def copy_of(event: Event, event_type: str, channel: str | None, mode: str, origin: str) -> EventIn:
    """A new event for the same recipient, with the same data."""
    return EventIn.model_validate(
        {
            "type": event_type,
            "email": event.email,
            "mobilePhone": event.mobile_phone,
            "registrationToken": event.registration_token,
            "platform": event.platform,
            "mobileAppUuid": event.mobile_app_uuid,
            "externalId": event.external_id,
            "language": event.language,
            "country": event.country,
            "ctx": event.ctx,
            "wishedChannel": channel,
            "origin": origin,
            "mode": mode,
        }
    )


class PushEventsActivity(Activity[PushEventsSettings]):
    kind = "push_events"
    settings_model = PushEventsSettings
    description = "Creates an event of a type for each event its query selected."

    async def run(self, settings: PushEventsSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        query, limit = selected(given)
        origin = f"workflow:{context.workflow_name}"
        created = refused = 0
        after = 0
        while created + refused < limit:
            chunk = min(_CHUNK, limit - created - refused)
            events = list(await context.session.scalars(query.where(Event.id > after).limit(chunk)))
            if not events:
                break
            after = events[-1].id
            copies: list[tuple[EventIn, int | None]] = [
                (copy_of(e, settings.event_type, settings.channel, settings.mode, origin), None) for e in events
            ]
            results = await ingest_many(context.session, copies, region=context.settings.default_region)
            for source, result in zip(events, results, strict=True):
                if isinstance(result, int):
                    created += 1
                else:
                    refused += 1
                    if refused <= 10:
                        context.log(f"event {source.id} not copied: {result.message}")
        context.log(f"{created} events of {settings.event_type} created, {refused} refused")
        if refused and not created:
            raise ActivityFailed(f"none of the {refused} events could be turned into {settings.event_type} events")
        return Done(output={"count": created}, count=created)  # a test after it can check how many
