"""Ingestion: validate, dedupe, store in one transaction (one per request, group or batch). Never commits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.addresses import (
    address_for,
    normalize_email,
    normalize_phone,
    normalize_push_token,
    plain_phone,
    push_platform,
    push_token_word,
)
from envoi.campaigns.profiles import profile_ids_by_external_id
from envoi.db.base import utcnow
from envoi.db.notify import notify_queue
from envoi.errors import BatchRejected, Conflict, Problem, ValidationFailed, as_dicts, input_problems, invalid
from envoi.events.models import Event, EventMode, EventStatus, EventType, IdempotencyKey
from envoi.events.schemas import EventIn
from envoi.events.validation import clean_json, ctx_errors, text_problem
from envoi.observability.metrics import count_received

_EVENT_LIST = TypeAdapter(list[EventIn])


@dataclass(slots=True)
class _Checked:
    row: dict[str, Any]
    errors: list[tuple[str, str]]


def _normalized(
    value: str | None, normalize: Callable[[str], str], field: str, what: str, errors: list[Problem]
) -> str | None:
    if not value:
        return None
    try:
        return normalize(value)
    except ValueError as error:
        errors.append((field, f"not a valid {what}: {error}"))
        return None


def _phone(value: str, region: str | None, for_sms: bool) -> str:
    """E.164 where an SMS may go to the number; elsewhere (a number kept for the record) only checked."""
    try:
        return normalize_phone(value, region)
    except ValueError:
        if for_sms:
            raise
        return plain_phone(value)


# Each channel's address field, as the error for a missing one names it.
_ADDRESS_FIELDS = {
    "email": ("email", "an email address"),
    "sms": ("mobilePhone", "a mobile phone number"),
    "push": ("registrationToken", "a registration token with its platform"),
}


@dataclass(frozen=True, slots=True)
class _TypeRules:
    schema: str | None  # the JSON Schema as text (validators are cached by it)
    channel: str  # for events that wish for none
    fallback: str | None  # tried when the first channel fails or has no address
    profile_based: bool = False  # its events must name a profile by externalId


def _check_event(event: EventIn, types: dict[str, _TypeRules], now: datetime, region: str | None) -> _Checked:
    errors: list[tuple[str, str]] = []
    for field, value in (
        ("type", event.type),
        ("email", event.email),
        ("mobilePhone", event.mobile_phone),
        ("externalId", event.external_id),
        ("origin", event.origin),
        ("language", event.language),
        ("country", event.country),
        ("registrationToken", event.registration_token),
        ("mobileAppUuid", event.mobile_app_uuid),
        ("correlationId", event.correlation_id),
    ):
        if value and (problem := text_problem(value, field)):
            errors.append(problem)
    ctx_json = clean_json(event.ctx)  # serialized once: this text is what gets stored
    if ctx_json is None:
        errors.append(text_problem(event.ctx, "ctx") or ("ctx", "cannot be stored as JSON"))
    if errors:
        return _Checked({}, errors)
    rules = types.get(event.type)
    if rules is None:
        errors.append(("type", f"event type '{event.type}' does not exist"))
    elif rules.schema is not None:
        errors.extend(ctx_errors(rules.schema, event.ctx))
    channel = str(event.wished_channel or (rules.channel if rules else "email"))
    email = _normalized(event.email, normalize_email, "email", "email address", errors)
    fallback = rules.fallback if rules else None
    country = event.country.upper() if event.country and len(event.country) == 2 else region
    mobile_phone = _normalized(
        event.mobile_phone,
        lambda v: _phone(v, country, "sms" in (channel, fallback)),
        "mobilePhone",
        "phone number",
        errors,
    )

    token, platform = event.registration_token, push_platform(event.registration_token, event.platform)
    if token and "push" in (channel, fallback):
        if platform is None:
            errors.append(("platform", "ios, android or web is required with a registration token for push"))
        else:
            check = partial(normalize_push_token, platform=platform)
            token = _normalized(token, check, "registrationToken", push_token_word(platform), errors)

    def reachable(on: str) -> bool:
        push_address = token if platform else None  # a token is an address only with its platform
        return bool(
            address_for(on, email=event.email, mobile_phone=event.mobile_phone, registration_token=push_address)
        )

    if not reachable(channel) and not (fallback and reachable(fallback)):
        field, what = _ADDRESS_FIELDS[channel]
        also = f" (or, for the fallback channel {fallback}, its address)" if fallback else ""
        if not any(problem[0] in (field, "platform") for problem in errors):  # else what is wrong was said
            errors.append((field, f"{what} is required for the {channel} channel{also}"))
    scheduled = event.scheduled
    row = {
        "type": event.type,
        "mode": EventMode.BATCH if event.mode == "batch" else EventMode.REALTIME,
        "channel": channel,
        "status": EventStatus.PENDING,
        "email": email,
        "mobile_phone": mobile_phone,
        "external_id": event.external_id,
        "origin": event.origin,
        "language": event.language,
        "country": event.country,
        "email_format": event.email_format,
        "registration_token": token,
        "platform": platform,
        "mobile_app_uuid": event.mobile_app_uuid,
        "correlation_id": event.correlation_id,
        "ctx": ctx_json,
        "scheduled_at": scheduled,
        "expires_at": event.expiration,
        "created_at": now,
        "updated_at": now,
        "next_attempt_at": scheduled if scheduled and scheduled > now else now,
        "error_count": 0,
    }
    return _Checked(row, errors)


async def _types_of(session: AsyncSession, names: set[str]) -> dict[str, _TypeRules]:
    rows = await session.execute(
        select(
            EventType.name,
            EventType.json_schema,
            EventType.default_channel,
            EventType.fallback_channel,
            EventType.profile_based,
        ).where(EventType.name.in_(names))
    )
    return {
        name: _TypeRules(json.dumps(schema, sort_keys=True) if schema else None, channel or "email", fallback, based)
        for name, schema, channel, fallback, based in rows
    }


async def _reconcile(session: AsyncSession, checked: list[_Checked], types: dict[str, _TypeRules]) -> None:
    """Each valid event whose externalId names a profile gets it (one query for all); an event of a
    profile-based type that names none is refused."""
    wanted = {c.row["external_id"] for c in checked if not c.errors and c.row.get("external_id")}
    found = await profile_ids_by_external_id(session, wanted) if wanted else {}
    for c in checked:
        if c.errors:
            continue
        external_id = c.row.get("external_id")
        c.row["profile_id"] = found.get(external_id) if external_id else None
        rules = types.get(c.row["type"])
        if rules and rules.profile_based and c.row["profile_id"] is None:
            why = f"no profile has the external id '{external_id}'" if external_id else "it is required"
            c.errors.append(("externalId", f"event type '{c.row['type']}' is profile-based: {why}"))


def request_hash(event: EventIn) -> str:
    # Defaults included: the same request with or without "ctx": {} is the same request.
    canonical = event.model_dump_json(by_alias=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- ingestion ---------------------------------------------------------------------------------------------


async def ingest_event(
    session: AsyncSession,
    event: EventIn,
    *,
    api_key_id: int | None,
    idempotency_key: str | None = None,
    region: str | None = None,
) -> tuple[int, bool]:
    """Store one event. Returns its id and whether it is new (False: an earlier request with the same key)."""
    types = await _types_of(session, {event.type})
    checked = _check_event(event, types, utcnow(), region)
    await _reconcile(session, [checked], types)
    if checked.errors:
        raise invalid(checked.errors)
    row = checked.row | {"api_key_id": api_key_id}
    if idempotency_key is not None:
        digest = request_hash(event)
        existing = await _find_idempotent(session, api_key_id, idempotency_key, digest)
        if existing is not None:
            return existing, False
        row |= {"idempotency_key": idempotency_key, "request_hash": digest}
        try:
            async with session.begin_nested():  # the key's unique index refuses a second: the event goes too
                event_id = await insert_event_rows(session, [row])
        except IntegrityError:
            # Another request with the same key won the race: answer as if we were the second.
            existing = await _find_idempotent(session, api_key_id, idempotency_key, digest)
            if existing is None:
                raise
            return existing, False
    else:
        event_id = await insert_event_rows(session, [row])
    await notify_queue(session)
    return event_id[0], True


async def ingest_many(
    session: AsyncSession,
    events: list[tuple[EventIn, int | None]],
    *,
    region: str | None = None,
    keys: list[str] | None = None,
) -> list[int | ValidationFailed]:
    """Store each valid event (one insert for all); each invalid one gets its own error instead. ``keys``:
    Envoi's own idempotency key for each event (a recycled event names the one it came from)."""
    types = await _types_of(session, {event.type for event, _ in events})
    results: list[int | ValidationFailed] = []
    rows: list[dict[str, Any]] = []
    now = utcnow()  # one receipt time per transaction: rows of a batch share their timestamps
    all_checked = [_check_event(event, types, now, region) for event, _ in events]
    await _reconcile(session, all_checked, types)
    for index, (checked, (_event, api_key_id)) in enumerate(zip(all_checked, events, strict=True)):
        if checked.errors:
            results.append(invalid(checked.errors))
        else:
            results.append(-1)
            rows.append(checked.row | {"api_key_id": api_key_id} | ({"idempotency_key": keys[index]} if keys else {}))
    if rows:
        ids = iter(await insert_event_rows(session, rows))
        results = [next(ids) if result == -1 else result for result in results]
        await notify_queue(session)
    return results


