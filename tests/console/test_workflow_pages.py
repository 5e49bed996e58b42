"""The workflow pages, in the test's process: the list with the templates, a workflow made from the factory
template, its properties, its definition (refused with every problem and its path, nothing saved), the actions
and the error banner of a suspended workflow, a run's steps, and what a viewer may not do."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from sqlalchemy import select

from envoi.access.permissions import BUILT_IN_GROUPS, Permission
from envoi.console.workflow_graph import workflow_graph
from envoi.workflows.models import WorkflowRun
from tests.console.conftest import OPERATORS, InProcess, form_token
from tests.console.test_pages import submit
from tests.workflows.conftest import settle

NEW = "/console/workflows/new"
VIEW, MANAGE = Permission.VIEW_EVENTS, Permission.MANAGE_WORKFLOWS
# A test first: it has no input to test, so it fails, and the workflow is suspended at it.
FAILING = {
    "activities": [
        {"name": "check", "kind": "test", "settings": {"subject": "count"}, "next": {"true": ["end"], "false": []}},
        {"name": "end", "kind": "end"},
    ]
}


async def _create(client: httpx.AsyncClient, name: str, **fields: str) -> str:
    """A workflow made with the form; returns its page's path."""
    made = await submit(client, NEW, NEW, {"name": name, **fields})
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    assert re.fullmatch(r"/console/workflow(s|-templates)/\d+\?done=created(_template)?", location), location
    return location.split("?")[0]


async def _read(in_process: InProcess, path: str) -> dict[str, Any]:
    async with in_process.api() as api:
        answer = await api.get(path.replace("/console/", "/api/v1/"))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _actions(html: str) -> set[str]:
    """The actions a page offers: the last part of every form's address (logout aside)."""
    return {a.rsplit("/", 1)[1] for a in re.findall(r'<form method="post" action="([^"]+)"', html)} - {"logout"}


async def test_the_list_shows_each_workflow_with_its_state_and_the_templates(in_process: InProcess) -> None:
    manager = await in_process.log_in("workflows@example.com")
    failing = await _create(manager, "export", label="Nightly export")
    await submit(manager, failing, f"{failing}/definition", {"definition": json.dumps(FAILING)})
    await submit(manager, failing, f"{failing}/run", {})
    await settle(in_process.runtime)
    viewer = await in_process.log_in("viewer@example.com")

    listed = (await viewer.get("/console/workflows")).text

    assert '<a href="/console/workflows" aria-current="page">Workflows</a>' in listed
    rows = dict(re.findall(r'<tr data-workflow="([^"]+)">(.*?)</tr>', listed, re.S))
    assert set(rows) == {"purge", "recover_leases", "hourly_statistics", "email_deliveries", "export"}
    assert 'status-started">started' in rows["purge"] and "technical" in rows["purge"]
    assert "<time datetime=" in rows["purge"]  # its next run
    assert 'status-error">error' in rows["export"] and "yours" in rows["export"]
    assert "Nightly export" in rows["export"] and "nobody" in rows["export"]
    templates = dict(re.findall(r'<tr data-template="([^"]+)">(.*?)</tr>', listed, re.S))
    assert list(templates) == ["new_workflow"] and "factory" in templates["new_workflow"]
    assert NEW not in listed  # a viewer is offered no creation
    assert (await viewer.get(NEW)).status_code == 403
    assert (await (await in_process.log_in("nobody@example.com")).get("/console/workflows")).status_code == 403


async def test_a_workflow_is_created_from_the_factory_template_stopped(in_process: InProcess) -> None:
    client = await in_process.log_in("workflows@example.com")
    form = (await client.get(NEW)).text
    assert re.search(r'<option value="\d+" selected>New workflow \(new_workflow, factory\)</option>', form)

    page = await _create(client, "nightly-export", label="Nightly export")

    shown = (await client.get(page + "?done=created")).text
    assert "Workflow created. It is stopped" in shown
    assert "<h1>Nightly export" in shown and 'data-state="stopped"' in shown
    assert _actions(shown) == {"start", "run", "delete", "properties", "definition"}
    assert shown.count('<g class="activity"') == 2 and 'data-activity="start" data-kind="scheduler"' in shown
    made = await _read(in_process, page)
    assert made["state"] == "stopped" and made["supervisors"] is None
    assert [a["name"] for a in made["definition"]["activities"]] == ["start", "end"]
    again = await submit(client, NEW, NEW, {"name": "nightly-export"})
    assert again.status_code == 422 and "a workflow named &#39;nightly-export&#39; exists" in again.text
    bad = await submit(client, NEW, NEW, {"name": "Nightly Export"})
    assert bad.status_code == 422 and 'id="name-error">a name is 1 to 100 lowercase letters' in bad.text


