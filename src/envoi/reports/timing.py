"""Durations and their statistics in SQL, the same on SQLite and PostgreSQL: seconds between two timestamps,
hour buckets, and the average and nearest-rank p95 / p99 of a set of durations (window functions: exact, and
no percentile_cont, which SQLite lacks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Integer, Select, case, cast, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

PERCENTILES = (95, 99)


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds; None when there was nothing to measure."""

    count: int
    avg: float | None
    p95: float | None
    p99: float | None
    max: float | None


def _whole_seconds(moment: Any) -> ColumnElement[Any]:
    return cast(func.strftime("%s", func.substr(moment, 1, 19)), Integer)


def _fraction(moment: Any) -> ColumnElement[Any]:
    return cast(func.substr(moment, 20), Float)


def seconds_between(session: AsyncSession, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds (null when either is), exact to the microsecond."""
    if session.get_bind().dialect.name == "postgresql":
        return extract("epoch", end - start)
    # SQLite keeps UTC as naive text, "YYYY-MM-DD HH:MM:SS.ffffff", and its date functions round to the
    # millisecond (julianday differences were seen 0.7 ms off). So: the difference of the whole seconds (of the
    # first 19 characters, integers), plus that of the fractions as written; each subtracted apart, because an
    # epoch with its fraction is too big a double for microseconds.
    return (_whole_seconds(end) - _whole_seconds(start)) + (_fraction(end) - _fraction(start))


def hour_of(session: AsyncSession, moment: Any) -> ColumnElement[Any]:
    """The UTC hour a timestamp falls in; read it back with ``as_hour``. Use the same expression object in the
    SELECT and the GROUP BY (PostgreSQL compares them with their parameters)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", moment))  # whatever the session's time zone
    return func.strftime("%Y-%m-%d %H:00:00", moment)


def as_hour(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _seconds(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


async def timing_of(session: AsyncSession, durations: Select[Any]) -> Timing:
    """Count, average, nearest-rank p95 and p99, and maximum of the first column of ``durations`` (nulls left
    out): every duration is numbered in order and the one at each percentile's rank is picked."""
    given = durations.subquery()
    value = given.c[0]
    ranked = (
        select(
            value.label("v"),
            func.row_number().over(order_by=value).label("rank"),
            func.count().over().label("n"),
        )
        .where(value.is_not(None))
        .subquery()
    )

    def at(percentile: int) -> ColumnElement[Any]:  # rank ceil(percentile / 100 * n), in integers
        return func.max(case((ranked.c.rank == (ranked.c.n * percentile + 99) // 100, ranked.c.v)))

    row = (
        await session.execute(
            select(func.count(), func.avg(ranked.c.v), *(at(p) for p in PERCENTILES), func.max(ranked.c.v))
        )
    ).one()
    count, avg, p95, p99, highest = row
    return Timing(int(count), _seconds(avg), _seconds(p95), _seconds(p99), _seconds(highest))
