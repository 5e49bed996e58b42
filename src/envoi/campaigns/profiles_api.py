"""REST: profiles (``/api/v1/profiles``), their CSV import, and audiences (``/api/v1/audiences``)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.datastructures import UploadFile

from envoi.access.api import CanManageDeliveries, CanView, RuntimeDep
from envoi.access.audit import audit
from envoi.campaigns import audiences, profile_import, profiles
from envoi.campaigns.profile_schemas import (
    AudienceChange,
    AudienceCountOut,
    AudienceIn,
    AudienceOut,
    FiltersIn,
    ImportOut,
    ProfileChange,
    ProfileIn,
    ProfileOut,
)
from envoi.errors import EnvoiError, ValidationFailed
from envoi.events.validation import text_problem

router = APIRouter(prefix="/api/v1")
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
MAX_IMPORT_BYTES = 50 * 1024 * 1024


class PayloadTooLarge(EnvoiError):
    status_code = 413
    code = "payload_too_large"


@router.get("/profiles", response_model=list[ProfileOut], tags=["profiles"])
async def list_profiles(
    runtime: RuntimeDep,
    _who: CanView,
    email: Annotated[str | None, Query(max_length=320)] = None,
    external_id: Annotated[str | None, Query(alias="externalId", max_length=255)] = None,
    subscribed: bool | None = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="The last id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ProfileOut]:
    """By id, ``limit`` at a time; the next page starts ``after`` the last id of this one."""
    for name, value in (("email", email), ("externalId", external_id)):
        if value and (problem := text_problem(value, name)):
            raise ValidationFailed(problem[1], field=problem[0])
    async with runtime.transaction() as session:
        found = await profiles.list_profiles(
            session, email=email, external_id=external_id, subscribed=subscribed, after=after, limit=limit
        )
        return [ProfileOut.of(p) for p in found]


@router.post("/profiles", response_model=ProfileOut, status_code=201, tags=["profiles"])
async def create_profile(body: ProfileIn, runtime: RuntimeDep, who: CanManageDeliveries) -> ProfileOut:
    """A profile needs an email or an external id; 409 when another profile has either."""
    async with runtime.transaction() as session:
        fields = body.model_dump(exclude_unset=True)
        profile = await profiles.create_profile(session, fields, region=runtime.settings.default_region)
        audit(session, who, "created", "profile", profile.id, {"fields": sorted(fields)})
        return ProfileOut.of(profile)


@router.post(
    "/profiles/import",
    response_model=ImportOut,
    tags=["profiles"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
                },
            },
        }
    },
)
async def import_profiles(
    request: Request,
    runtime: RuntimeDep,
    who: CanManageDeliveries,
    delimiter: Annotated[str, Query(min_length=1, max_length=1)] = ",",
) -> ImportOut:
    """A CSV file (``text/csv`` body, or the form field ``file``) whose header names the columns: email, phone,
    first_name, last_name, language, external_id, subscribed (true/false/yes/no/1/0); any other column is an
    attribute. Each row updates the profile with its external id, else the one with its email, or creates one;
    blank cells keep stored values. Up to 50 MB, in one transaction."""
    text = await _csv_text(request)
    async with runtime.transaction() as session:
        try:
            rows = profile_import.read_csv(io.StringIO(text, newline=""), delimiter=delimiter)
            result = await profile_import.upsert_profiles(session, rows, region=runtime.settings.default_region)
        except csv.Error as error:
            raise ValidationFailed(f"the file is not valid CSV: {error}", field="file") from None
        counts = {"created": result.created, "updated": result.updated, "skipped": len(result.skipped)}
        audit(session, who, "imported", "profiles", "csv", counts | {"unchanged": result.unchanged})
        return ImportOut.of(result)


async def _csv_text(request: Request) -> str:
    """The upload as text: read up to MAX_IMPORT_BYTES, from the body or the form's ``file`` field."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_IMPORT_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_IMPORT_BYTES:
            raise _too_large()
    content_type = request.headers.get("content-type", "")
    charset = "utf-8"
    if content_type.startswith("multipart/form-data"):
        data = await _form_file(request, bytes(body))
    else:
        data = bytes(body)
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
    try:
        return data.decode("utf-8-sig" if charset.lower().replace("_", "-") in ("utf-8", "utf8") else charset)
    except LookupError:
        raise ValidationFailed(f"unknown charset {charset!r}", field="Content-Type") from None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        message = f"the file is not {charset} text (line {line}): save it as UTF-8, or send its charset"
        raise ValidationFailed(message, field="file") from None


async def _form_file(request: Request, body: bytes) -> bytes:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ValidationFailed("send the CSV file in the form field 'file'", field="file")
    return await upload.read()


def _too_large() -> PayloadTooLarge:
    megabytes = MAX_IMPORT_BYTES // (1024 * 1024)
    return PayloadTooLarge(f"the file is over {megabytes} MB: split it, or use envoi profiles import", field="file")


