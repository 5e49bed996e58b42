"""The REST shapes of email deliveries, delivery templates and their A/B test figures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from envoi.campaigns.ab_tests import VariantFigures
from envoi.campaigns.models import Delivery
from envoi.errors import Problem


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class Variant(_Camel):
    """One version of the email: the same fields and Liquid as an email template (``{{ profile.firstName }}``,
    ``{{ delivery.unsubscribeUrl }}``)."""

    name: Literal["A", "B", "C"]
    sender: str = Field(alias="from", max_length=500, examples=["News <news@example.com>"])
    reply_to: str | None = Field(None, alias="replyTo", max_length=500)
    subject: str = Field(max_length=2000)
    html: str | None = Field(None, max_length=2_000_000)
    mjml: str | None = Field(None, max_length=2_000_000)
    text: str | None = Field(None, max_length=2_000_000)

    def stored(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump(by_alias=True).items() if v}


class DeliveryFields(_Camel):
    label: str | None = Field(None, min_length=1, max_length=200)
    audience: int | None = Field(None, ge=1, le=2**62, description="The audience's id.")
    notifications: bool | None = Field(
        None, description="Tell its creator and editors when the A/B test chose a winner or needs a choice."
    )
    variants: list[Variant] | None = Field(None, min_length=1, max_length=3)
    test_split: list[int] | None = Field(
        None, alias="testSplit", max_length=3, description="Percent of the audience per variant: [10, 10]."
    )
    criterion: Literal["open_rate", "click_rate", "fewest_unsubscriptions"] | None = None
    test_duration_seconds: int | None = Field(None, alias="testDurationSeconds", ge=1, le=90 * 86400)
    winner_mode: Literal["automatic", "manual"] | None = Field(None, alias="winnerMode")
    seed: int | None = Field(None, ge=0, le=2**31, description="Makes the split reproducible; unset: random.")

    @field_validator(
        "label", "notifications", "variants", "test_split", "criterion", "test_duration_seconds", "winner_mode", "seed"
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("not_null", "cannot be null: leave it out to keep its value")
        return value

    def changes(self) -> dict[str, object]:
        values = self.model_dump(exclude_unset=True, exclude={"name", "template", "variants", "audience"})
        if "variants" in self.model_fields_set and self.variants is not None:
            values["variants"] = [v.stored() for v in self.variants]
        if "audience" in self.model_fields_set:
            values["audience_id"] = self.audience
        return values


class DeliveryIn(DeliveryFields):
    name: str = Field(max_length=100, examples=["november-newsletter"])
    template: int | None = Field(
        None, ge=1, le=2**62, description="The delivery template's id; unset: the factory 'Email'."
    )


class SendIn(_Camel):
    at: AwareDatetime | None = Field(
        None, description="When to send, with its offset (2026-12-24T08:00:00Z); unset: now."
    )


class WinnerIn(_Camel):
    variant: Literal["A", "B", "C"]


class ProblemOut(_Camel):
    field: str
    message: str


class FiguresOut(_Camel):
    variant: str | None = Field(description="A test variant; null: the rest of the audience, who get the winner.")
    recipients: int
    sent: int
    opens: int
    clicks: int
    unsubscriptions: int
    open_rate: float = Field(alias="openRate")
    click_rate: float = Field(alias="clickRate")
    unsubscription_rate: float = Field(alias="unsubscriptionRate")

    @classmethod
    def of(cls, f: VariantFigures) -> FiguresOut:
        return cls(
            variant=f.variant,
            recipients=f.recipients,
            sent=f.sent,
            opens=f.opens,
            clicks=f.clicks,
            unsubscriptions=f.unsubscriptions,
            open_rate=float(f.open_rate),
            click_rate=float(f.click_rate),
            unsubscription_rate=float(f.unsubscription_rate),
        )


class DeliveryOut(_Camel):
    id: int
    name: str
    label: str
    is_template: bool = Field(alias="isTemplate")
    factory: bool
    template: int | None
    audience: int | None
    state: str
    notifications: bool
    variants: list[dict[str, str]]
    test_split: list[int] = Field(alias="testSplit")
    criterion: str
    test_duration_seconds: int = Field(alias="testDurationSeconds")
    winner_mode: str = Field(alias="winnerMode")
    seed: int
    scheduled_at: datetime | None = Field(alias="scheduledAt")
    launched_at: datetime | None = Field(alias="launchedAt")
    test_ends_at: datetime | None = Field(alias="testEndsAt")
    winner: str | None
    winner_chosen_by: str | None = Field(alias="winnerChosenBy")
    decision: str | None
    decided_at: datetime | None = Field(alias="decidedAt")
    created_by: str | None = Field(alias="createdBy")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    problems: list[ProblemOut] = Field(description="What stops it from being sent; empty: it can go.")

    @classmethod
    def of(cls, d: Delivery, problems: list[Problem]) -> DeliveryOut:
        return cls(
            id=d.id,
            name=d.name,
            label=d.label,
            is_template=d.is_template,
            factory=d.factory,
            template=d.template_id,
            audience=d.audience_id,
            state=d.state,
            notifications=d.notifications,
            variants=d.variants,
            test_split=d.test_split,
            criterion=d.criterion,
            test_duration_seconds=d.test_duration_seconds,
            winner_mode=d.winner_mode,
            seed=d.seed,
            scheduled_at=d.scheduled_at,
            launched_at=d.launched_at,
            test_ends_at=d.test_ends_at,
            winner=d.winner,
            winner_chosen_by=d.winner_chosen_by,
            decision=d.decision,
            decided_at=d.decided_at,
            created_by=d.created_by,
            created_at=d.created_at,
            updated_at=d.updated_at,
            problems=[ProblemOut(field=f, message=m) for f, m in problems],
        )


class SentOut(_Camel):
    state: str
    queued: int = Field(description="Emails queued now (the test variants', or everyone's without a test).")
