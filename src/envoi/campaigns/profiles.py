"""Profiles: create, change, find, delete, unsubscribe; and the import that creates or updates thousands at once,
deduplicated by external id, else by email. Services never commit.

In an import a blank cell means "not given": it never erases a stored value (the API's PATCH with null does)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.addresses import normalize_email, normalize_phone, plain_phone
from envoi.campaigns.models import Profile
from envoi.db.base import utcnow
from envoi.errors import Conflict, NotFound, ValidationFailed
from envoi.events.validation import clean_json, text_problem

TEXT_FIELDS = ("email", "phone", "first_name", "last_name", "language", "external_id")
API_NAMES = {"first_name": "firstName", "last_name": "lastName", "external_id": "externalId"}
_LENGTHS = {"email": 320, "phone": 32, "first_name": 100, "last_name": 100, "language": 35, "external_id": 255}
# CSV header names (compared lower-cased) of the profile's own columns; any other column is an attribute.
COLUMNS = {name: name for name in (*TEXT_FIELDS, "subscribed")} | {
    "firstname": "first_name",
    "lastname": "last_name",
    "externalid": "external_id",
}
YES, NO = {"true", "yes", "1"}, {"false", "no", "0"}
BY_API, BY_IMPORT = "api", "import"
CHUNK = 1000  # rows per round trip: one SELECT by external ids, one by emails, one bulk INSERT, one bulk UPDATE
_IN_LIMIT = 5000  # ids per IN (...): SQLite caps the number of parameters of one statement
STORED = (*TEXT_FIELDS, "attributes", "subscribed", "unsubscribed_at", "unsubscribed_how")


def clean_text(name: str, value: str, region: str | None = None) -> str | None:
    """A profile field as stored (None for blank); raises ValueError with a reason a user can act on."""
    text = value.strip()
    if not text:
        return None
    if problem := text_problem(text, name):
        raise ValueError(problem[1])
    if name == "email":
        text = normalize_email(text).lower()
    elif name == "phone":
        # E.164 when the number can be read as one (as events do); otherwise kept as checked digits
        try:
            text = normalize_phone(text, region)
        except ValueError:
            text = plain_phone(text)
    if len(text) > _LENGTHS[name]:
        raise ValueError(f"at most {_LENGTHS[name]} characters")
    return text


def clean_attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected an object of attributes")
    if any(not key.strip() or len(key) > 100 for key in value):
        raise ValueError("attribute names have 1 to 100 characters")
    if clean_json(value) is None:
        raise ValueError((text_problem(value, "attributes") or ("", "cannot be stored as JSON"))[1])
    return dict(value)


def _checked(fields: Mapping[str, Any], region: str | None) -> dict[str, Any]:
    """API fields checked and normalised; raises ValidationFailed naming the field as the API does."""
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        try:
            if name in TEXT_FIELDS:
                cleaned[name] = None if value is None else clean_text(name, str(value), region)
            elif name == "attributes":
                cleaned[name] = clean_attributes(value)
            elif name == "subscribed" and value is not None:
                cleaned[name] = bool(value)
        except ValueError as error:
            what = name.replace("_", " ")
            raise ValidationFailed(f"not a valid {what}: {error}", field=API_NAMES.get(name, name)) from None
    return cleaned


async def _check_free(session: AsyncSession, values: Mapping[str, Any], profile_id: int | None) -> None:
    """Conflict when another profile has the email or external id."""
    for name in ("email", "external_id"):
        if values.get(name) is None:
            continue
        owner = await session.scalar(select(Profile.id).where(getattr(Profile, name) == values[name]))
        if owner is not None and owner != profile_id:
            what = "email" if name == "email" else "external id"
            raise Conflict(f"profile {owner} has the {what} {values[name]!r}", field=API_NAMES.get(name, name))


def _identified(values: Mapping[str, Any]) -> None:
    if values.get("email") is None and values.get("external_id") is None:
        raise ValidationFailed("a profile needs an email or an external id", field="email")


async def create_profile(
    session: AsyncSession, fields: Mapping[str, Any], *, region: str | None = None, now: datetime | None = None
) -> Profile:
    """``fields``: email, phone, first_name, last_name, language, external_id, attributes, subscribed."""
    values = _checked(fields, region)
    _identified(values)
    await _check_free(session, values, None)
    subscribed = values.pop("subscribed", True)
    profile = Profile(**({"attributes": {}} | values), subscribed=True)
    if not subscribed:
        unsubscribe_profile(profile, BY_API, now)
    session.add(profile)
    await session.flush()
    return profile


async def update_profile(
    session: AsyncSession,
    profile: Profile,
    changes: Mapping[str, Any],
    *,
    region: str | None = None,
    now: datetime | None = None,
) -> Profile:
    """Fields given change, None erases; ``attributes`` merge (an attribute set to None is removed)."""
    values = _checked({k: v for k, v in changes.items() if k != "attributes"}, region)
    if changes.get("attributes") is not None:
        merged = profile.attributes | changes["attributes"]
        values |= _checked({"attributes": {k: v for k, v in merged.items() if v is not None}}, region)
    _identified({"email": profile.email, "external_id": profile.external_id} | values)
    await _check_free(session, values, profile.id)
    subscribed = values.pop("subscribed", None)
    for name, value in values.items():
        setattr(profile, name, value)
    if subscribed is False:
        unsubscribe_profile(profile, BY_API, now)
    elif subscribed:
        resubscribe_profile(profile)
    profile.updated_at = now or utcnow()
    await session.flush()
    return profile


def unsubscribe_profile(profile: Profile, how: str, now: datetime | None = None) -> bool:
    """No marketing email reaches them any more. False if they already were unsubscribed (the first time and
    way are kept)."""
    if not profile.subscribed:
        return False
    now = now or utcnow()
    profile.subscribed, profile.unsubscribed_at, profile.unsubscribed_how = False, now, how[:100]
    profile.updated_at = now
    return True


def resubscribe_profile(profile: Profile, now: datetime | None = None) -> bool:
    """Marketing emails reach them again (an operator's decision: the person asked for it)."""
    if profile.subscribed:
        return False
    profile.subscribed, profile.unsubscribed_at, profile.unsubscribed_how = True, None, None
    profile.updated_at = now or utcnow()
    return True


async def get_profile(session: AsyncSession, profile_id: int) -> Profile:
    profile = await session.get(Profile, profile_id)
    if profile is None:
        raise NotFound(f"no profile has the id {profile_id}", field="id")
    return profile


async def delete_profile(session: AsyncSession, profile: Profile) -> None:
    """Its events stay (they keep the profile's id); the recipients of deliveries go with it."""
    await session.delete(profile)
    await session.flush()


async def list_profiles(
    session: AsyncSession,
    *,
    email: str | None = None,
    external_id: str | None = None,
    subscribed: bool | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[Profile]:
    """By id; ``after`` is the last id of the previous page."""
    query = select(Profile).order_by(Profile.id).limit(limit)
    if email is not None:
        query = query.where(Profile.email == email.strip().lower())
    if external_id is not None:
        query = query.where(Profile.external_id == external_id)
    if subscribed is not None:
        query = query.where(Profile.subscribed.is_(subscribed))
    if after is not None:
        query = query.where(Profile.id > after)
    return list((await session.scalars(query)).all())


def slices(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch


async def profile_ids_by_external_id(session: AsyncSession, external_ids: Collection[str]) -> dict[str, int]:
    """The id of each external id that names a profile (one query up to 5,000 ids)."""
    found: dict[str, int] = {}
    if session.get_bind().dialect.name == "postgresql":  # one array parameter: ingestion asks this per batch
        wanted = bindparam("wanted", list(set(external_ids)), type_=ARRAY(String()))
        rows = await session.execute(select(Profile.external_id, Profile.id).where(Profile.external_id == any_(wanted)))
        return {str(ext): pid for ext, pid in rows}
    for batch in slices(set(external_ids), _IN_LIMIT):
        rows = await session.execute(select(Profile.external_id, Profile.id).where(Profile.external_id.in_(batch)))
        found.update({str(ext): pid for ext, pid in rows})
    return found


async def profiles_by_id(session: AsyncSession, ids: Collection[int]) -> dict[int, Profile]:
    found: dict[int, Profile] = {}
    for batch in slices(set(ids), _IN_LIMIT):
        found.update({p.id: p for p in await session.scalars(select(Profile).where(Profile.id.in_(batch)))})
    return found