async def ingest_batch(
    session: AsyncSession, items: list[Any], *, api_key_id: int | None, region: str | None = None
) -> list[int]:
    """Store every event or none; a rejected batch lists each bad item's errors by index. ``items`` are raw
    JSON values, or events the caller already parsed."""
    parse_errors: dict[int, list[tuple[str, str]]] = {}
    events: list[EventIn | None]
    if all(isinstance(item, EventIn) for item in items):
        events = list(items)
    else:
        try:
            events = list(_EVENT_LIST.validate_python(items))
        except ValidationError:
            events, parse_errors = _validate_each(items)
    types = await _types_of(session, {e.type for e in events if e is not None})
    problems = dict(parse_errors)
    rows: list[dict[str, Any]] = []
    now = utcnow()
    all_checked = {i: _check_event(e, types, now, region) for i, e in enumerate(events) if e is not None}
    await _reconcile(session, list(all_checked.values()), types)
    for index, checked in all_checked.items():
        if checked.errors:
            problems[index] = checked.errors
        rows.append(checked.row | {"api_key_id": api_key_id})
    if problems:
        raise BatchRejected(
            f"{len(problems)} of {len(items)} events are invalid; none was stored",
            details={"items": [{"index": i, "errors": as_dicts(problems[i])} for i in sorted(problems)]},
        )
    ids = await insert_event_rows(session, rows)
    await notify_queue(session)
    return ids


