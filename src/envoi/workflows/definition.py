"""A workflow's definition: its activities, each with a kind, settings and transitions, checked as a whole.

Stored as JSON::

    {"activities": [
        {"name": "start", "kind": "scheduler", "settings": {"cron": "0 3 * * *"}, "next": ["call"]},
        {"name": "call", "kind": "http_request", "settings": {"url": "https://..."}, "next": ["check"]},
        {"name": "check", "kind": "test", "settings": {...}, "next": {"true": ["done"], "false": []}},
        {"name": "done", "kind": "end"}
    ]}

``next`` is a list (followed when the activity is done) or, for activities with several outcomes, a mapping of
outcome to list. Activities without a predecessor start the run. The graph has no cycle: a run always ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from envoi.errors import ValidationFailed, invalid
from envoi.workflows.activities import ACTIVITIES, Activity

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


@dataclass(frozen=True)
class Step:
    name: str
    kind: str
    settings: BaseModel
    transitions: dict[str, tuple[str, ...]]  # outcome -> activities

    @property
    def activity(self) -> Activity[Any]:
        return ACTIVITIES[self.kind]


@dataclass(frozen=True)
class Definition:
    steps: dict[str, Step]

    @property
    def roots(self) -> list[str]:
        followed = {name for step in self.steps.values() for names in step.transitions.values() for name in names}
        return [name for name in self.steps if name not in followed]

    @property
    def scheduler(self) -> Step | None:
        return next((step for step in self.steps.values() if step.kind == "scheduler"), None)

    def edges(self) -> list[tuple[str, str, str]]:
        """(from, outcome, to) for drawing."""
        return [
            (s.name, outcome, to)
            for s in self.steps.values()
            for outcome, names in s.transitions.items()
            for to in names
        ]


def parse_definition(document: Any) -> Definition:
    """The definition, or a ValidationFailed listing every problem with its path (``activities[2].settings.url``)."""
    problems: list[tuple[str, str]] = []
    if not isinstance(document, dict) or not isinstance(document.get("activities"), list):
        raise ValidationFailed("a definition is an object with a list of activities", field="definition.activities")
    raw = document["activities"]
    unknown_keys = set(document) - {"activities"}
    if unknown_keys:
        problems.append(("definition", f"unknown keys: {', '.join(sorted(unknown_keys))}"))
    if not raw:
        problems.append(("definition.activities", "a workflow has at least one activity"))
    steps: dict[str, Step] = {}
    for index, item in enumerate(raw):
        where = f"definition.activities[{index}]"
        step = _parse_step(item, where, problems)
        if step is None:
            continue
        if step.name in steps:
            problems.append((f"{where}.name", f"{step.name!r} is used twice; names are unique"))
            continue
        steps[step.name] = step
    for step in steps.values():
        for outcome, names in step.transitions.items():
            for name in names:
                if name not in steps:
                    problems.append((f"activities.{step.name}.next", f"{outcome}: no activity is named {name!r}"))
    if not problems:
        problems += _shape_problems(Definition(steps))
    if problems:
        raise invalid(problems)
    return Definition(steps)


def _parse_step(item: Any, where: str, problems: list[tuple[str, str]]) -> Step | None:
    if not isinstance(item, dict):
        problems.append((where, "an activity is an object with name, kind, settings and next"))
        return None
    extra = set(item) - {"name", "kind", "settings", "next", "label"}
    if extra:
        problems.append((where, f"unknown keys: {', '.join(sorted(extra))}"))
    name, kind = item.get("name"), item.get("kind")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append((f"{where}.name", "a name is 1 to 50 lowercase letters, digits or _, starting with a letter"))
        return None
    if kind not in ACTIVITIES:
        problems.append((f"{where}.kind", f"unknown activity {kind!r}; known: {', '.join(sorted(ACTIVITIES))}"))
        return None
    activity = ACTIVITIES[kind]
    try:
        settings = activity.settings_model.model_validate(item.get("settings") or {})
    except ValidationError as error:
        for problem in error.errors():
            path = ".".join(str(part) for part in problem["loc"])
            problems.append((f"{where}.settings{'.' + path if path else ''}", problem["msg"]))
        return None
    transitions = _transitions(item.get("next", []), activity, f"{where}.next", problems)
    return Step(name, kind, settings, transitions)


def _transitions(
    raw: Any, activity: Activity[Any], where: str, problems: list[tuple[str, str]]
) -> dict[str, tuple[str, ...]]:
    if isinstance(raw, list):
        raw = {activity.outcomes[0]: raw}
    if not isinstance(raw, dict) or not all(
        isinstance(names, list) and all(isinstance(n, str) for n in names) for names in raw.values()
    ):
        problems.append((where, "next is a list of activity names, or an object of outcome → list of names"))
        return {}
    unknown = set(raw) - set(activity.outcomes)
    if unknown:
        problems.append(
            (where, f"{', '.join(sorted(unknown))}: outcomes of {activity.kind} are {', '.join(activity.outcomes)}")
        )
    if activity.kind == "end" and any(raw.values()):
        problems.append((where, "end is the last activity of its branch: it has no next"))
    return {outcome: tuple(names) for outcome, names in raw.items() if outcome in activity.outcomes}


def _shape_problems(definition: Definition) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    schedulers = [step.name for step in definition.steps.values() if step.kind == "scheduler"]
    if len(schedulers) > 1:
        problems.append(("definition.activities", f"one scheduler at most; found {', '.join(schedulers)}"))
    roots = definition.roots
    if schedulers and schedulers[0] not in roots:
        problems.append((f"activities.{schedulers[0]}", "the scheduler starts the workflow: nothing leads to it"))
    if not roots:
        problems.append(("definition.activities", "every activity follows another: nothing starts the workflow"))
    cycle = _cycle(definition)
    if cycle:
        problems.append(("definition.activities", f"activities lead back to themselves: {' → '.join(cycle)}"))
    return problems


def _cycle(definition: Definition) -> list[str] | None:
    """A cycle of the graph as a path, if there is one (a depth-first search with colours)."""
    colour: dict[str, int] = dict.fromkeys(definition.steps, 0)  # 0 new, 1 on the path, 2 done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        colour[name] = 1
        path.append(name)
        for names in definition.steps[name].transitions.values():
            for following in names:
                if colour[following] == 1:
                    return [*path[path.index(following) :], following]
                if colour[following] == 0 and (found := visit(following)):
                    return found
        path.pop()
        colour[name] = 2
        return None

    for name in definition.steps:
        if colour[name] == 0 and (found := visit(name)):
            return found
    return None
