"""The events API's shapes, with Adobe Campaign's REST field names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from envoi.db.base import ADDRESS_LENGTH
from envoi.nesting import JsonObject

CHANNEL_CODES = {0: "email", 1: "sms", 41: "push", 42: "push"}
CHANNEL_WORDS = {"email": "email", "sms": "sms", "push": "push", "ios": "push", "android": "push"}
# A wished channel that says which devices too: Adobe's 41 (iOS) and 42 (Android).
CHANNEL_PLATFORMS = {"41": "ios", "42": "android", "ios": "ios", "android": "android"}
ChannelName = Literal["email", "sms", "push"]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


def _utc(value: datetime | None) -> datetime | None:
    # Adobe clients often send local-less timestamps: they are read as UTC.
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date out of range") from None


class EventIn(_Model):
    type: str = Field(min_length=1, max_length=100, examples=["order_confirmation"])
    email: str | None = Field(None, max_length=320)
    mobile_phone: str | None = Field(None, alias="mobilePhone", max_length=32)
    ctx: JsonObject = Field(default_factory=dict, description="Free-form data used by the template.")
    scheduled: datetime | None = Field(None, description="Do not send before this time (UTC if no offset).")
    expiration: datetime | None = Field(None, description="Give up (status too_old) if not sent by then.")
    wished_channel: str | int | None = Field(
        None,
        alias="wishedChannel",
        description="email (0), sms (1) or push (41: iOS, 42: Android). Unset: the event type's defaultChannel.",
    )
    external_id: str | None = Field(None, alias="externalId", max_length=255)
    origin: str | None = Field(None, max_length=255)
    language: str | None = Field(None, max_length=35)
    country: str | None = Field(None, max_length=35)
    email_format: Literal[0, 1, 2] | None = Field(None, alias="emailFormat", description="0 unknown, 1 text, 2 HTML.")
    registration_token: str | None = Field(
        None,
        alias="registrationToken",
        max_length=ADDRESS_LENGTH,
        description="Push: an APNs device token (hex), an FCM registration token, or a Web Push subscription (JSON).",
    )
    platform: Literal["ios", "android", "web"] | None = Field(
        None,
        description="Push: the token's platform. Unset: from wishedChannel 41 (ios) or 42 (android), "
        "or web for a token that is a JSON object.",
    )
    mobile_app_uuid: str | None = Field(None, alias="mobileAppUuid", max_length=64)
    correlation_id: str | None = Field(None, alias="correlationId", max_length=255)
    mode: Literal["realtime", "batch"] = Field("realtime", description="Real-time events are sent before batch events.")

    _utc_scheduled = field_validator("scheduled", "expiration")(_utc)

    @model_validator(mode="before")
    @classmethod
    def _platform_of_channel(cls, data: Any) -> Any:
        """Adobe's wished channel 41 or 42 also says the platform, when the event does not."""
        if not isinstance(data, dict) or data.get("platform") is not None:
            return data
        wished = data.get("wishedChannel", data.get("wished_channel"))
        platform = CHANNEL_PLATFORMS.get(str(wished).strip().lower()) if isinstance(wished, str | int) else None
        return data | {"platform": platform} if platform else data

    @field_validator("wished_channel")
    @classmethod
    def _channel(cls, value: str | int | None) -> str | None:
        if value is None:
            return None
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            code = int(value)
            if code not in CHANNEL_CODES:
                raise ValueError("unknown channel code; use 0 (email), 1 (sms), 41 or 42 (push)")
            return CHANNEL_CODES[code]
        word = CHANNEL_WORDS.get(value.strip().lower())
        if word is None:
            raise ValueError("unknown channel; use email, sms or push")
        return word


class BatchIn(_Model):
    events: list[EventIn] = Field(description="Up to 10,000 events, stored all or none.")


class AcceptedOut(_Model):
    id: int
    href: str
    status: str = "pending"


class BatchAcceptedOut(_Model):
    ids: list[int]


class MessageOut(_Model):
    id: int
    channel: str
    address: str
    status: str
    subject: str | None
    provider: str | None = Field(description="The configured provider that took it (outbox: the built-in one).")
    provider_id: str | None = Field(alias="providerId")
    attempts: int
    error: str | None
    template_version: int | None = Field(alias="templateVersion")
    language: str | None = Field(description="The template's language variant it was rendered in.")
    created_at: datetime = Field(alias="createdAt")
    sent_at: datetime | None = Field(alias="sentAt")


class TimelineEntry(_Model):
    status: str
    at: datetime
    reason: str | None = None


class TemplateRef(_Model):
    id: int
    version: int


class EventOut(_Model):
    id: int
    href: str
    type: str
    mode: str
    channel: str
    status: str
    email: str | None
    mobile_phone: str | None = Field(alias="mobilePhone")
    external_id: str | None = Field(alias="externalId")
    origin: str | None
    language: str | None
    country: str | None
    email_format: int | None = Field(alias="emailFormat")
    registration_token: str | None = Field(alias="registrationToken")
    platform: str | None
    correlation_id: str | None = Field(alias="correlationId")
    ctx: dict[str, Any]
    scheduled: datetime | None
    expiration: datetime | None
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    error_count: int = Field(alias="errorCount")
    next_attempt_at: datetime | None = Field(alias="nextAttemptAt", description="Set while the event waits.")
    last_error: str | None = Field(alias="lastError")
    template: TemplateRef | None = Field(description="The template version the event was rendered with.")
    messages: list[MessageOut]
    timeline: list[TimelineEntry]


class EventSummaryOut(_Model):
    id: int
    href: str
    type: str
    channel: str
    status: str
    email: str | None
    external_id: str | None = Field(alias="externalId")
    created_at: datetime = Field(alias="createdAt")
    error_count: int = Field(alias="errorCount")


class EventTypeIn(_Model):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.\-]*$", examples=["order_confirmation"])
    label: str = Field(min_length=1, max_length=200)
    json_schema: JsonObject | None = Field(None, alias="schema", description="JSON Schema that ctx must match.")
    sample: JsonObject | None = Field(None, description="Sample ctx, for previews and tests.")
    default_channel: ChannelName | None = Field(
        None, alias="defaultChannel", description="The channel of events that wish for none. Unset: email."
    )
    fallback_channel: ChannelName | None = Field(
        None,
        alias="fallbackChannel",
        description="Tried when the first channel fails for good or the event has no usable address for it.",
    )
    profile_based: bool = Field(
        False,
        alias="profileBased",
        description="Its events must name a profile by externalId; others are refused (422 on externalId).",
    )


class EventTypeOut(_Model):
    name: str
    label: str
    json_schema: dict[str, Any] | None = Field(alias="schema")
    sample: dict[str, Any] | None
    default_channel: str | None = Field(alias="defaultChannel")
    fallback_channel: str | None = Field(alias="fallbackChannel")
    profile_based: bool = Field(alias="profileBased")
    created_at: datetime = Field(alias="createdAt")
