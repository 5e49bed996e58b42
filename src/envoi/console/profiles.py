"""Profiles: the list (found by email or external id, subscribed or not, a page at a time), one profile (its
fields, attributes, and whether, how and when it unsubscribed), and the CSV upload that creates or updates them,
with what it did and, line by line, what it skipped."""

from __future__ import annotations

import csv
import io
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.campaigns import profiles as service
from envoi.campaigns.profile_import import ImportResult, read_csv, upsert_profiles
from envoi.console.forms import FieldErrors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of
from envoi.console.session import CanManageDeliveries, CanView
from envoi.errors import ValidationFailed
from envoi.events.validation import text_problem

router = console_router()
ProfileId = Annotated[int, Path(ge=1, le=2**62)]
PAGE = 50
MAX_IMPORT_BYTES = 50 * 1024 * 1024  # as the API's import
DELIMITERS = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab")]
SUBSCRIBED = {"yes": True, "no": False}


@router.get("/profiles")
async def profiles(
    request: Request, _viewer: CanView, email: str = "", external_id: str = "", subscribed: str = "", after: int = 0
) -> HTMLResponse:
    """A page of profiles by id; the next page starts after the last id of this one."""
    errors: FieldErrors = {}
    for name, value in (("email", email), ("external_id", external_id)):
        if value and (len(value) > 320 or text_problem(value, name)):
            errors[name] = "Write an address or an id as it is stored, without control characters."
    found = []
    if not errors:
        async with runtime_of(request).transaction() as session:
            found = await service.list_profiles(
                session, email=email.strip() or None, external_id=external_id.strip() or None,
                subscribed=SUBSCRIBED.get(subscribed), after=max(after, 0) or None, limit=PAGE,
            )  # fmt: skip
    query = {"email": email, "external_id": external_id, "subscribed": subscribed}
    more = urlencode({key: value for key, value in query.items() if value})
    context = {
        "profiles": found,
        "values": query,
        "errors": errors,
        "after": after,
        "next_after": found[-1].id if len(found) == PAGE else None,
        "query": more,
    }
    return render(request, "profiles/list.html", context)


def _import_page(
    request: Request,
    *,
    result: ImportResult | None = None,
    errors: FieldErrors | None = None,
    delimiter: str = ",",
    status: int = 200,
) -> HTMLResponse:
    context = {"result": result, "errors": errors or {}, "delimiters": DELIMITERS, "delimiter": delimiter}
    return render(request, "profiles/import.html", context, status=status)


@router.get("/profiles/import")
async def import_form(request: Request, _viewer: CanManageDeliveries) -> HTMLResponse:
    return _import_page(request)


async def _upload_text(request: Request) -> str:
    """The uploaded file as text (UTF-8, with or without its BOM), refused when too big or not text."""
    upload = (await request.form()).get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ValidationFailed("Choose a CSV file to upload.", field="file")
    data = await upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise ValidationFailed(f"The file is over {MAX_IMPORT_BYTES // (1024 * 1024)} MB: split it.", field="file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValidationFailed(f"The file is not UTF-8 text (line {line}): save it as UTF-8.", field="file") from None


@router.post("/profiles/import")
async def import_profiles(request: Request, viewer: CanManageDeliveries) -> Response:
    """Each row updates the profile with its external id, else the one with its email, or creates one."""
    chosen = (await request.form()).get("delimiter")
    delimiter = chosen if isinstance(chosen, str) and chosen in dict(DELIMITERS) else ","
    runtime = runtime_of(request)
    try:
        text = await _upload_text(request)
        async with runtime.transaction() as session:
            try:
                rows = read_csv(io.StringIO(text, newline=""), delimiter=delimiter)
                result = await upsert_profiles(session, rows, region=runtime.settings.default_region)
            except csv.Error as error:
                raise ValidationFailed(f"The file is not valid CSV: {error}.", field="file") from None
            counts = {"created": result.created, "updated": result.updated, "skipped": len(result.skipped)}
            audit(session, viewer.principal, "imported", "profiles", "csv", counts | {"unchanged": result.unchanged})
    except ValidationFailed as refused:
        field = refused.field if refused.field in ("file", "header") else "file"
        return _import_page(request, errors={field: refused.message}, delimiter=delimiter, status=422)
    return _import_page(request, result=result, delimiter=delimiter)


@router.get("/profiles/{profile_id}")
async def profile_detail(request: Request, profile_id: ProfileId, _viewer: CanView) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        profile = await service.get_profile(session, profile_id)
    return render(request, "profiles/profile.html", {"profile": profile})
