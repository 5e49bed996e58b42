"""A workflow's definition: its activities, each with a kind, settings and transitions, checked as a whole.

Stored as JSON::

    {"activities": [
        {"name": "start", "kind": "scheduler", "settings": {"cron": "0 3 * * *"}, "next": ["call"]},
        {"name": "call", "kind": "http_request", "settings": {"url": "https://..."}, "next": ["check"]},
        {"name": "check", "kind": "test", "settings": {...}, "next": {"true": ["done"], "false": []}},
        {"name": "done", "kind": "end"}
    ]}

``next`` is a list (followed when the activity is done) or, for activities with several outcomes (``test``), a
mapping of outcome to list. Activities without a predecessor start the run. The graph has no cycle: a run always
ends. An activity that several transitions lead to runs once for each that is taken, as in Adobe Campaign.
Every problem is listed, each with its path, not only the first.
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
    """The definition, or a ValidationFailed listing every problem with its path
    (``definition.activities[2].settings.url``)."""
    problems: list[tuple[str, str]] = []
    if not isinstance(document, dict) or not isinstance(document.get("activities"), list):
        raise ValidationFailed("a definition is an object with a list of activities", field="definition.activities")
    raw = document["activities"]
    unknown_keys = set(document) - {"activities"}
    if unknown_keys:
        problems.append(("definition", f"unknown keys: {', '.join(sorted(unknown_keys))}"))
    if not raw:
        problems.append(("definition.activities", "a workflow has at least one activity"))
    read: dict[str, _Read] = {}
    for index, item in enumerate(raw):
        where = f"definition.activities[{index}]"
        activity = _read_activity(item, where, problems)
        if activity is None:
            continue
        if activity.name in read:
            problems.append((f"{where}.name", f"{activity.name!r} is used twice; names are unique"))
            continue
        read[activity.name] = activity
    for activity in read.values():
        for outcome, names in activity.transitions.items():
            said = f"{outcome}: " if activity.kind in ACTIVITIES and len(ACTIVITIES[activity.kind].outcomes) > 1 else ""
            for name in names:
                if name not in read:
                    problems.append((f"{activity.where}.next", f"{said}no activity is named {name!r}"))
    problems += _shape_problems(read)  # on the activities that could be read, so one bad activity hides nothing
    if problems:
        raise invalid(problems)
    return Definition(
        {a.name: Step(a.name, a.kind, a.settings, a.transitions) for a in read.values() if a.settings is not None}
    )


@dataclass(frozen=True)
class _Read:
    """An activity as read: its settings are None when they are invalid (the problem is already listed)."""

    where: str
    name: str
    kind: str
    settings: BaseModel | None
    transitions: dict[str, tuple[str, ...]]


def _read_activity(item: Any, where: str, problems: list[tuple[str, str]]) -> _Read | None:
    """The activity, kept as long as it has a usable name: the others can still refer to it, so one problem (a bad
    URL) does not also show as another (no activity of that name)."""
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
    if not isinstance(kind, str) or kind not in ACTIVITIES:
        said = f"unknown activity {kind!r}" if kind is not None else "an activity needs a kind"
        problems.append((f"{where}.kind", f"{said}; known: {', '.join(sorted(ACTIVITIES))}"))
        return _Read(where, name, "", None, _names_only(item.get("next")))
    activity = ACTIVITIES[kind]
    settings: BaseModel | None = None
    try:
        settings = activity.settings_model.model_validate(item.get("settings") or {})
    except ValidationError as error:
        for problem in error.errors():
            path = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")  # pydantic's wording, not the user's
            problems.append((f"{where}.settings{'.' + path if path else ''}", message))
    transitions = _transitions(item.get("next"), activity, f"{where}.next", problems)
    return _Read(where, name, kind, settings, transitions)


def _names_only(raw: Any) -> dict[str, tuple[str, ...]]:
    """The names an activity of an unknown kind leads to, for the checks of the graph."""
    lists = raw.values() if isinstance(raw, dict) else [raw]
    return {"?": tuple(n for names in lists if isinstance(names, list) for n in names if isinstance(n, str))}


def _transitions(
    raw: Any, activity: Activity[Any], where: str, problems: list[tuple[str, str]]
) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    several = len(activity.outcomes) > 1
    if isinstance(raw, list) and several:  # which outcome would a plain list follow? Ask rather than guess
        example = ", ".join(f'"{outcome}": [...]' for outcome in activity.outcomes)
        problems.append((where, f"{activity.kind} has outcomes {', '.join(activity.outcomes)}: next is {{{example}}}"))
        return {}
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
    for names in raw.values():
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            problems.append((where, f"{', '.join(twice)} named twice: it would run twice"))
    return {outcome: tuple(names) for outcome, names in raw.items() if outcome in activity.outcomes}


def _shape_problems(read: dict[str, _Read]) -> list[tuple[str, str]]:
    """One scheduler at most, that nothing leads to; something starts the run; no cycle. Transitions to missing
    activities are left out (already listed)."""
    graph = {name: [to for names in a.transitions.values() for to in names if to in read] for name, a in read.items()}
    problems: list[tuple[str, str]] = []
    schedulers = [a for a in read.values() if a.kind == "scheduler"]
    if len(schedulers) > 1:
        names = ", ".join(a.name for a in schedulers)
        problems.append(("definition.activities", f"one scheduler at most; found {names}"))
    for scheduler in schedulers:
        leading = [name for name, following in graph.items() if scheduler.name in following]
        if leading:
            problems.append(
                (
                    scheduler.where,
                    f"the scheduler starts the workflow: nothing may lead to it ({', '.join(leading)} does)",
                )
            )
    followed = {to for following in graph.values() for to in following}
    if read and not set(read) - followed:
        problems.append(("definition.activities", "every activity follows another: nothing starts the workflow"))
    cycle = _cycle(graph)
    if cycle:
        problems.append(("definition.activities", f"activities lead back to themselves: {' → '.join(cycle)}"))
    return problems


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle of the graph as a path, if there is one (a depth-first search with colours)."""
    colour: dict[str, int] = dict.fromkeys(graph, 0)  # 0 new, 1 on the path, 2 done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        colour[name] = 1
        path.append(name)
        for following in graph[name]:
            if colour[following] == 1:
                return [*path[path.index(following) :], following]
            if colour[following] == 0 and (found := visit(following)):
                return found
        path.pop()
        colour[name] = 2
        return None

    for name in graph:
        if colour[name] == 0 and (found := visit(name)):
            return found
    return None
