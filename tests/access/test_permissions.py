"""Every REST route, for every built-in group (and an operator in no group, and no credentials at all): only the
groups whose permissions the route needs get past its check.

The table below is the specification; a route missing from it fails the test, so a new route must say what it
needs."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.access.permissions import BUILT_IN_GROUPS, Permission
from envoi.access.service import create_api_key
from envoi.app import create_app
from envoi.runtime import Runtime

VIEW, EDIT, PUBLISH = Permission.VIEW_EVENTS, Permission.EDIT_TEMPLATES, Permission.PUBLISH
PUSH, OPERATORS, DELIVERIES = Permission.PUSH_EVENTS, Permission.MANAGE_OPERATORS, Permission.MANAGE_DELIVERIES
WORKFLOWS = Permission.MANAGE_WORKFLOWS
ANYONE = None  # any authenticated caller

NEEDS: dict[tuple[str, str], Permission | None] = {
    ("GET", "/api/v1/event-types"): VIEW,
    ("POST", "/api/v1/event-types"): EDIT,
    ("GET", "/api/v1/event-types/{name}"): VIEW,
    ("PUT", "/api/v1/event-types/{name}"): EDIT,
    ("POST", "/api/v1/events"): PUSH,
    ("GET", "/api/v1/events"): VIEW,
    ("POST", "/api/v1/events/batch"): PUSH,
    ("GET", "/api/v1/events/{event_id}"): VIEW,
    ("POST", "/api/v1/templates"): EDIT,
    ("GET", "/api/v1/templates"): VIEW,
    ("POST", "/api/v1/templates/import-adobe"): EDIT,
    ("GET", "/api/v1/templates/{template_id}"): VIEW,
    ("PUT", "/api/v1/templates/{template_id}"): EDIT,
    ("DELETE", "/api/v1/templates/{template_id}"): EDIT,
    ("GET", "/api/v1/templates/{template_id}/versions"): VIEW,
    ("GET", "/api/v1/templates/{template_id}/versions/{number}"): VIEW,
    ("GET", "/api/v1/templates/{template_id}/versions/{number}/diff/{other}"): VIEW,
    ("POST", "/api/v1/templates/{template_id}/publish"): PUBLISH,
    ("POST", "/api/v1/templates/{template_id}/versions/{number}/republish"): PUBLISH,
    ("GET", "/api/v1/templates/{template_id}/audit"): VIEW,
    ("POST", "/api/v1/templates/{template_id}/unpublish"): PUBLISH,
    ("POST", "/api/v1/templates/{template_id}/pause"): PUBLISH,
    ("POST", "/api/v1/templates/{template_id}/resume"): PUBLISH,
    ("GET", "/api/v1/templates/{template_id}/seeds"): VIEW,
    ("POST", "/api/v1/templates/{template_id}/seeds"): EDIT,
    ("PUT", "/api/v1/templates/{template_id}/seeds/{seed_id}"): EDIT,
    ("DELETE", "/api/v1/templates/{template_id}/seeds/{seed_id}"): EDIT,
    ("POST", "/api/v1/templates/{template_id}/preview"): VIEW,
    ("POST", "/api/v1/templates/{template_id}/proof"): EDIT,
    ("GET", "/api/v1/layouts"): VIEW,
    ("GET", "/api/v1/layouts/{name}"): VIEW,
    ("PUT", "/api/v1/layouts/{name}"): EDIT,
    ("DELETE", "/api/v1/layouts/{name}"): EDIT,
    ("GET", "/api/v1/snippets"): VIEW,
    ("GET", "/api/v1/snippets/{name}"): VIEW,
    ("PUT", "/api/v1/snippets/{name}"): EDIT,
    ("DELETE", "/api/v1/snippets/{name}"): EDIT,
    ("GET", "/api/v1/outbox"): VIEW,
    ("GET", "/api/v1/outbox/{message_id}"): VIEW,
    ("GET", "/api/v1/quarantine"): VIEW,
    ("GET", "/api/v1/bounces"): VIEW,
    ("DELETE", "/api/v1/quarantine/{channel}/{address}"): DELIVERIES,
    ("GET", "/api/v1/providers"): DELIVERIES,
    ("POST", "/api/v1/providers"): DELIVERIES,
    ("GET", "/api/v1/providers/kinds"): DELIVERIES,
    ("GET", "/api/v1/providers/{name}"): DELIVERIES,
    ("PATCH", "/api/v1/providers/{name}"): DELIVERIES,
    ("DELETE", "/api/v1/providers/{name}"): DELIVERIES,
    ("GET", "/api/v1/dkim"): DELIVERIES,
    ("GET", "/api/v1/workflow-activities"): VIEW,
    ("GET", "/api/v1/workflows"): VIEW,
    ("POST", "/api/v1/workflows"): WORKFLOWS,
    ("GET", "/api/v1/workflows/{workflow_id}"): VIEW,
    ("PATCH", "/api/v1/workflows/{workflow_id}"): WORKFLOWS,
    ("DELETE", "/api/v1/workflows/{workflow_id}"): WORKFLOWS,
    ("POST", "/api/v1/workflows/{workflow_id}/{action}"): WORKFLOWS,
    ("POST", "/api/v1/workflows/{workflow_id}/runs"): WORKFLOWS,
    ("GET", "/api/v1/workflows/{workflow_id}/runs"): VIEW,
    ("GET", "/api/v1/workflows/{workflow_id}/runs/{run_id}"): VIEW,
    ("GET", "/api/v1/workflow-templates"): VIEW,
    ("POST", "/api/v1/workflow-templates"): WORKFLOWS,
    ("GET", "/api/v1/workflow-templates/{template_id}"): VIEW,
    ("PATCH", "/api/v1/workflow-templates/{template_id}"): WORKFLOWS,
    ("DELETE", "/api/v1/workflow-templates/{template_id}"): WORKFLOWS,
    ("GET", "/api/v1/profiles"): VIEW,
    ("POST", "/api/v1/profiles"): DELIVERIES,
    ("POST", "/api/v1/profiles/import"): DELIVERIES,
    ("GET", "/api/v1/profiles/{profile_id}"): VIEW,
    ("PATCH", "/api/v1/profiles/{profile_id}"): DELIVERIES,
    ("DELETE", "/api/v1/profiles/{profile_id}"): DELIVERIES,
    ("POST", "/api/v1/profiles/{profile_id}/unsubscribe"): DELIVERIES,
    ("POST", "/api/v1/profiles/{profile_id}/resubscribe"): DELIVERIES,
    ("GET", "/api/v1/audiences"): VIEW,
    ("POST", "/api/v1/audiences"): DELIVERIES,
    ("POST", "/api/v1/audiences/preview"): VIEW,
    ("GET", "/api/v1/audiences/{audience_id}"): VIEW,
    ("GET", "/api/v1/audiences/{audience_id}/count"): VIEW,
    ("PATCH", "/api/v1/audiences/{audience_id}"): DELIVERIES,
    ("DELETE", "/api/v1/audiences/{audience_id}"): DELIVERIES,
    ("GET", "/api/v1/deliveries"): VIEW,
    ("POST", "/api/v1/deliveries"): DELIVERIES,
    ("GET", "/api/v1/deliveries/{delivery_id}"): VIEW,
    ("PATCH", "/api/v1/deliveries/{delivery_id}"): DELIVERIES,
    ("DELETE", "/api/v1/deliveries/{delivery_id}"): DELIVERIES,
    ("POST", "/api/v1/deliveries/{delivery_id}/send"): DELIVERIES,
    ("POST", "/api/v1/deliveries/{delivery_id}/cancel"): DELIVERIES,
    ("POST", "/api/v1/deliveries/{delivery_id}/winner"): DELIVERIES,
    ("GET", "/api/v1/deliveries/{delivery_id}/figures"): VIEW,
    ("GET", "/api/v1/delivery-templates"): VIEW,
    ("POST", "/api/v1/delivery-templates"): DELIVERIES,
    ("GET", "/api/v1/delivery-templates/{template_id}"): VIEW,
    ("PATCH", "/api/v1/delivery-templates/{template_id}"): DELIVERIES,
    ("DELETE", "/api/v1/delivery-templates/{template_id}"): DELIVERIES,
    ("GET", "/api/v1/webhooks"): VIEW,
    ("POST", "/api/v1/webhooks"): DELIVERIES,
    ("GET", "/api/v1/webhooks/{webhook_id}"): VIEW,
    ("POST", "/api/v1/webhooks/{webhook_id}/enable"): DELIVERIES,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): DELIVERIES,
    ("GET", "/api/v1/webhooks/{webhook_id}/attempts"): VIEW,
    ("GET", "/api/v1/reports"): VIEW,
    ("GET", "/api/v1/templates/{template_id}/figures"): VIEW,
    ("GET", "/api/v1/me"): ANYONE,
    ("GET", "/api/v1/notifications"): ANYONE,  # the caller's own
    ("POST", "/api/v1/notifications/read-all"): ANYONE,
    ("POST", "/api/v1/notifications/{notification_id}/read"): ANYONE,
    ("GET", "/api/v1/notifications/stream"): ANYONE,  # 503 here: the app's lifespan (the hub) is not running
    ("GET", "/api/v1/operators"): OPERATORS,
    ("POST", "/api/v1/operators"): OPERATORS,
    ("GET", "/api/v1/operators/{operator_id}"): OPERATORS,
    ("PATCH", "/api/v1/operators/{operator_id}"): OPERATORS,
    ("GET", "/api/v1/groups"): OPERATORS,
    ("POST", "/api/v1/groups"): OPERATORS,
    ("PATCH", "/api/v1/groups/{name}"): OPERATORS,
    ("DELETE", "/api/v1/groups/{name}"): OPERATORS,
    ("GET", "/api/v1/api-keys"): OPERATORS,
    ("POST", "/api/v1/api-keys"): OPERATORS,
    ("DELETE", "/api/v1/api-keys/{key_id}"): OPERATORS,
    ("GET", "/api/v1/audit"): OPERATORS,
    ("GET", "/metrics"): VIEW,  # Prometheus, with a key scoped to view_events
}

# Path parameters that exist nowhere (or change nothing): an allowed caller gets a 404 or 422, never a 403.
PARAMETERS = {"name": "nothing-here", "channel": "email", "address": "nobody@example.com", "key_id": "999999",
              "operator_id": "1"}  # fmt: skip


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMETERS.get(m.group(1), "999999"), path)


def _routes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        if path.startswith("/api/v1") or path == "/metrics"
        for method in ops
    ]


async def _call(client: httpx.AsyncClient, method: str, path: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {"Authorization": ""}
    body = None if method in ("GET", "DELETE") else {}
    response = await client.request(method, _url(path), json=body, headers=headers)
    return response.status_code


async def test_every_route_lets_in_only_the_groups_with_its_permission(runtime: Runtime) -> None:
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    routes = _routes(app.openapi())
    assert sorted(set(routes) - set(NEEDS)) == [], "routes missing from the table: say what they need"
    assert sorted(set(NEEDS) - set(routes)) == [], "the table names routes that no longer exist"

    keys: dict[str, str] = {}
    async with runtime.transaction() as session:
        for group in [*BUILT_IN_GROUPS, None]:
            name = group.name if group else "no-group"
            operator = await create_operator(session, email=f"{name}@example.com", name=name, password="x" * 12)
            if group:
                await add_member(session, group.name, operator.id)
            _key, keys[name] = await create_api_key(session, name, operator_id=operator.id)  # all scopes asked
    granted = {group.name: group.permissions for group in BUILT_IN_GROUPS} | {"no-group": frozenset()}

    wrong = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test") as client:
        for method, path in routes:
            needed = NEEDS[(method, path)]
            if (status := await _call(client, method, path, None)) != 401:
                wrong.append((method, path, "no credentials", status))
            for name, key in keys.items():
                status = await _call(client, method, path, key)
                allowed = needed is None or needed in granted[name]
                if allowed == (status == 403) or status == 401:
                    wrong.append((method, path, name, status))
    assert wrong == []


@pytest.mark.parametrize("scopes", [[Permission.VIEW_EVENTS], [Permission.PUSH_EVENTS]])
async def test_a_service_accounts_key_does_what_its_scopes_say(runtime: Runtime, scopes: list[Permission]) -> None:
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    async with runtime.transaction() as session:
        _key, plaintext = await create_api_key(session, "billing", scopes=scopes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test") as client:
        read = await _call(client, "GET", "/api/v1/events", plaintext)
        pushed = await _call(client, "POST", "/api/v1/events", plaintext)
        assert (read != 403, pushed != 403) == (Permission.VIEW_EVENTS in scopes, Permission.PUSH_EVENTS in scopes)
        refused = await client.get("/api/v1/operators", headers={"Authorization": f"Bearer {plaintext}"})
        assert refused.status_code == 403 and "manage_operators" in refused.json()["error"]["message"]


async def test_an_administrator_cannot_lock_themselves_out(runtime: Runtime) -> None:
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    async with runtime.transaction() as session:
        admin = await create_operator(session, email="root@example.com", name="Root", password="x" * 12)
        await add_member(session, "administrators", admin.id)
        _key, plaintext = await create_api_key(session, "root", operator_id=admin.id)
    headers = {"Authorization": f"Bearer {plaintext}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test") as client:
        leaving = await client.patch(f"/api/v1/operators/{admin.id}", json={"groups": ["viewers"]}, headers=headers)
        assert leaving.status_code == 422 and leaving.json()["error"]["field"] == "groups"
        off = await client.patch(f"/api/v1/operators/{admin.id}", json={"active": False}, headers=headers)
        assert off.status_code == 422 and off.json()["error"]["field"] == "active"
        still = await client.get(f"/api/v1/operators/{admin.id}", headers=headers)
        assert still.json()["groups"] == ["administrators"] and still.json()["active"] is True
