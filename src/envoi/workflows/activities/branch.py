"""The ``test`` activity: follows ``true`` or ``false`` by comparing a number of its input with a value."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Literal

from envoi.workflows.activities.base import Activity, ActivityFailed, ActivitySettings, Done, RunContext

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


class BranchSettings(ActivitySettings):
    subject: Literal["count", "status"] = "count"  # the input's count (rows, events) or HTTP status
    operator: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    value: float = 0


class BranchActivity(Activity[BranchSettings]):
    kind = "test"
    settings_model = BranchSettings
    outcomes = ("true", "false")
    description = "Branches on its input: a count (of a query) or a status (of an HTTP request) against a value."

    async def run(self, settings: BranchSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        found = (given or {}).get(settings.subject)
        if not isinstance(found, int | float):
            raise ActivityFailed(f"its input has no {settings.subject} to test (is it after the right activity?)")
        holds = _OPERATORS[settings.operator](found, settings.value)
        context.log(f"{settings.subject} {found} {settings.operator} {settings.value:g}: {str(holds).lower()}")
        return Done(output=given, count=int(found), outcome="true" if holds else "false")
