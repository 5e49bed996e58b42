"""The templates API's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from envoi.addresses import check_mailbox

Channel = Literal["email", "sms", "push"]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


def _static_mailbox(value: str | None) -> str | None:
    # A header written with Liquid is checked when it renders; a literal one is checked now.
    if value is None or "{{" in value:
        return value
    return check_mailbox(value)


class EmailContent(_Model):
    sender: str = Field(alias="from", min_length=1, max_length=998, examples=["Shop <shop@example.com>"])
    reply_to: str | None = Field(None, alias="replyTo", max_length=998)
    subject: str = Field(min_length=1, max_length=2000, examples=["Your order {{ ctx.orderId }}"])
    html: str | None = Field(None, max_length=1_000_000)
    text: str | None = Field(None, max_length=1_000_000)

    _check_sender = field_validator("sender")(_static_mailbox)
    _check_reply_to = field_validator("reply_to")(_static_mailbox)


class TemplateIn(_Model):
    name: str = Field(min_length=1, max_length=200)
    event_type: str = Field(alias="eventType", min_length=1, max_length=100)
    channel: Channel = "email"
    email: EmailContent | None = None


class AdobeImportIn(TemplateIn):
    """An Adobe Campaign template: subject, HTML and text written with JST (``<%= rtEvent.ctx.x %>``)."""


class UnconvertedOut(_Model):
    field: str
    snippet: str = Field(description="JST left in the draft as a visible Liquid comment, for a person to rewrite.")


class AdobeImportOut(_Model):
    template: TemplateOut
    unconverted: list[UnconvertedOut]


class VersionOut(_Model):
    version: int
    published_at: datetime = Field(alias="publishedAt")


class TemplateOut(_Model):
    id: int
    name: str
    event_type: str = Field(alias="eventType")
    channel: str
    state: str
    email: EmailContent | None
    live_version: int | None = Field(alias="liveVersion")
    versions: list[VersionOut]
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")


class VersionDetailOut(_Model):
    template_id: int = Field(alias="templateId")
    version: int
    published_at: datetime = Field(alias="publishedAt")
    email: EmailContent | None


class PublishOut(_Model):
    version: int


class StateOut(_Model):
    id: int
    state: str
    live_version: int | None = Field(alias="liveVersion")
    released_events: int = Field(0, alias="releasedEvents", description="Paused events put back in the queue.")


AdobeImportOut.model_rebuild()