async def test_a_template_of_ones_own_is_editable_and_the_factory_one_read_only(in_process: InProcess) -> None:
    client = await in_process.log_in("workflows@example.com")
    mine = await _create(client, "exports", label="Exports", is_template="yes")
    assert mine.startswith("/console/workflow-templates/")

    shown = (await client.get(mine)).text
    assert "workflow template" in shown and "Recent runs" not in shown
    assert _actions(shown) == {"delete", "properties", "definition"}  # a template never runs
    saved = await submit(client, mine, f"{mine}/properties", {"label": "Exports (team)", "supervisors": "viewers",
                                                            "on_error": "suspend", "error_threshold": "1"})  # fmt: skip
    assert saved.status_code == 303 and (await _read(in_process, mine))["supervisors"] == "viewers"
    made = await _create(client, "from-mine", template=mine.rsplit("/", 1)[1])
    assert (await _read(in_process, made))["supervisors"] == "viewers"

    factory = (await client.get("/console/workflows/new")).text
    factory_id = re.search(r'<option value="(\d+)" selected>', factory).group(1)  # type: ignore[union-attr]
    page = (await client.get(f"/console/workflow-templates/{factory_id}")).text
    assert "The factory template does not change" in page and "Save definition" not in page
    assert _actions(page) == {"properties", "definition"}  # forms shown read only, without their buttons
    token = form_token(page, "/console/logout")
    refused = await client.post(f"/console/workflow-templates/{factory_id}/definition",
                                data={"definition": json.dumps(FAILING), "csrf_token": token})  # fmt: skip
    assert refused.status_code == 409 and "the factory template does not change" in refused.text


async def test_properties_are_saved_and_a_wrong_one_is_explained(in_process: InProcess) -> None:
    client = await in_process.log_in("workflows@example.com")
    page = await _create(client, "export")
    properties = {"label": "Nightly export", "supervisors": "workflow_supervisors", "on_error": "ignore",
                  "error_threshold": "3"}  # fmt: skip

    saved = await submit(client, page, f"{page}/properties", properties)

    assert saved.status_code == 303 and saved.headers["location"] == f"{page}?done=saved"
    assert "Properties saved." in (await client.get(saved.headers["location"])).text
    stored = await _read(in_process, page)
    assert (stored["label"], stored["supervisors"], stored["onError"], stored["errorThreshold"]) == (
        "Nightly export", "workflow_supervisors", "ignore", 3,
    )  # fmt: skip
    wrong = await submit(client, page, f"{page}/properties", properties | {"error_threshold": "lots"})
    assert wrong.status_code == 422 and 'id="error_threshold-error">Write a whole number from 0 to 1000' in wrong.text
    assert "Nothing was saved" in wrong.text and 'value="lots"' in wrong.text
    wrong = await submit(client, page, f"{page}/properties", properties | {"label": " ", "supervisors": "viewers"})
    assert wrong.status_code == 422 and 'id="label-error">a label has 1 to 200 characters' in wrong.text
    wrong = await submit(client, page, f"{page}/properties", properties | {"supervisors": "ghosts"})
    assert (
        wrong.status_code == 422 and 'id="supervisors-error">no security group is named &#39;ghosts&#39;' in wrong.text
    )
    stored = await _read(in_process, page)
    assert stored["label"] == "Nightly export" and stored["supervisors"] == "workflow_supervisors"
    nobody = await submit(client, page, f"{page}/properties", properties | {"supervisors": ""})
    assert nobody.status_code == 303 and (await _read(in_process, page))["supervisors"] is None


async def test_a_wrong_definition_is_refused_with_every_problem_and_its_path(in_process: InProcess) -> None:
    client = await in_process.log_in("workflows@example.com")
    page = await _create(client, "export")
    before = (await _read(in_process, page))["definition"]

    broken = await submit(client, page, f"{page}/definition", {"definition": '{"activities": [}'})
    assert broken.status_code == 422
    assert 'id="definition-error">Not valid JSON: Expecting value (line 1, column 17).' in broken.text
    assert "{&#34;activities&#34;: [}</textarea>" in broken.text  # what was typed is kept to be corrected
    wrong = {
        "activities": [
            {"name": "start", "kind": "scheduler", "settings": {"cron": "0 6 * * *"}, "next": ["call"]},
            {"name": "call", "kind": "http_request", "settings": {"url": "ftp://example.com"}, "next": ["nowhere"]},
            {"name": "later", "kind": "teleport"},
        ]
    }
    refused = await submit(client, page, f"{page}/definition", {"definition": json.dumps(wrong)})

    assert refused.status_code == 422 and "The definition was not saved: correct these first." in refused.text
    problems = re.findall(r"<li><code>([^<]+)</code>: ([^<]+)</li>", refused.text)
    paths = [path for path, _message in problems]
    assert "definition.activities[1].settings.url" in paths and "definition.activities[2].kind" in paths
    assert any("nowhere" in message for _path, message in problems)
    assert (await _read(in_process, page))["definition"] == before  # nothing saved

    good = {"activities": [*before["activities"][:1], {"name": "end", "kind": "end", "label": "<i>done</i>"}]}
    good["activities"][0] = good["activities"][0] | {"next": ["end"]}
    saved = await submit(client, page, f"{page}/definition", {"definition": json.dumps(good)})
    assert saved.status_code == 303 and (await _read(in_process, page))["definition"] == good
    shown = (await client.get(saved.headers["location"])).text
    assert "Definition saved." in shown and "&lt;i&gt;done&lt;/i&gt;" in shown and "<i>done</i>" not in shown