@router.get("/profiles/{profile_id}", response_model=ProfileOut, tags=["profiles"])
async def read_profile(profile_id: Id, runtime: RuntimeDep, _who: CanView) -> ProfileOut:
    async with runtime.transaction() as session:
        return ProfileOut.of(await profiles.get_profile(session, profile_id))


@router.patch("/profiles/{profile_id}", response_model=ProfileOut, tags=["profiles"])
async def change_profile(
    profile_id: Id, body: ProfileChange, runtime: RuntimeDep, who: CanManageDeliveries
) -> ProfileOut:
    async with runtime.transaction() as session:
        changes = body.model_dump(exclude_unset=True)
        profile = await profiles.get_profile(session, profile_id)
        profile = await profiles.update_profile(session, profile, changes, region=runtime.settings.default_region)
        audit(session, who, "updated", "profile", profile_id, {"fields": sorted(changes)})
        return ProfileOut.of(profile)


@router.delete("/profiles/{profile_id}", status_code=204, tags=["profiles"])
async def delete_profile(profile_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> None:
    async with runtime.transaction() as session:
        await profiles.delete_profile(session, await profiles.get_profile(session, profile_id))
        audit(session, who, "deleted", "profile", profile_id)


@router.post("/profiles/{profile_id}/unsubscribe", response_model=ProfileOut, tags=["profiles"])
async def unsubscribe(profile_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> ProfileOut:
    """No marketing email reaches them any more (``unsubscribedHow``: api). Already unsubscribed: unchanged."""
    async with runtime.transaction() as session:
        profile = await profiles.get_profile(session, profile_id)
        if profiles.unsubscribe_profile(profile, profiles.BY_API):
            audit(session, who, "unsubscribed", "profile", profile_id)
        return ProfileOut.of(profile)


@router.post("/profiles/{profile_id}/resubscribe", response_model=ProfileOut, tags=["profiles"])
async def resubscribe(profile_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> ProfileOut:
    """Marketing emails reach them again: only when they asked for it."""
    async with runtime.transaction() as session:
        profile = await profiles.get_profile(session, profile_id)
        if profiles.resubscribe_profile(profile):
            audit(session, who, "resubscribed", "profile", profile_id)
        return ProfileOut.of(profile)


@router.get("/audiences", response_model=list[AudienceOut], tags=["audiences"])
async def list_audiences(runtime: RuntimeDep, _who: CanView) -> list[AudienceOut]:
    async with runtime.transaction() as session:
        return [AudienceOut.of(a) for a in await audiences.list_audiences(session)]


@router.post("/audiences", response_model=AudienceOut, status_code=201, tags=["audiences"])
async def create_audience(body: AudienceIn, runtime: RuntimeDep, who: CanManageDeliveries) -> AudienceOut:
    async with runtime.transaction() as session:
        audience = await audiences.create_audience(
            session, name=body.name, label=body.label, filters=body.filters, actor=who.actor
        )
        audit(session, who, "created", "audience", audience.id, {"name": audience.name})
        return AudienceOut.of(audience)


@router.post("/audiences/preview", response_model=AudienceCountOut, tags=["audiences"])
async def preview_audience(body: FiltersIn, runtime: RuntimeDep, _who: CanView) -> AudienceCountOut:
    """How many profiles unsaved filters keep, and how many a marketing email would reach."""
    async with runtime.transaction() as session:
        return AudienceCountOut(**await audiences.count_audience(session, body.filters))


@router.get("/audiences/{audience_id}", response_model=AudienceOut, tags=["audiences"])
async def read_audience(audience_id: Id, runtime: RuntimeDep, _who: CanView) -> AudienceOut:
    async with runtime.transaction() as session:
        return AudienceOut.of(await audiences.find_audience(session, audience_id))


@router.get("/audiences/{audience_id}/count", response_model=AudienceCountOut, tags=["audiences"])
async def count_audience(audience_id: Id, runtime: RuntimeDep, _who: CanView) -> AudienceCountOut:
    """Who is in it now: the count changes as profiles do."""
    async with runtime.transaction() as session:
        audience = await audiences.find_audience(session, audience_id)
        return AudienceCountOut(**await audiences.count_audience(session, audience.filters))


@router.patch("/audiences/{audience_id}", response_model=AudienceOut, tags=["audiences"])
async def change_audience(
    audience_id: Id, body: AudienceChange, runtime: RuntimeDep, who: CanManageDeliveries
) -> AudienceOut:
    async with runtime.transaction() as session:
        changes = body.model_dump(exclude_unset=True)
        audience = await audiences.update_audience(
            session, await audiences.find_audience(session, audience_id), changes
        )
        audit(session, who, "updated", "audience", audience_id, {"fields": sorted(changes)})
        return AudienceOut.of(audience)


@router.delete("/audiences/{audience_id}", status_code=204, tags=["audiences"])
async def delete_audience(audience_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> None:
    async with runtime.transaction() as session:
        await audiences.delete_audience(session, await audiences.find_audience(session, audience_id))
        audit(session, who, "deleted", "audience", audience_id)
