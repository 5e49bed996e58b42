"""Audiences: saved filters over profiles, and the filter language. A filter is a list of conditions that must
all hold, each ``{"field": F, "op": OP, "value": V}``:

- text fields (email, phone, first_name, last_name, language, external_id): eq, ne, in, not_in, contains,
  starts_with, ends_with, exists, not_exists. contains / starts_with / ends_with ignore case; email ignores
  case everywhere (it is stored lower-case).
- subscribed: eq, ne with true or false. created_at: gt, gte, lt, lte with an ISO 8601 time (UTC if no offset).
- ``attributes.<key>``: every op. A number value compares numbers (JSON numbers, and text holding a decimal
  number, as CSV imports store them); a string value compares text; true / false match booleans (and the
  text "true" / "false").

ne and not_in include the profiles without a value. Who is in an audience is decided when it is used."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Numeric, String, and_, case, func, literal, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement, bindparam

from envoi.addresses import plain_phone
from envoi.campaigns.models import Audience, Delivery, DeliveryState, Profile
from envoi.db.base import utcnow
from envoi.errors import Conflict, NotFound, Problem, ValidationFailed, invalid
from envoi.events.validation import text_problem

TEXT_FIELDS = ("email", "phone", "first_name", "last_name", "language", "external_id")
_TEXT_OPS = ("eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with", "exists", "not_exists")
_ORDER_OPS = ("gt", "gte", "lt", "lte")
OPS = (*_TEXT_OPS, *_ORDER_OPS)
_FIELD_OPS = {name: _TEXT_OPS for name in TEXT_FIELDS} | {"subscribed": ("eq", "ne"), "created_at": _ORDER_OPS}
_NAME = re.compile(r"^[a-z0-9_]{1,100}$")
_KEY = re.compile(r'^[^"\\\x00-\x1f]{1,100}$')  # a JSON path quotes the key: no quote, backslash or control
MAX_CONDITIONS, MAX_LIST = 50, 1000
_ACTIVE = (DeliveryState.DRAFT, DeliveryState.SCHEDULED, DeliveryState.TESTING, DeliveryState.WAITING_FOR_CHOICE)


# -- a JSON attribute, as text and as a number, the same on SQLite and PostgreSQL ---------------------------------


class _AttributeText(FunctionElement[str]):
    """The attribute as text: numbers as written, booleans 'true' / 'false'; NULL when absent or null."""

    type = String()
    inherit_cache = True
    name = "attribute_text"


class _AttributeNumber(FunctionElement[Any]):
    """The attribute as a number: a JSON number, or text that is a decimal number; else NULL."""

    type = Numeric()
    inherit_cache = True
    name = "attribute_number"


def _parts(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> tuple[str, str, str]:
    column, key, path = (compiler.process(clause, **kw) for clause in element.clauses)
    return column, key, path


@compiles(_AttributeText, "postgresql")
def _text_pg(element: _AttributeText, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, _ = _parts(element, compiler, **kw)
    return f"({column} ->> {key})"


@compiles(_AttributeText, "sqlite")
def _text_sqlite(element: _AttributeText, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, path = _parts(element, compiler, **kw)
    return (
        f"(CASE json_type({column}, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
        f"ELSE CAST(json_extract({column}, {path}) AS TEXT) END)"
    )


@compiles(_AttributeNumber, "postgresql")
def _number_pg(element: _AttributeNumber, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, _ = _parts(element, compiler, **kw)
    # CASE, not AND: PostgreSQL does not promise to test the type before it casts
    return (
        f"(CASE jsonb_typeof({column} -> {key}) WHEN 'number' THEN ({column} ->> {key})::numeric "
        f"WHEN 'string' THEN CASE WHEN ({column} ->> {key}) ~ '^-?([0-9]+([.][0-9]*)?|[.][0-9]+)$' "
        f"THEN ({column} ->> {key})::numeric END END)"
    )


@compiles(_AttributeNumber, "sqlite")
def _number_sqlite(element: _AttributeNumber, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, path = _parts(element, compiler, **kw)
    value = f"json_extract({column}, {path})"
    decimal = (  # SQLite has no regular expressions: the same shape of text with GLOB
        f"({value} GLOB '[0-9]*' OR {value} GLOB '-[0-9]*' OR {value} GLOB '.[0-9]*' OR {value} GLOB '-.[0-9]*') "
        f"AND substr({value}, 2) NOT GLOB '*[^0-9.]*' AND {value} NOT GLOB '*.*.*'"
    )
    return (
        f"(CASE WHEN json_type({column}, {path}) IN ('integer', 'real') THEN {value} "
        f"WHEN json_type({column}, {path}) = 'text' AND {decimal} THEN CAST({value} AS REAL) END)"
    )


def _attribute(kind: type[_AttributeText] | type[_AttributeNumber], key: str) -> ColumnElement[Any]:
    path = '$."' + key + '"'
    return kind(Profile.attributes, bindparam(None, key, type_=String()), bindparam(None, path, type_=String()))


# -- checking a filter ------------------------------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _value_problem(kind: str, op: str, value: Any) -> str | None:
    """What is wrong with a condition's value, for a field of ``kind`` (text, subscribed, created_at,
    attribute); None if it fits."""
    if op in ("exists", "not_exists"):
        return None if value is None else f"{op} takes no value"
    if op in ("in", "not_in"):
        fits = (lambda v: isinstance(v, str) or _number(v)) if kind == "attribute" else (lambda v: isinstance(v, str))
        if not isinstance(value, list) or not value or len(value) > MAX_LIST or not all(map(fits, value)):
            what = "strings or numbers" if kind == "attribute" else "strings"
            return f"{op} takes a list of 1 to {MAX_LIST} {what}"
        return None
    if kind == "subscribed":
        return None if isinstance(value, bool) else "expected true or false"
    if kind == "created_at":
        try:
            _time(value if isinstance(value, str) else "")
        except ValueError:
            return "expected an ISO 8601 time such as 2024-05-01T00:00:00Z"
        return None
    if op in ("contains", "starts_with", "ends_with") or kind == "text":
        return None if isinstance(value, str) and value else "expected a non-empty string"
    if op in _ORDER_OPS:
        return None if isinstance(value, str) or _number(value) else "expected a number or a string"
    return None if isinstance(value, str | bool) or _number(value) else "expected a string, a number, true or false"


def _condition_problems(condition: Any, path: str) -> list[Problem]:
    if not isinstance(condition, dict):
        return [(path, 'expected {"field": ..., "op": ..., "value": ...}')]
    problems = [(f"{path}.{key}", "unknown key: a condition has field, op and value") for key in condition]
    problems = [p for p in problems if p[0].rpartition(".")[2] not in ("field", "op", "value")]
    name, op, value = condition.get("field"), condition.get("op"), condition.get("value")
    if not isinstance(name, str):
        return [*problems, (f"{path}.field", "required: a profile field or attributes.<name>")]
    allowed: tuple[str, ...] = OPS
    if name.startswith("attributes."):
        kind = "attribute"
        if not _KEY.match(name.removeprefix("attributes.")):
            problems.append((f"{path}.field", 'an attribute name has 1 to 100 characters, without " or \\'))
    elif name in _FIELD_OPS:
        kind, allowed = ("text" if name in TEXT_FIELDS else name), _FIELD_OPS[name]
    else:
        fields = ", ".join([*_FIELD_OPS, "attributes.<name>"])
        return [*problems, (f"{path}.field", f"unknown field {name!r}: one of {fields}")]
    if op not in allowed:
        return [*problems, (f"{path}.op", f"{name} takes one of {', '.join(allowed)}")]
    if (reason := _value_problem(kind, op, value)) is not None:
        problems.append((f"{path}.value", reason))
    elif problem := text_problem(value, f"{path}.value"):
        problems.append(problem)
    return problems


def check_filters(filters: Any, path: str = "filters") -> list[dict[str, Any]]:
    """The filters if they are valid; raises ValidationFailed naming each problem's path (``filters[2].value``)."""
    if not isinstance(filters, list):
        raise invalid([(path, "expected a list of conditions")])
    if len(filters) > MAX_CONDITIONS:
        raise invalid([(path, f"at most {MAX_CONDITIONS} conditions")])
    problems = [p for i, c in enumerate(filters) for p in _condition_problems(c, f"{path}[{i}]")]
    if problems:
        raise invalid(problems, prefix=True)
    return [{"field": c["field"], "op": c["op"], "value": c.get("value")} for c in filters]