async def test_a_suspended_workflow_shows_its_failing_activity_and_is_resumed_restarted_stopped(
    in_process: InProcess,
) -> None:
    client = await in_process.log_in("workflows@example.com")
    page = await _create(client, "export", label="<b>Nightly</b> export")
    await submit(client, page, f"{page}/definition", {"definition": json.dumps(FAILING)})

    ran = await submit(client, page, f"{page}/run", {})
    assert ran.headers["location"] == f"{page}?done=run"
    await settle(in_process.runtime)
    shown = (await client.get(page)).text

    assert "&lt;b&gt;Nightly&lt;/b&gt; export" in shown and "<b>Nightly</b>" not in shown
    banner = re.search(r"<section class=\"error-banner\".*?</section>", shown, re.S).group(0)  # type: ignore[union-attr]
    assert "<strong data-failed-activity>check</strong> (<code>test</code>)" in banner
    assert "its input has no count to test" in banner
    assert {"resume", "restart"} <= _actions(banner)
    assert '<g class="activity failed" data-activity="check"' in shown
    assert _actions(shown) == {"resume", "restart", "stop", "properties", "definition"}
    run_link = re.search(rf'href="({page}/runs/\d+)">run \d+</a>', shown).group(1)  # type: ignore[union-attr]
    run_page = (await client.get(run_link)).text
    assert 'status-suspended">suspended' in run_page
    step = re.search(r'<tr data-activity="check">(.*?)</tr>', run_page, re.S).group(1)  # type: ignore[union-attr]
    assert "<code>test</code>" in step and 'status-failed">failed' in step and "no count to test" in step
    assert (await client.get(f"{page}/runs/999999")).status_code == 404

    token = form_token(shown, "/console/logout")
    refused = await client.post(f"{page}/run", data={"csrf_token": token})  # not offered: it is in error
    assert refused.status_code == 409 and re.search(r'role="alert">Nothing was done: .*resume or restart', refused.text)
    resumed = await submit(client, page, f"{page}/resume", {})
    assert "Resumed" in (await client.get(resumed.headers["location"])).text
    assert (await _read(in_process, page))["state"] == "started"
    restarted = await submit(client, page, f"{page}/restart", {})
    assert "Restarted: a new run started now" in (await client.get(restarted.headers["location"])).text
    stopped = await submit(client, page, f"{page}/stop", {})
    assert "Stopped" in (await client.get(stopped.headers["location"])).text
    assert (await _read(in_process, page))["state"] == "stopped"
    deleted = await submit(client, page, f"{page}/delete", {})
    assert deleted.headers["location"] == "/console/workflows?done=deleted"
    assert (await client.get(page)).status_code == 404


async def test_a_run_whose_definition_no_longer_validates_is_shown_suspended_without_an_activity(
    in_process: InProcess,
) -> None:
    client = await in_process.log_in("workflows@example.com")
    page = await _create(client, "export")
    await submit(client, page, f"{page}/run", {})
    async with in_process.runtime.transaction() as session:  # as if stored before an upgrade changed the rules
        run = await session.scalar(select(WorkflowRun))
        assert run is not None
        run.definition = {"activities": [{"name": "start", "kind": "teleport"}]}
    await settle(in_process.runtime)

    shown = (await client.get(page)).text

    banner = re.search(r"<section class=\"error-banner\".*?</section>", shown, re.S).group(0)  # type: ignore[union-attr]
    assert f"run {run.id}</a> could not go on" in banner.lower() and "no longer valid" in banner
    assert "data-failed-activity" not in banner and "None" not in banner
    assert "could not go on" in shown.split('<table class="runs">')[1]
    assert "<h2>Suspended</h2>" in (await client.get(f"{page}/runs/{run.id}")).text