def _validate_each(items: list[Any]) -> tuple[list[EventIn | None], dict[int, list[tuple[str, str]]]]:
    events: list[EventIn | None] = []
    errors: dict[int, list[tuple[str, str]]] = {}
    for index, item in enumerate(items):
        try:
            events.append(EventIn.model_validate(item))
        except ValidationError as error:
            events.append(None)
            errors[index] = input_problems(error.errors())
    return events, errors


_INSERTED = (
    "type", "mode", "channel", "status", "email", "mobile_phone", "external_id", "origin", "language", "country",
    "email_format", "registration_token", "platform", "mobile_app_uuid", "correlation_id", "ctx", "scheduled_at",
    "expires_at", "api_key_id", "idempotency_key", "request_hash", "created_at", "updated_at", "next_attempt_at",
    "error_count", "profile_id", "delivery_id", "variant",
)  # fmt: skip
_TIMES = frozenset({"scheduled_at", "expires_at", "created_at", "updated_at", "next_attempt_at"})


async def insert_event_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """The hottest write in Envoi: ids chosen up front, and rows handed to the driver's executemany as tuples.
    SQLAlchemy's per-value processing cost more than the database did, and ordered RETURNING would insert
    row by row on SQLite. Values are converted here exactly as the column types would (see UTCDateTime)."""
    ids = await _allocate_ids(session, len(rows))
    sqlite = session.get_bind().dialect.name == "sqlite"
    placeholder = "?" if sqlite else "%s"
    marks = ", ".join([placeholder] * (len(_INSERTED) + 1))
    statement = f"INSERT INTO events (id, {', '.join(_INSERTED)}) VALUES ({marks})"  # noqa: S608 (fixed names)
    times: dict[datetime, str] = {}

    def stored(column: str, value: Any) -> Any:
        if sqlite and column in _TIMES and value is not None:
            if value not in times:  # most rows of a batch share their timestamps
                times[value] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return times[value]
        return int(value) if column in ("mode", "status") else value

    values = [
        (event_id, *(stored(column, row.get(column)) for column in _INSERTED))
        for event_id, row in zip(ids, rows, strict=True)
    ]
    connection = await session.connection()
    await connection.exec_driver_sql(statement, values)
    keyed = [
        {k: row.get(k) for k in ("api_key_id", "request_hash", "created_at")} | {"event_id": i, "key": key}
        for i, row in zip(ids, rows, strict=True)
        if (key := row.get("idempotency_key")) is not None
    ]
    if keyed:
        await session.execute(insert(IdempotencyKey), keyed)
    count_received(rows)
    return ids


async def _allocate_ids(session: AsyncSession, count: int) -> list[int]:
    if session.get_bind().dialect.name == "postgresql":
        result = await session.scalars(
            text("SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, :n)"), {"n": count}
        )
        return list(result)
    # SQLite: our transaction began IMMEDIATE, so it holds the write lock and the ids after max(id) are ours.
    last = await session.scalar(select(func.max(Event.id))) or 0
    return list(range(last + 1, last + 1 + count))


async def _find_idempotent(session: AsyncSession, api_key_id: int | None, key: str, digest: str) -> int | None:
    row = (
        await session.execute(
            select(IdempotencyKey.event_id, IdempotencyKey.request_hash).where(
                IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key
            )
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise Conflict("this Idempotency-Key was already used with a different request body", field="Idempotency-Key")
    return int(row.event_id)
