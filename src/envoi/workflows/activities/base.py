"""What every activity is: a kind, a settings model, its outcomes, and ``run``.

An activity takes its settings, the input its predecessor produced (``None`` for the first) and the run's
context; it returns ``Done`` (with an output for the next activities, a count for the run's record, the outcome
to follow, and a time before which the next activities must not start) or raises ``ActivityFailed``. It runs
inside the transaction that records its step, so what it writes to the database and the record of it commit
together; anything else it does (an HTTP call) may be repeated if the process dies before that commit.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.settings import Settings

S = TypeVar("S", bound=BaseModel)


class ActivitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActivityFailed(Exception):
    """The activity could not do its job; ``reason`` is shown to operators and in the supervisors' notice."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RunContext:
    session: AsyncSession
    settings: Settings
    workflow_id: int
    workflow_name: str
    run_id: int
    now: datetime
    logs: list[str] = field(default_factory=list)

    def log(self, line: str) -> None:
        if len(self.logs) < 100:  # a run's record stays readable
            self.logs.append(line[:1000])


@dataclass(frozen=True)
class Done:
    output: dict[str, Any] | None = None  # the next activities' input
    count: int | None = None
    outcome: str = "done"
    not_before: datetime | None = None  # the next activities wait until then


class Activity(ABC, Generic[S]):
    kind: ClassVar[str]
    settings_model: type[S]
    outcomes: ClassVar[tuple[str, ...]] = ("done",)
    description: ClassVar[str] = ""

    @abstractmethod
    async def run(self, settings: S, given: dict[str, Any] | None, context: RunContext) -> Done: ...


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST = timedelta(days=3660)  # beyond ten years a wait or an age is a typo, and far beyond, not a date at all


def parse_duration(value: str) -> timedelta:
    """ "90s", "15m", "2h", "7d", "1w" as a timedelta, up to ten years."""
    found = _DURATION.match(value)
    if not found:
        raise ValueError("a duration is a number and a unit: s, m, h, d or w (for example 15m or 7d)")
    seconds = float(found[1]) * _UNITS[found[2]]
    if seconds > _LONGEST.total_seconds():
        raise ValueError("a duration is at most ten years (3660d)")
    return timedelta(seconds=seconds)


def _checked_duration(value: str) -> str:
    parse_duration(value)
    return value.strip()


Duration = Annotated[str, AfterValidator(_checked_duration)]
