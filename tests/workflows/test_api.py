"""The workflows REST API: creating from templates, changing, the operator's actions and their refusals, deleting,
runs, the activity kinds, and workflow templates of one's own."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from envoi.access.models import AuditEntry
from envoi.db.base import utcnow
from envoi.runtime import Runtime
from tests.workflows.conftest import Operators, definition, settle

FACTORY_DEFINITION = definition(  # the factory template's: 06:00 UTC every day, then end
    {"name": "start", "kind": "scheduler", "settings": {"cron": "0 6 * * *", "timezone": "UTC"}, "next": ["end"]},
    {"name": "end", "kind": "end"},
)
WAITING = definition(
    {"name": "pause", "kind": "wait", "settings": {"duration": "1h"}, "next": ["end"]},
    {"name": "end", "kind": "end"},
)


async def create(api: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/workflows", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def factory_template(api: httpx.AsyncClient) -> dict[str, Any]:
    templates = (await api.get("/api/v1/workflow-templates")).json()
    return dict(next(t for t in templates if t["name"] == "new_workflow"))


async def act(api: httpx.AsyncClient, workflow_id: int, action: str) -> httpx.Response:
    return await api.post(f"/api/v1/workflows/{workflow_id}/{action}")


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


def next_at(hour: int, minute: int, after: datetime) -> datetime:
    """The next hh:mm UTC strictly after a moment, worked out by hand."""
    today = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return today if today > after else today + timedelta(days=1)


# -- create ------------------------------------------------------------------------------------------------------------


async def test_a_new_workflow_is_a_stopped_copy_of_the_factory_template(wf_api: httpx.AsyncClient) -> None:
    factory = await factory_template(wf_api)
    assert (factory["isTemplate"], factory["factory"], factory["definition"]) == (True, True, FACTORY_DEFINITION)

    workflow = await create(wf_api, "nightly-export")
    assert workflow["template"] == factory["id"]
    assert {k: workflow[k] for k in ("name", "label", "definition", "supervisors", "onError", "errorThreshold")} == {
        "name": "nightly-export",
        "label": "New workflow",
        "definition": FACTORY_DEFINITION,
        "supervisors": None,
        "onError": "suspend",
        "errorThreshold": 1,
    }
    assert (workflow["isTemplate"], workflow["factory"], workflow["technical"]) == (False, False, False)
    assert (workflow["state"], workflow["nextRunAt"], workflow["consecutiveErrors"]) == ("stopped", None, 0)
    assert workflow["createdBy"].startswith("api key ")
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json() == workflow
    assert [w["name"] for w in (await wf_api.get("/api/v1/workflows")).json()] == [
        "purge",
        "recover_leases",
        "hourly_statistics",
        "email_deliveries",
        "nightly-export",
    ]


async def test_create_with_fields_of_its_own(wf_api: httpx.AsyncClient, people: Operators) -> None:
    workflow = await create(
        wf_api,
        "export",
        label="  Nightly export ",
        definition=WAITING,
        supervisors="workflow_supervisors",
        onError="ignore",
        errorThreshold=0,
    )
    assert {k: workflow[k] for k in ("label", "definition", "supervisors", "onError", "errorThreshold")} == {
        "label": "Nightly export",
        "definition": WAITING,
        "supervisors": "workflow_supervisors",
        "onError": "ignore",
        "errorThreshold": 0,
    }


async def test_a_duplicate_name_is_a_conflict(wf_api: httpx.AsyncClient) -> None:
    await create(wf_api, "export")
    assert error(await wf_api.post("/api/v1/workflows", json={"name": "export"}), 409) == {
        "code": "conflict",
        "message": "a workflow named 'export' exists",
        "field": "name",
    }
    # a template may share a workflow's name: they are listed apart
    assert (await wf_api.post("/api/v1/workflow-templates", json={"name": "export"})).status_code == 201


async def test_create_refusals_name_the_field(wf_api: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": "Export Now"}, "name", "a name is 1 to 100 lowercase letters, digits, - or _"),
        ({"name": "x", "supervisors": "nope"}, "supervisors", "no security group is named 'nope'"),
        ({"name": "x", "onError": "retry"}, "onError", "onError: Input should be 'suspend' or 'ignore'"),
        ({"name": "x", "errorThreshold": 1001}, "errorThreshold", "errorThreshold: Input should be less than or equal"),
        ({"name": "x", "label": "   "}, "label", "a label has 1 to 200 characters"),
        ({"name": "x", "template": 99999}, "template", "no workflow template has the id 99999"),
        ({"name": "x", "colour": "red"}, "colour", "colour: Extra inputs are not permitted"),
        (
            {"name": "x", "definition": definition({"name": "go", "kind": "teleport"})},
            "definition.activities[0].kind",
            "unknown activity 'teleport'; known: email_deliveries, end, ",
        ),
    ]
    for body, field, message in cases:
        problem = error(await wf_api.post("/api/v1/workflows", json=body), 422)
        assert (problem["code"], problem["field"]) == ("validation_failed", field), body
        assert problem["message"].startswith(message), problem
    purge = next(w for w in (await wf_api.get("/api/v1/workflows")).json() if w["name"] == "purge")
    problem = error(await wf_api.post("/api/v1/workflows", json={"name": "x", "template": purge["id"]}), 422)
    assert (problem["field"], problem["message"]) == ("template", f"no workflow template has the id {purge['id']}")
    assert len((await wf_api.get("/api/v1/workflows")).json()) == 4  # nothing was created: only the technical ones


async def test_only_workflow_supervisors_change_workflows(wf_api: httpx.AsyncClient, people: Operators) -> None:
    dora = people.headers("dora@example.com")  # delivery supervisor: may look, not change
    assert (await wf_api.get("/api/v1/workflows", headers=dora)).status_code == 200
    assert (await wf_api.post("/api/v1/workflows", json={"name": "x"}, headers=dora)).status_code == 403
    wendy = people.headers("wendy@example.com")
    created = await wf_api.post("/api/v1/workflows", json={"name": "x"}, headers=wendy)
    assert created.status_code == 201
    assert created.json()["createdBy"].startswith("wendy@example.com (api key ")
    assert (await act(wf_api, created.json()["id"], "start")).status_code == 200
    assert (await wf_api.post(f"/api/v1/workflows/{created.json()['id']}/stop", headers=dora)).status_code == 403


# -- change ------------------------------------------------------------------------------------------------------------


async def test_patch_changes_only_what_it_names(wf_api: httpx.AsyncClient, people: Operators) -> None:
    workflow = await create(wf_api, "export", supervisors="workflow_supervisors")
    changed = await wf_api.patch(
        f"/api/v1/workflows/{workflow['id']}", json={"label": "Export", "onError": "ignore", "errorThreshold": 5}
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert (after["label"], after["onError"], after["errorThreshold"]) == ("Export", "ignore", 5)
    assert (after["name"], after["definition"], after["supervisors"]) == (
        "export",
        FACTORY_DEFINITION,
        "workflow_supervisors",
    )
    assert datetime.fromisoformat(after["updatedAt"]) > datetime.fromisoformat(workflow["updatedAt"])

    cleared = await wf_api.patch(f"/api/v1/workflows/{workflow['id']}", json={"supervisors": None})
    assert cleared.json()["supervisors"] is None  # null means nobody is told


async def test_patch_refuses_null_for_what_cannot_be_empty(wf_api: httpx.AsyncClient) -> None:
    workflow = await create(wf_api, "export")
    for field in ("label", "definition", "onError", "errorThreshold"):
        problem = error(await wf_api.patch(f"/api/v1/workflows/{workflow['id']}", json={field: None}), 422)
        assert problem["field"] == field
        assert problem["message"] == f"{field}: cannot be null: leave it out to keep its value"
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json() == workflow
    renamed = error(await wf_api.patch(f"/api/v1/workflows/{workflow['id']}", json={"name": "other"}), 422)
    assert renamed["field"] == "name"


async def test_a_new_schedule_moves_the_next_run_of_a_started_workflow(wf_api: httpx.AsyncClient) -> None:
    workflow = await create(wf_api, "export")
    before = utcnow()
    started = (await act(wf_api, workflow["id"], "start")).json()
    assert datetime.fromisoformat(started["nextRunAt"]) == next_at(6, 0, before)
    evening = definition(
        {"name": "start", "kind": "scheduler", "settings": {"cron": "30 19 * * *"}, "next": ["end"]},
        {"name": "end", "kind": "end"},
    )
    before = utcnow()
    changed = (await wf_api.patch(f"/api/v1/workflows/{workflow['id']}", json={"definition": evening})).json()
    assert datetime.fromisoformat(changed["nextRunAt"]) == next_at(19, 30, before)
    unscheduled = (await wf_api.patch(f"/api/v1/workflows/{workflow['id']}", json={"definition": WAITING})).json()
    assert (unscheduled["state"], unscheduled["nextRunAt"]) == ("started", None)  # runs only when asked


# -- state -------------------------------------------------------------------------------------------------------------


async def test_start_pause_resume_stop_and_the_transitions_refused(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime
) -> None:
    workflow_id = (await create(wf_api, "export"))["id"]

    for action, message in (
        ("pause", "only a started workflow pauses; this one is stopped"),
        ("resume", "only a paused workflow or one in error resumes; this one is stopped"),
    ):
        assert error(await act(wf_api, workflow_id, action), 409) == {
            "code": "conflict",
            "message": message,
            "field": "state",
        }

    before = utcnow()
    started = (await act(wf_api, workflow_id, "start")).json()
    assert started["state"] == "started"
    assert datetime.fromisoformat(started["nextRunAt"]) == next_at(6, 0, before)
    assert error(await act(wf_api, workflow_id, "resume"), 409)["message"] == (
        "only a paused workflow or one in error resumes; this one is started"
    )

    paused = (await act(wf_api, workflow_id, "pause")).json()
    assert paused["state"] == "paused" and paused["pausedAt"] is not None
    assert paused["nextRunAt"] == started["nextRunAt"]  # keeps its place
    assert error(await act(wf_api, workflow_id, "pause"), 409)["message"] == (
        "only a started workflow pauses; this one is paused"
    )
    assert error(await act(wf_api, workflow_id, "start"), 409)["message"] == (
        "the workflow is paused: resume or restart it"
    )
    assert error(await wf_api.post(f"/api/v1/workflows/{workflow_id}/runs"), 409)["message"] == (
        "the workflow is paused: resume or restart it first"
    )

    resumed = (await act(wf_api, workflow_id, "resume")).json()
    assert (resumed["state"], resumed["pausedAt"]) == ("started", None)
    assert resumed["nextRunAt"] == started["nextRunAt"]

    stopped = (await act(wf_api, workflow_id, "stop")).json()
    assert (stopped["state"], stopped["nextRunAt"], stopped["pausedAt"]) == ("stopped", None, None)
    assert (await act(wf_api, workflow_id, "stop")).status_code == 200  # already stopped: nothing to refuse

    unknown = error(await act(wf_api, workflow_id, "explode"), 422)
    assert unknown["field"] == "action"

    async with wf_runtime.transaction() as session:
        trail = list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.object_type == "workflow", AuditEntry.object_id == str(workflow_id))
                .order_by(AuditEntry.id)
            )
        )
    assert trail[:5] == ["created", "started", "paused", "resumed", "stopped"]


async def test_stop_cancels_the_run_in_progress(wf_api: httpx.AsyncClient, wf_runtime: Runtime) -> None:
    workflow_id = (await create(wf_api, "slow", definition=WAITING))["id"]
    run = (await wf_api.post(f"/api/v1/workflows/{workflow_id}/runs")).json()
    await settle(wf_runtime)
    assert error(await wf_api.post(f"/api/v1/workflows/{workflow_id}/runs"), 409)["message"] == (
        "the workflow is already running"
    )
    await act(wf_api, workflow_id, "stop")
    cancelled = (await wf_api.get(f"/api/v1/workflows/{workflow_id}/runs/{run['id']}")).json()
    assert (cancelled["status"], cancelled["endedAt"] is not None) == ("cancelled", True)
    assert (await wf_api.post(f"/api/v1/workflows/{workflow_id}/runs")).status_code == 201


# -- delete ------------------------------------------------------------------------------------------------------------


async def test_delete_refusals(wf_api: httpx.AsyncClient) -> None:
    workflows = {w["name"]: w for w in (await wf_api.get("/api/v1/workflows")).json()}
    for name in ("purge", "recover_leases", "hourly_statistics", "email_deliveries"):
        refused = error(await wf_api.delete(f"/api/v1/workflows/{workflows[name]['id']}"), 409)
        assert refused["message"] == "Envoi's own workflows and templates are not deleted: stop it instead", name
    factory = await factory_template(wf_api)
    refused = error(await wf_api.delete(f"/api/v1/workflow-templates/{factory['id']}"), 409)
    assert refused["message"].startswith("Envoi's own workflows and templates are not deleted")
    assert (await wf_api.get(f"/api/v1/workflow-templates/{factory['id']}")).status_code == 200

    started = await create(wf_api, "export")
    await act(wf_api, started["id"], "start")
    assert error(await wf_api.delete(f"/api/v1/workflows/{started['id']}"), 409) == {
        "code": "conflict",
        "message": "stop the workflow before deleting it; it is started",
        "field": "state",
    }
    await act(wf_api, started["id"], "pause")
    assert error(await wf_api.delete(f"/api/v1/workflows/{started['id']}"), 409)["message"].endswith("it is paused")


async def test_a_stopped_workflow_is_deleted_with_its_runs(wf_api: httpx.AsyncClient, wf_runtime: Runtime) -> None:
    workflow = await create(wf_api, "export")
    run = (await wf_api.post(f"/api/v1/workflows/{workflow['id']}/runs")).json()
    await settle(wf_runtime)
    assert (await wf_api.delete(f"/api/v1/workflows/{workflow['id']}")).status_code == 204
    assert error(await wf_api.get(f"/api/v1/workflows/{workflow['id']}"), 404)["message"] == (
        f"no workflow has the id {workflow['id']}"
    )
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}/runs/{run['id']}")).status_code == 404
    assert (await wf_api.delete(f"/api/v1/workflows/{workflow['id']}")).status_code == 404


# -- runs --------------------------------------------------------------------------------------------------------------


async def test_runs_are_listed_newest_first_and_one_run_shows_its_steps(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime
) -> None:
    workflow_id = (await create(wf_api, "export"))["id"]
    assert (await wf_api.get(f"/api/v1/workflows/{workflow_id}/runs")).json() == []
    ids = []
    for _ in range(2):
        started = await wf_api.post(f"/api/v1/workflows/{workflow_id}/runs")
        assert started.status_code == 201
        opened = started.json()
        assert (opened["status"], opened["trigger"], opened["waiting"], opened["steps"]) == (
            "running",
            "manual",
            ["start"],
            None,
        )
        ids.append(opened["id"])
        await settle(wf_runtime)

    runs = (await wf_api.get(f"/api/v1/workflows/{workflow_id}/runs")).json()
    assert [(r["id"], r["status"], r["trigger"], r["errors"], r["steps"]) for r in runs] == [
        (ids[1], "succeeded", "manual", 0, None),
        (ids[0], "succeeded", "manual", 0, None),
    ]
    detail = (await wf_api.get(f"/api/v1/workflows/{workflow_id}/runs/{ids[0]}")).json()
    assert (detail["status"], detail["waiting"], detail["failedActivity"], detail["error"]) == (
        "succeeded",
        [],
        None,
        None,
    )
    assert datetime.fromisoformat(detail["endedAt"]) >= datetime.fromisoformat(detail["startedAt"])
    assert [(s["activity"], s["kind"], s["status"], s["error"]) for s in detail["steps"]] == [
        ("start", "scheduler", "done", None),
        ("end", "end", "done", None),
    ]
    assert detail["steps"][0]["logs"][0].endswith("(0 6 * * *, UTC)")

    other = (await create(wf_api, "other"))["id"]
    assert error(await wf_api.get(f"/api/v1/workflows/{other}/runs/{ids[0]}"), 404)["message"] == (
        f"workflow {other} has no run {ids[0]}"
    )
    assert (await wf_api.get("/api/v1/workflows/999999/runs")).status_code == 404


# -- activity kinds ----------------------------------------------------------------------------------------------------


async def test_every_activity_kind_is_listed_with_a_settings_schema(wf_api: httpx.AsyncClient) -> None:
    kinds = {k["kind"]: k for k in (await wf_api.get("/api/v1/workflow-activities")).json()}
    assert set(kinds) == {
        "scheduler",
        "query",
        "push_events",
        "http_request",
        "wait",
        "test",
        "recycle_failed_events",
        "purge",
        "recover_leases",
        "hourly_statistics",
        "email_deliveries",
        "end",
    }
    for kind, listed in kinds.items():
        schema = listed["settingsSchema"]
        assert (schema["type"], schema["additionalProperties"]) == ("object", False), kind
        assert isinstance(schema["properties"], dict) and listed["description"], kind
        assert listed["outcomes"] == (["true", "false"] if kind == "test" else ["done"]), kind
    http = kinds["http_request"]["settingsSchema"]
    assert http["required"] == ["url"]
    assert set(http["properties"]) == {"url", "method", "headers", "body", "timeout", "expected_statuses"}
    assert http["properties"]["method"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    assert kinds["wait"]["settingsSchema"]["required"] == ["duration"]
    assert kinds["scheduler"]["settingsSchema"]["required"] == ["cron"]
    assert kinds["push_events"]["settingsSchema"]["required"] == ["event_type"]
    assert set(kinds["query"]["settingsSchema"]["properties"]) == {
        "event_types",
        "statuses",
        "channels",
        "received_within",
        "limit",
    }


# -- templates ---------------------------------------------------------------------------------------------------------


async def test_a_template_of_ones_own_gives_its_settings_to_the_workflows_made_from_it(
    wf_api: httpx.AsyncClient, people: Operators
) -> None:
    factory = await factory_template(wf_api)
    response = await wf_api.post(
        "/api/v1/workflow-templates",
        json={
            "name": "watched",
            "label": "Watched export",
            "definition": WAITING,
            "supervisors": "workflow_supervisors",
            "onError": "ignore",
            "errorThreshold": 3,
        },
    )
    assert response.status_code == 201, response.text
    template = response.json()
    assert (template["isTemplate"], template["factory"], template["template"]) == (True, False, factory["id"])
    assert [t["name"] for t in (await wf_api.get("/api/v1/workflow-templates")).json()] == ["new_workflow", "watched"]
    assert (await wf_api.get(f"/api/v1/workflow-templates/{template['id']}")).json() == template
    assert (await wf_api.get(f"/api/v1/workflows/{template['id']}")).status_code == 404  # a template is not a workflow

    workflow = await create(wf_api, "export", template=template["id"])
    inherited = ("label", "definition", "supervisors", "onError", "errorThreshold")
    assert {k: workflow[k] for k in inherited} == {k: template[k] for k in inherited}
    assert (workflow["template"], workflow["isTemplate"], workflow["state"]) == (template["id"], False, "stopped")
    own_label = await create(wf_api, "export-2", template=template["id"], label="Second export", errorThreshold=1)
    assert (own_label["label"], own_label["errorThreshold"], own_label["onError"]) == ("Second export", 1, "ignore")

    from_template = await wf_api.post(
        "/api/v1/workflow-templates", json={"name": "watched-2", "template": template["id"]}
    )
    assert from_template.json()["definition"] == WAITING and from_template.json()["template"] == template["id"]

    changed = await wf_api.patch(f"/api/v1/workflow-templates/{template['id']}", json={"errorThreshold": 7})
    assert changed.status_code == 200 and changed.json()["errorThreshold"] == 7
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()["errorThreshold"] == 3  # a copy

    assert (await wf_api.delete(f"/api/v1/workflow-templates/{template['id']}")).status_code == 204
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()["template"] is None


async def test_the_factory_template_does_not_change(wf_api: httpx.AsyncClient) -> None:
    factory = await factory_template(wf_api)
    refused = error(await wf_api.patch(f"/api/v1/workflow-templates/{factory['id']}", json={"label": "Mine"}), 409)
    assert refused["message"] == "the factory template does not change: create your own template from it"
    assert await factory_template(wf_api) == factory
    assert error(await wf_api.post("/api/v1/workflow-templates", json={"name": "new_workflow"}), 409)["message"] == (
        "a workflow template named 'new_workflow' exists"
    )


async def test_a_template_never_runs(wf_api: httpx.AsyncClient) -> None:
    factory = await factory_template(wf_api)
    for action in ("runs", "start", "pause", "resume", "stop"):
        response = await wf_api.post(f"/api/v1/workflows/{factory['id']}/{action}")
        assert error(response, 404)["message"] == f"no workflow has the id {factory['id']}", action
    assert error(await wf_api.get("/api/v1/workflow-templates/999999"), 404)["message"] == (
        "no workflow template has the id 999999"
    )
