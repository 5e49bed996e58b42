"""The REST shapes of webhook subscriptions and their attempts."""

from __future__ import annotations

from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from envoi.webhooks.models import Change, Webhook, WebhookAttempt


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class WebhookIn(_Camel):
    url: AnyHttpUrl = Field(examples=["https://crm.example.com/envoi/status"])
    changes: list[Change] = Field(min_length=1, description="The status changes to receive.")
    event_types: list[str] | None = Field(
        None, alias="eventTypes", max_length=100, description="Only events of these types; unset: all."
    )
    secret: str | None = Field(
        None, min_length=16, max_length=200, description="Signs each call; unset: Envoi makes one (shown once)."
    )


class WebhookOut(_Camel):
    id: int
    url: str
    changes: list[str]
    event_types: list[str] | None = Field(alias="eventTypes")
    active: bool
    disabled_at: datetime | None = Field(alias="disabledAt")
    disabled_reason: str | None = Field(alias="disabledReason")
    created_by: str | None = Field(alias="createdBy")
    created_at: datetime = Field(alias="createdAt")
    secret: str | None = Field(None, description="Only in the answer that created it.")

    @classmethod
    def of(cls, hook: Webhook, *, with_secret: bool = False) -> WebhookOut:
        return cls(
            id=hook.id,
            url=hook.url,
            changes=hook.changes,
            event_types=hook.event_types,
            active=hook.active,
            disabled_at=hook.disabled_at,
            disabled_reason=hook.disabled_reason,
            created_by=hook.created_by,
            created_at=hook.created_at,
            secret=hook.secret if with_secret else None,
        )


class AttemptOut(_Camel):
    call_id: int = Field(alias="callId")
    change: str
    at: datetime
    status_code: int | None = Field(alias="statusCode", description="Null: no answer.")
    latency_ms: int = Field(alias="latencyMs")
    response: str | None = Field(description="The start of the answer, or why there was none.")

    @classmethod
    def of(cls, attempt: WebhookAttempt, change: str) -> AttemptOut:
        return cls(
            call_id=attempt.call_id,
            change=change,
            at=attempt.at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            response=attempt.response,
        )
