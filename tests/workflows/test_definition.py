"""A workflow's definition is checked as a whole: every problem is listed with its path, the graph has one start,
no cycle and at most one scheduler, and what Envoi ships parses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from envoi.errors import ValidationFailed
from envoi.runtime import Runtime
from envoi.workflows.activities import ACTIVITIES
from envoi.workflows.activities.http_request import HttpRequestSettings
from envoi.workflows.definition import parse_definition
from envoi.workflows.models import Workflow
from tests.workflows.conftest import definition

START = {"name": "start", "kind": "scheduler", "settings": {"cron": "0 6 * * *"}, "next": ["call"]}
CALL = {"name": "call", "kind": "http_request", "settings": {"url": "https://example.com/ping"}, "next": ["end"]}
END = {"name": "end", "kind": "end"}


def problems(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_definition(document)
    error = caught.value
    listed = [(p["field"], p["message"]) for p in error.details["errors"]]
    assert (error.field, error.message) == listed[0]  # the first problem names the field of the error itself
    return listed


def test_a_valid_definition_gives_its_steps_roots_scheduler_and_edges() -> None:
    parsed = parse_definition(definition(START, CALL, END))
    assert list(parsed.steps) == ["start", "call", "end"]
    assert parsed.roots == ["start"]
    assert parsed.scheduler is not None and parsed.scheduler.name == "start"
    assert parsed.edges() == [("start", "done", "call"), ("call", "done", "end")]
    call = parsed.steps["call"]
    assert isinstance(call.settings, HttpRequestSettings)
    assert (call.settings.url, call.settings.method, call.settings.timeout) == ("https://example.com/ping", "GET", 30)
    assert call.activity is ACTIVITIES["http_request"]


def test_an_unknown_kind_lists_the_known_kinds() -> None:
    assert problems(definition({"name": "mail", "kind": "send_mail"})) == [
        (
            "definition.activities[0].kind",
            "unknown activity 'send_mail'; known: email_deliveries, end, hourly_statistics, http_request, purge, "
            "push_events, query, recover_leases, recycle_failed_events, scheduler, test, wait",
        )
    ]
    no_kind = problems(definition({"name": "mail"}))[0][1]
    assert no_kind.startswith("an activity needs a kind; known: email_deliveries, end, ")


def test_bad_settings_are_named_by_their_path() -> None:
    bad = {"name": "call", "kind": "http_request", "settings": {"url": "ftp://example.com", "timeout": 0}}
    assert problems(definition(START, bad, END)) == [
        ("definition.activities[1].settings.url", "an http or https URL with a host"),
        ("definition.activities[1].settings.timeout", "Input should be greater than 0"),
    ]
    assert problems(definition({"name": "w", "kind": "wait", "settings": {"duration": "soon"}})) == [
        (
            "definition.activities[0].settings.duration",
            "a duration is a number and a unit: s, m, h, d or w (for example 15m or 7d)",
        )
    ]
    assert problems(definition({"name": "w", "kind": "wait"})) == [
        ("definition.activities[0].settings.duration", "Field required")
    ]
    assert problems(definition({"name": "q", "kind": "query", "settings": {"colour": "red"}})) == [
        ("definition.activities[0].settings.colour", "Extra inputs are not permitted")
    ]
    assert problems(definition({"name": "q", "kind": "query", "settings": {"channels": ["email", "fax"]}})) == [
        ("definition.activities[0].settings.channels.1", "Input should be 'email', 'sms' or 'push'")
    ]
    assert problems(definition({"name": "q", "kind": "query", "settings": {"statuses": ["sent"]}})) == [
        (
            "definition.activities[0].settings.statuses",
            "unknown statuses sent; statuses are pending, processing, processed, ignored, delivery_failed, "
            "routing_failed, too_old, paused",
        )
    ]
    smuggled = CALL | {"settings": {"url": "https://example.com", "headers": {"Host": "intranet", "X-Id": "1"}}}
    assert problems(definition(START, smuggled, END)) == [
        ("definition.activities[1].settings.headers", "header 'Host' is set by Envoi from the URL and the body")
    ]


def test_a_duration_too_long_to_be_a_date_is_refused_not_a_crash() -> None:
    for duration in ("99999999999w", "9999999w", "3661d"):
        assert problems(definition({"name": "w", "kind": "wait", "settings": {"duration": duration}})) == [
            ("definition.activities[0].settings.duration", "a duration is at most ten years (3660d)")
        ]
    assert parse_definition(definition({"name": "w", "kind": "wait", "settings": {"duration": "520w"}}))


def test_a_bad_activity_is_still_known_by_name_so_its_problem_shows_once() -> None:
    bad = {"name": "call", "kind": "http_request", "settings": {"url": "not a url"}, "next": ["end"]}
    listed = problems(definition(START, bad, END))
    assert [field for field, _ in listed] == ["definition.activities[1].settings.url"]  # not "no activity 'call'"
    unknown = {"name": "call", "kind": "telegram", "next": ["end"]}
    assert [field for field, _ in problems(definition(START, unknown, END))] == ["definition.activities[1].kind"]


def test_a_next_naming_a_missing_activity() -> None:
    assert problems(definition(START, CALL | {"next": ["end", "report"]}, END)) == [
        ("definition.activities[1].next", "no activity is named 'report'")
    ]
    branch = {"name": "check", "kind": "test", "next": {"true": ["end"], "false": ["alert"]}}
    assert problems(definition(START | {"next": ["check"]}, branch, END)) == [
        ("definition.activities[1].next", "false: no activity is named 'alert'")
    ]


def test_a_cycle_is_shown_as_its_path() -> None:
    looping = definition(
        START,
        CALL | {"next": ["pause"]},
        {"name": "pause", "kind": "wait", "settings": {"duration": "1h"}, "next": ["call"]},
    )
    assert problems(looping) == [("definition.activities", "activities lead back to themselves: call → pause → call")]
    itself = definition({"name": "again", "kind": "wait", "settings": {"duration": "1m"}, "next": ["again"]})
    assert problems(itself) == [
        ("definition.activities", "every activity follows another: nothing starts the workflow"),
        ("definition.activities", "activities lead back to themselves: again → again"),
    ]


def test_two_schedulers() -> None:
    other = {"name": "evening", "kind": "scheduler", "settings": {"cron": "0 18 * * *"}, "next": ["call"]}
    assert problems(definition(START, other, CALL, END)) == [
        ("definition.activities", "one scheduler at most; found start, evening")
    ]


def test_a_scheduler_that_something_leads_to() -> None:
    first = {"name": "first", "kind": "wait", "settings": {"duration": "1m"}, "next": ["start"]}
    assert problems(definition(first, START, CALL, END)) == [
        ("definition.activities[1]", "the scheduler starts the workflow: nothing may lead to it (first does)")
    ]


def test_end_has_no_next() -> None:
    assert problems(definition(START | {"next": ["end"]}, END | {"next": ["start"]})) == [
        ("definition.activities[1].next", "end is the last activity of its branch: it has no next"),
        ("definition.activities[0]", "the scheduler starts the workflow: nothing may lead to it (end does)"),
        ("definition.activities", "every activity follows another: nothing starts the workflow"),
        ("definition.activities", "activities lead back to themselves: start → end → start"),
    ]
    assert parse_definition(definition(START | {"next": ["end"]}, END | {"next": []}))
    assert parse_definition(definition(START | {"next": ["end"]}, END | {"next": None}))


def test_a_test_activity_has_only_true_and_false_outcomes() -> None:
    check = {"name": "check", "kind": "test", "next": {"true": ["end"], "maybe": ["end"]}}
    assert problems(definition(START | {"next": ["check"]}, check, END)) == [
        ("definition.activities[1].next", "maybe: outcomes of test are true, false")
    ]


def test_a_test_activity_says_which_branch_a_plain_list_would_be() -> None:
    check = {"name": "check", "kind": "test", "next": ["end"]}  # true? false? both? Envoi asks
    assert problems(definition(START | {"next": ["check"]}, check, END)) == [
        ("definition.activities[1].next", 'test has outcomes true, false: next is {"true": [...], "false": [...]}')
    ]
    only_true = parse_definition(
        definition(START | {"next": ["check"]}, check | {"next": {"true": ["end"]}}, END)
    ).steps["check"]
    assert only_true.transitions == {"true": ("end",)}


def test_an_activity_named_twice_in_one_next_would_run_twice() -> None:
    assert problems(definition(START | {"next": ["call", "call"]}, CALL, END)) == [
        ("definition.activities[0].next", "call named twice: it would run twice")
    ]


def test_duplicate_names() -> None:
    assert problems(definition(START, CALL, END, END)) == [
        ("definition.activities[3].name", "'end' is used twice; names are unique")
    ]


@pytest.mark.parametrize("name", ["", "Start", "1st", "with-dash", "with space", "a" * 51, 7, None])
def test_bad_names(name: Any) -> None:
    assert problems(definition({"name": name, "kind": "end"})) == [
        ("definition.activities[0].name", "a name is 1 to 50 lowercase letters, digits or _, starting with a letter")
    ]


def test_the_shape_of_the_document() -> None:
    for document in (None, [], {}, {"activities": {}}, "activities"):
        with pytest.raises(ValidationFailed) as caught:
            parse_definition(document)
        assert (caught.value.field, caught.value.message) == (
            "definition.activities",
            "a definition is an object with a list of activities",
        )
    assert problems({"activities": []}) == [("definition.activities", "a workflow has at least one activity")]
    assert problems({"activities": [END], "version": 2}) == [("definition", "unknown keys: version")]
    assert problems(definition("end", END | {"colour": "red"})) == [
        ("definition.activities[0]", "an activity is an object with name, kind, settings and next"),
        ("definition.activities[1]", "unknown keys: colour"),
    ]
    assert problems(definition(START | {"next": "call"}, CALL, END)) == [
        ("definition.activities[0].next", "next is a list of activity names, or an object of outcome → list of names"),
    ]


def test_every_problem_is_listed_not_just_the_first() -> None:
    document = definition(
        START | {"next": ["call", "missing"]},
        CALL | {"settings": {"url": "nope"}, "next": ["check"]},
        {"name": "check", "kind": "test", "next": {"true": ["call"], "perhaps": []}},
        {"name": "start", "kind": "end"},
        {"name": "Bad", "kind": "end"},
        {"name": "evening", "kind": "scheduler", "settings": {"cron": "61 * * * *"}},
    )
    assert problems(document) == [
        ("definition.activities[1].settings.url", "an http or https URL with a host"),
        ("definition.activities[2].next", "perhaps: outcomes of test are true, false"),
        ("definition.activities[3].name", "'start' is used twice; names are unique"),
        ("definition.activities[4].name", "a name is 1 to 50 lowercase letters, digits or _, starting with a letter"),
        ("definition.activities[5].settings", "minute field '61': 61 is out of range, values are 0 to 59"),
        ("definition.activities[0].next", "no activity is named 'missing'"),
        ("definition.activities", "one scheduler at most; found start, evening"),
        ("definition.activities", "activities lead back to themselves: call → check → call"),
    ]


async def test_the_api_answers_422_with_every_problem(wf_api: httpx.AsyncClient) -> None:
    document = definition(
        START | {"next": ["call", "missing"]},
        CALL | {"settings": {"url": "https://example.com", "method": "FETCH"}},
        END | {"next": ["start"]},
    )
    response = await wf_api.post("/api/v1/workflows", json={"name": "broken", "definition": document})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["field"] == "definition.activities[1].settings.method"
    assert error["errors"] == [
        {
            "field": "definition.activities[1].settings.method",
            "message": "Input should be 'GET', 'POST', 'PUT', 'PATCH', 'DELETE' or 'HEAD'",
        },
        {"field": "definition.activities[2].next", "message": "end is the last activity of its branch: it has no next"},
        {"field": "definition.activities[0].next", "message": "no activity is named 'missing'"},
        {
            "field": "definition.activities[0]",
            "message": "the scheduler starts the workflow: nothing may lead to it (end does)",
        },
        {"field": "definition.activities", "message": "every activity follows another: nothing starts the workflow"},
        {"field": "definition.activities", "message": "activities lead back to themselves: start → call → end → start"},
    ]
    assert (await wf_api.get("/api/v1/workflows")).json()[-1]["name"] != "broken"

    created = await wf_api.post("/api/v1/workflows", json={"name": "fine"})
    changed = await wf_api.patch(f"/api/v1/workflows/{created.json()['id']}", json={"definition": document})
    assert changed.status_code == 422 and len(changed.json()["error"]["errors"]) == 6
    assert (await wf_api.get(f"/api/v1/workflows/{created.json()['id']}")).json()["definition"] != document


async def test_what_envoi_ships_parses(wf_runtime: Runtime) -> None:
    async with wf_runtime.transaction() as session:
        shipped = {w.name: w for w in await session.scalars(select(Workflow).where(Workflow.factory))}
    assert {(name, w.is_template, w.technical, w.state) for name, w in shipped.items()} == {
        ("new_workflow", True, False, "stopped"),
        ("purge", False, True, "started"),
        ("recover_leases", False, True, "started"),
        ("hourly_statistics", False, True, "started"),
        ("email_deliveries", False, True, "started"),
    }
    kinds = {}
    for name, workflow in shipped.items():
        parsed = parse_definition(workflow.definition)
        assert parsed.roots == ["start"] and parsed.scheduler is not None, name
        kinds[name] = [step.kind for step in parsed.steps.values()]
    assert kinds == {
        "new_workflow": ["scheduler", "end"],
        "purge": ["scheduler", "purge", "end"],
        "recover_leases": ["scheduler", "recover_leases", "end"],
        "hourly_statistics": ["scheduler", "hourly_statistics", "end"],
        "email_deliveries": ["scheduler", "email_deliveries", "end"],
    }
