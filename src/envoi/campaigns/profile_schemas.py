"""The REST shapes of profiles, their import and audiences (camelCase, like the rest of Envoi's API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from envoi.campaigns.models import Audience, Profile
from envoi.campaigns.profile_import import ImportResult, SkippedRow
from envoi.nesting import JsonObject, ShallowJson

_FILTERS_EXAMPLE = [
    {"field": "subscribed", "op": "eq", "value": True},
    {"field": "language", "op": "in", "value": ["fr", "de"]},
    {"field": "attributes.loyaltyPoints", "op": "gte", "value": 100},
]


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class ProfileChange(_Camel):
    """Fields left out keep their value; null erases one. ``attributes`` are merged into the stored ones (an
    attribute set to null is removed)."""

    email: str | None = Field(None, max_length=320, examples=["ada@example.com"])
    phone: str | None = Field(None, max_length=64, description="E.164 (+33612345678) or with ENVOI_DEFAULT_REGION")
    first_name: str | None = Field(None, alias="firstName", max_length=100)
    last_name: str | None = Field(None, alias="lastName", max_length=100)
    language: str | None = Field(None, max_length=35, examples=["fr"])
    external_id: str | None = Field(None, alias="externalId", max_length=255, description="Your system's id.")
    attributes: JsonObject | None = Field(None, examples=[{"loyaltyPoints": 120, "city": "Lyon"}])
    subscribed: bool | None = Field(None, description="false: no marketing email reaches them any more.")

    @field_validator("attributes", "subscribed")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("not_null", "cannot be null: leave it out to keep its value")
        return value


class ProfileIn(ProfileChange):
    attributes: JsonObject | None = Field(None, examples=[{"loyaltyPoints": 120, "city": "Lyon"}])
    subscribed: bool | None = Field(None, description="Default true.")


class ProfileOut(_Camel):
    id: int
    email: str | None
    phone: str | None
    first_name: str | None = Field(alias="firstName")
    last_name: str | None = Field(alias="lastName")
    language: str | None
    external_id: str | None = Field(alias="externalId")
    attributes: dict[str, Any]
    subscribed: bool
    unsubscribed_at: datetime | None = Field(alias="unsubscribedAt")
    unsubscribed_how: str | None = Field(alias="unsubscribedHow", description="api, import, link, one-click…")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")

    @classmethod
    def of(cls, profile: Profile) -> ProfileOut:
        return cls(
            id=profile.id,
            email=profile.email,
            phone=profile.phone,
            first_name=profile.first_name,
            last_name=profile.last_name,
            language=profile.language,
            external_id=profile.external_id,
            attributes=profile.attributes or {},
            subscribed=profile.subscribed,
            unsubscribed_at=profile.unsubscribed_at,
            unsubscribed_how=profile.unsubscribed_how,
            created_at=profile.created_at,
            updated_at=profile.updated_at,
        )


class RowOut(_Camel):
    line: int = Field(description="The line of the file (1 is the header).")
    field: str
    reason: str

    @classmethod
    def of(cls, row: SkippedRow) -> RowOut:
        return cls(line=row.line, field=row.field, reason=row.reason)


class ImportOut(_Camel):
    created: int
    updated: int
    unchanged: int = Field(description="Rows that matched a profile and changed nothing.")
    skipped: list[RowOut] = Field(description="Rows not imported, each with its line and why.")
    warnings: list[RowOut] = Field(description="Rows imported, but with something not applied.")

    @classmethod
    def of(cls, result: ImportResult) -> ImportOut:
        return cls(
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            skipped=[RowOut.of(row) for row in result.skipped],
            warnings=[RowOut.of(row) for row in result.warnings],
        )


class FiltersIn(_Camel):
    filters: ShallowJson = Field(
        description="Conditions that must all hold: {field, op, value}.", examples=[_FILTERS_EXAMPLE]
    )


class AudienceChange(_Camel):
    name: str | None = Field(None, description="Lowercase letters, digits and underscores.", examples=["vip_fr"])
    label: str | None = Field(None, examples=["VIP customers in France"])
    filters: ShallowJson = Field(None, description="Conditions that must all hold.", examples=[_FILTERS_EXAMPLE])

    @field_validator("name", "label", "filters")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("not_null", "cannot be null: leave it out to keep its value")
        return value


class AudienceIn(AudienceChange):
    name: str = Field(description="Lowercase letters, digits and underscores.", examples=["vip_fr"])
    label: str = Field(examples=["VIP customers in France"])
    filters: ShallowJson = Field(default_factory=list, examples=[_FILTERS_EXAMPLE])


class AudienceOut(_Camel):
    id: int
    name: str
    label: str
    filters: list[dict[str, Any]]
    created_by: str | None = Field(alias="createdBy")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")

    @classmethod
    def of(cls, audience: Audience) -> AudienceOut:
        return cls(
            id=audience.id,
            name=audience.name,
            label=audience.label,
            filters=audience.filters,
            created_by=audience.created_by,
            created_at=audience.created_at,
            updated_at=audience.updated_at,
        )


class AudienceCountOut(_Camel):
    total: int = Field(description="Profiles the filters keep.")
    subscribed: int = Field(description="Of them, those subscribed.")
    reachable: int = Field(description="Of them, those a marketing email reaches: subscribed, with an email.")
