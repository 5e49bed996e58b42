"""Cron expressions for the workflow scheduler: parsing, validation and the next run time, without dependencies.

Five fields (minute hour day-of-month month day-of-week) or a macro (@hourly, @daily, ...), matched against the
wall clock of an IANA time zone. Daylight saving time: a local time the clock skips (spring forward) fires once, at
the first instant after the gap; a local time the clock repeats (fall back) fires once, at its first occurrence.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS: Mapping[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH_NAMES = {name: number for number, name in enumerate(_MONTHS, 1)}
_DAY_NAMES = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_LONGEST_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February counts its leap day
_SEARCH_YEARS = 30  # the rarest possible match (a February 1st on a given weekday) recurs within 12 years
_MINUTE, _HOUR, _DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


class CronError(ValueError):
    """An expression or time zone that cannot be scheduled; the message says why in plain words."""


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: Mapping[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, _MONTH_NAMES),
    _Field("day-of-week", 0, 7, _DAY_NAMES),
)


def _error(spec: _Field, text: str, problem: str) -> CronError:
    return CronError(f"{spec.label} field {text!r}: {problem}")


def _number(spec: _Field, text: str, token: str) -> int:
    if not token:
        raise _error(spec, text, "a value is missing")
    if not (token.isascii() and token.isdigit()):  # str.isdigit alone accepts "²" and other non-ASCII digits
        raise _error(spec, text, f"{token!r} is not a number" + (" or a name" if spec.names else ""))
    return int(token)


def _value(spec: _Field, text: str, token: str) -> int:
    if token.upper() in spec.names:
        return spec.names[token.upper()]
    number = _number(spec, text, token)
    if not spec.low <= number <= spec.high:
        raise _error(spec, text, f"{number} is out of range, values are {spec.low} to {spec.high}")
    return number


def _part(spec: _Field, text: str, part: str) -> range:
    base, slash, step_text = part.partition("/")
    step = _number(spec, text, step_text) if slash else 1
    if step == 0:
        raise _error(spec, text, "a step must be at least 1")
    if base == "*":
        low, high = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(spec, text, first), _value(spec, text, last)
        if low > high:
            raise _error(spec, text, f"the range {base} runs backwards")
    else:
        low = _value(spec, text, base)
        high = spec.high if slash else low  # "a/n" runs from a to the end of the field
    return range(low, high + 1, step)


def _parse_field(spec: _Field, text: str) -> tuple[int, ...]:
    values = {value for part in text.split(",") for value in _part(spec, text, part)}
    if spec.label == "day-of-week":
        values = {value % 7 for value in values}  # 7 is Sunday too
    return tuple(sorted(values))


def _split(expression: str) -> list[str]:
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronError(f"unknown macro {text!r}: use one of {', '.join(MACROS)}")
        text = MACROS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)} in {expression!r}"
        )
    return fields


def _check_matches(fields: Sequence[str], values: Sequence[tuple[int, ...]]) -> None:
    # only a day-of-month alone can miss: a weekday recurs in every month, and a "*..." day-of-month holds the 1st
    days, months = values[2], values[3]
    if fields[4].startswith("*") and not any(day <= _LONGEST_MONTH[month] for month in months for day in days):
        raise CronError(f"never matches: day-of-month {fields[2]!r} never falls in month {fields[3]!r}")


def _at_least(values: Sequence[int], value: int) -> int | None:
    index = bisect_left(values, value)
    return values[index] if index < len(values) else None


def _midnight(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day)


@dataclass(frozen=True)
class Cron:
    """A validated cron expression in a time zone; ``next_after`` gives its run times."""

    expression: str
    timezone: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _values: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    _either_day: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = _split(self.expression)
        values = tuple(_parse_field(spec, text) for spec, text in zip(_FIELDS, fields, strict=True))
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise CronError(f"unknown time zone {self.timezone!r}") from None
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_values", values)
        # Vixie cron's rule: a day field starting with "*" (even "*/2") is unrestricted, and only two restricted
        # day fields match a day when either does
        object.__setattr__(self, "_either_day", not fields[2].startswith("*") and not fields[4].startswith("*"))
        _check_matches(fields, values)

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Cron:
        return cls(expression, timezone)

    def next_after(self, moment: datetime) -> datetime:
        """The first matching minute strictly after ``moment`` (timezone-aware), as a UTC datetime."""
        if moment.utcoffset() is None:
            raise ValueError("moment must be timezone-aware")
        local = moment.astimezone(self._zone).replace(tzinfo=None, second=0, microsecond=0, fold=0)
        wall = local + _MINUTE
        while (instant := self._instant(wall := self._next_wall(wall))) <= moment:
            wall += _MINUTE  # the first occurrence of a repeated time already passed before moment
        return instant

    def _day_matches(self, day: datetime) -> bool:
        _, _, days, _, weekdays = self._values
        in_month, in_week = day.day in days, day.isoweekday() % 7 in weekdays
        return (in_month or in_week) if self._either_day else (in_month and in_week)

    def _next_wall(self, wall: datetime) -> datetime:
        minutes, hours, _, months, _ = self._values
        limit = wall.year + _SEARCH_YEARS
        while wall.year <= limit:
            if wall.month not in months:
                month = _at_least(months, wall.month)
                wall = datetime(wall.year, month, 1) if month is not None else datetime(wall.year + 1, months[0], 1)
            elif not self._day_matches(wall) or (hour := _at_least(hours, wall.hour)) is None:
                wall = _midnight(wall) + _DAY
            elif hour != wall.hour:
                wall = wall.replace(hour=hour, minute=0)
            elif (minute := _at_least(minutes, wall.minute)) is None:
                wall = wall.replace(minute=0) + _HOUR
            else:
                return wall.replace(minute=minute)
        raise CronError(f"{self.expression!r} has no match within {_SEARCH_YEARS} years")

    def _instant(self, wall: datetime) -> datetime:
        instant = wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)
        if instant.astimezone(self._zone).replace(tzinfo=None) == wall:
            return instant  # fold=0 picks the first occurrence of a repeated time
        return self._gap_end(wall)

    def _gap_end(self, wall: datetime) -> datetime:
        # the clock skipped this time: find the second it jumped past it, between its two possible readings
        low, high = sorted(int(wall.replace(tzinfo=self._zone, fold=fold).timestamp()) for fold in (0, 1))
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self._zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)