async def test_a_viewer_sees_no_action_and_every_change_is_refused(in_process: InProcess) -> None:
    manager = await in_process.log_in("workflows@example.com")
    page = await _create(manager, "export", label="Nightly export")
    viewer = await in_process.log_in("viewer@example.com")

    shown = (await viewer.get(page)).text

    assert _actions(shown) == {"properties", "definition"}  # the forms, shown read only
    assert "Read only: changing workflows needs the manage workflows permission." in shown
    assert "Save properties" not in shown and "Save definition" not in shown and "Run now" not in shown
    assert '<fieldset class="plain" disabled>' in shown and " readonly" in shown
    token = form_token(shown, "/console/logout")
    for action, data in [
        ("start", {}),
        ("run", {}),
        ("delete", {}),
        ("properties", {"label": "Mine now", "on_error": "suspend", "error_threshold": "1"}),
        ("definition", {"definition": json.dumps(FAILING)}),
    ]:
        refused = await viewer.post(f"{page}/{action}", data=data | {"csrf_token": token})
        assert refused.status_code == 403 and "manage workflows" in refused.text, action
    stored = await _read(in_process, page)
    assert stored["state"] == "stopped" and stored["label"] == "Nightly export"
    no_token = await manager.post(f"{page}/start", data={})
    assert no_token.status_code == 403 and (await _read(in_process, page))["state"] == "stopped"


def test_the_graph_is_drawn_left_to_right_with_outcomes_and_escaped_names() -> None:
    definition = {
        "activities": [
            {"name": "start", "kind": "scheduler", "settings": {"cron": "0 6 * * *"}, "next": ["call"]},
            {"name": "call", "kind": "http_request", "settings": {"url": "https://x.test"}, "next": ["check"]},
            {"name": "check", "kind": "test", "next": {"true": ["end"], "false": ["warn"]}},
            {"name": "warn", "kind": "http_request", "label": "</svg><script>", "next": ["end"]},
            {"name": "end", "kind": "end"},
        ]
    }

    svg = str(workflow_graph(definition, failed="call", label='"Quoted" & <label>'))

    boxes = dict(re.findall(r'data-activity="(\w+)".*?<rect x="([\d.]+)"', svg))
    assert float(boxes["start"]) < float(boxes["call"]) < float(boxes["check"]) < float(boxes["warn"])
    assert float(boxes["warn"]) < float(boxes["end"])  # the longest path decides the column
    assert svg.count('class="transition"') == 5 and svg.count('marker-end="url(#wf-arrow)"') == 5
    assert re.findall(r'<text class="outcome"[^>]*>(\w+)</text>', svg) == ["true", "false"]  # "done" unlabelled
    assert '<g class="activity failed" data-activity="call"' in svg
    assert "<script>" not in svg and "&lt;/svg&gt;&lt;script&gt;" in svg
    assert 'aria-label="&#34;Quoted&#34; &amp; &lt;label&gt;"' in svg
    assert workflow_graph({"activities": []}) is None and workflow_graph("not a definition") is None


async def test_only_the_groups_granting_the_permission_see_or_change_workflows(in_process: InProcess) -> None:
    manager = await in_process.log_in("workflows@example.com")
    page = await _create(manager, "export")
    template = await _create(manager, "exports", is_template="yes")
    await submit(manager, page, f"{page}/run", {})
    await settle(in_process.runtime)
    run = re.search(rf'href="({page}/runs/\d+)"', (await manager.get(page)).text).group(1)  # type: ignore[union-attr]
    pages = {"/console/workflows": VIEW, NEW: MANAGE, page: VIEW, run: VIEW, template: VIEW}
    actions = [f"{page}/{action}" for action in ("start", "run", "pause", "resume", "restart", "stop", "delete")]
    actions += [f"{page}/properties", f"{page}/definition", f"{template}/properties", f"{template}/delete", NEW]
    grants = {group.name: group.permissions for group in BUILT_IN_GROUPS}
    who = {**{email: grants[group] for email, group in OPERATORS.items()}, "nobody@example.com": frozenset()}
    wrong = []

    for email, permissions in who.items():
        client = await in_process.log_in(email)
        token = form_token((await client.get("/console/")).text, "/console/logout")  # on any page, even a 403
        for path, needed in pages.items():
            got = (await client.get(path)).status_code
            if got != (200 if needed in permissions else 403):
                wrong.append(f"{email} GET {path}: {got}")
        if MANAGE not in permissions:
            for path in actions:
                got = (await client.post(path, data={"csrf_token": token})).status_code
                if got != 403:
                    wrong.append(f"{email} POST {path}: {got}")
    visitor = in_process.client()
    for path in [*pages, *actions]:
        answer = await (visitor.get(path) if path in pages else visitor.post(path))
        if not (answer.status_code == 303 and answer.headers["location"].startswith("/console/login")):
            wrong.append(f"logged out {path}: {answer.status_code}")

    assert not wrong, "\n".join(wrong)
    assert (await _read(in_process, page))["state"] == "stopped"