# -- filters to SQL -------------------------------------------------------------------------------------------------


_COMPARISONS: dict[str, Callable[[ColumnElement[Any], Any], Any]] = {
    "eq": lambda expr, value: expr == value,
    "ne": lambda expr, value: or_(expr.is_(None), expr != value),
    "in": lambda expr, value: expr.in_(value),
    "not_in": lambda expr, value: or_(expr.is_(None), expr.not_in(value)),
    "contains": lambda expr, value: expr.icontains(value, autoescape=True),
    "starts_with": lambda expr, value: expr.istartswith(value, autoescape=True),
    "ends_with": lambda expr, value: expr.iendswith(value, autoescape=True),
    "exists": lambda expr, _: expr.is_not(None),
    "not_exists": lambda expr, _: expr.is_(None),
    "gt": lambda expr, value: expr > value,
    "gte": lambda expr, value: expr >= value,
    "lt": lambda expr, value: expr < value,
    "lte": lambda expr, value: expr <= value,
}


def _compare(expr: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    return cast(ColumnElement[bool], _COMPARISONS[op](expr, value))


def _phone(value: str) -> str:
    try:
        return plain_phone(value)  # stored numbers have no spaces: "+33 6 12" finds "+33612"
    except ValueError:
        return value


def _text_value(name: str, op: str, value: Any) -> Any:
    if op in ("contains", "starts_with", "ends_with"):
        return value
    normalize = {"email": str.lower, "phone": _phone}.get(name)
    if normalize is None or value is None:
        return value
    return [normalize(v) for v in value] if isinstance(value, list) else normalize(value)


def _numeric(value: float) -> ColumnElement[Any]:
    # Typed as a number whatever the first value: [120, 7.5] must not bind 7.5 as an integer
    return literal(value, Numeric(asdecimal=False))


def _attribute_condition(key: str, op: str, value: Any) -> ColumnElement[bool]:
    text = _attribute(_AttributeText, key)
    if op in ("in", "not_in"):
        numbers = [v for v in value if _number(v)]
        strings = [v for v in value if isinstance(v, str)]
        number = _attribute(_AttributeNumber, key)
        options = [and_(number.is_not(None), number.in_([_numeric(v) for v in numbers]))] if numbers else []
        options += [text.in_(strings)] if strings else []
        found = or_(*options)  # never NULL for a stored value: not_in must not drop the non-numbers
        return found if op == "in" else or_(text.is_(None), not_(found))
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif _number(value):
        return _compare(_attribute(_AttributeNumber, key), op, _numeric(value))
    return _compare(text, op, value)


def _condition(condition: dict[str, Any]) -> ColumnElement[bool]:
    name, op, value = condition["field"], condition["op"], condition.get("value")
    if name.startswith("attributes."):
        return _attribute_condition(name.removeprefix("attributes."), op, value)
    if name == "subscribed":
        return Profile.subscribed.is_(value if op == "eq" else not value)
    if name == "created_at":
        return _compare(Profile.created_at.expression, op, _time(str(value)))
    return _compare(getattr(Profile, name), op, _text_value(name, op, value))


def audience_condition(filters: list[dict[str, Any]]) -> ColumnElement[bool]:
    """The WHERE clause of the profiles the filters keep (all of them when there is none), for
    ``select(Profile.id).where(audience_condition(filters))``. Raises ValidationFailed on invalid filters."""
    conditions = [_condition(c) for c in check_filters(filters)]
    return and_(true(), *conditions) if conditions else true()


def marketing_reachable() -> ColumnElement[bool]:
    """Who a marketing email can go to: subscribed, with an email."""
    return and_(Profile.subscribed.is_(True), Profile.email.is_not(None))


async def count_audience(session: AsyncSession, filters: list[dict[str, Any]]) -> dict[str, int]:
    """``total`` profiles the filters keep, how many of them are ``subscribed``, and how many a marketing
    email would reach (``reachable``: subscribed, with an email). One query."""
    query = select(
        func.count(),
        func.coalesce(func.sum(case((Profile.subscribed.is_(True), 1), else_=0)), 0),
        func.coalesce(func.sum(case((marketing_reachable(), 1), else_=0)), 0),
    ).where(audience_condition(filters))
    total, subscribed, reachable = (await session.execute(query)).one()
    return {"total": int(total), "subscribed": int(subscribed), "reachable": int(reachable)}


# -- audiences ------------------------------------------------------------------------------------------------------


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    if "name" in changes:
        if not isinstance(changes["name"], str) or not _NAME.match(changes["name"]):
            raise ValidationFailed("a name is 1 to 100 lowercase letters, digits or underscores", field="name")
        checked["name"] = changes["name"]
    if "label" in changes:
        label = changes["label"].strip() if isinstance(changes["label"], str) else ""
        if not label or len(label) > 200 or text_problem(label, "label"):
            raise ValidationFailed("a label has 1 to 200 characters", field="label")
        checked["label"] = label
    if "filters" in changes:
        checked["filters"] = check_filters(changes["filters"])
    return checked


async def _name_free(session: AsyncSession, name: str, audience_id: int | None) -> None:
    owner = await session.scalar(select(Audience.id).where(Audience.name == name))
    if owner is not None and owner != audience_id:
        raise Conflict(f"an audience is already named {name!r}", field="name")


async def create_audience(
    session: AsyncSession, *, name: str, label: str, filters: Any, actor: str | None = None
) -> Audience:
    values = _checked({"name": name, "label": label, "filters": filters})
    await _name_free(session, values["name"], None)
    audience = Audience(**values, created_by=actor)
    session.add(audience)
    await session.flush()
    return audience


async def find_audience(session: AsyncSession, audience_id: int) -> Audience:
    audience = await session.get(Audience, audience_id)
    if audience is None:
        raise NotFound(f"no audience has the id {audience_id}", field="id")
    return audience


async def list_audiences(session: AsyncSession) -> list[Audience]:
    return list((await session.scalars(select(Audience).order_by(Audience.name))).all())


async def update_audience(session: AsyncSession, audience: Audience, changes: dict[str, Any]) -> Audience:
    """``changes``: name, label, filters (each optional)."""
    values = _checked(changes)
    if "name" in values:
        await _name_free(session, values["name"], audience.id)
    for key, value in values.items():
        setattr(audience, key, value)
    audience.updated_at = utcnow()
    await session.flush()
    return audience


async def delete_audience(session: AsyncSession, audience: Audience) -> None:
    """Refused while a delivery that is not sent or cancelled uses it: it would lose its recipients."""
    users = list(
        await session.scalars(
            select(Delivery.name).where(Delivery.audience_id == audience.id, Delivery.state.in_(_ACTIVE)).limit(5)
        )
    )
    if users:
        raise Conflict(f"deliveries use this audience: {', '.join(users)}; change or cancel them first", field="id")
    await session.delete(audience)
    await session.flush()
