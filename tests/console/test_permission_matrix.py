"""Every console page for every built-in group, an operator in no group, and a visitor who is not logged in,
against ``envoi serve`` over HTTP: only those whose groups grant the page's permission get it."""

from __future__ import annotations

import time

import httpx

from envoi.access.permissions import BUILT_IN_GROUPS, Permission
from tests.console.conftest import OPERATORS, Server, form_token, http_log_in

VIEW, EDIT, PUBLISH = Permission.VIEW_EVENTS, Permission.EDIT_TEMPLATES, Permission.PUBLISH
DELIVERIES, ADMIN = Permission.MANAGE_DELIVERIES, Permission.MANAGE_OPERATORS
PAGES = {
    "/console/": VIEW,
    "/console/event-types": VIEW,
    "/console/event-types/order_confirmation": VIEW,
    "/console/event-types/new": EDIT,
    "/console/event-types/order_confirmation/edit": EDIT,
    "/console/templates": VIEW,
    "/console/templates/new": EDIT,
    "/console/templates/1": VIEW,
    "/console/templates/1/versions?from=1&to=1": VIEW,
    "/console/events": VIEW,
    "/console/events/1": VIEW,
    "/console/quarantine": VIEW,
    "/console/outbox": VIEW,
    "/console/outbox/1": VIEW,
    "/console/deliveries": VIEW,
    "/console/deliveries/new": DELIVERIES,
    "/console/delivery-templates/1": VIEW,
    "/console/profiles": VIEW,
    "/console/profiles/import": DELIVERIES,
    "/console/audiences": VIEW,
    "/console/audiences/new": DELIVERIES,
    "/console/webhooks": VIEW,
    "/console/dkim": DELIVERIES,
    "/console/reports": VIEW,
    "/console/operators": ADMIN,
    "/console/operators/1": ADMIN,
    "/console/groups": ADMIN,
    "/console/groups/viewers": ADMIN,
    "/console/api-keys": ADMIN,
    "/console/audit": ADMIN,
}
# Changes, tried (with a valid CSRF token) only by those who may not make them: each must be refused.
ACTIONS = {
    "/console/event-types/new": EDIT,
    "/console/templates/1": EDIT,
    "/console/templates/1/publish": PUBLISH,
    "/console/templates/1/pause": PUBLISH,
    "/console/templates/1/versions/1/republish": PUBLISH,
    "/console/quarantine/release": DELIVERIES,
    "/console/deliveries/new": DELIVERIES,
    "/console/delivery-templates/2/properties": DELIVERIES,
    "/console/profiles/import": DELIVERIES,
    "/console/audiences/new": DELIVERIES,
    "/console/webhooks/1/enable": DELIVERIES,
    "/console/operators": ADMIN,
    "/console/operators/1/deactivate": ADMIN,
    "/console/groups": ADMIN,
    "/console/api-keys": ADMIN,
}
GRANTS = {group.name: group.permissions for group in BUILT_IN_GROUPS}
WHO = {**{email: GRANTS[group] for email, group in OPERATORS.items()}, "nobody@example.com": frozenset()}


def _wait_for_a_sent_email(server: Server) -> None:
    with server.api() as api:
        assert (
            api.post(
                "/api/v1/events",
                json={
                    "type": "password_reset",
                    "email": "ann@example.com",
                    "ctx": {"resetUrl": "https://shop.example.com/r"},
                },
            ).status_code
            == 202
        )
        deadline = time.monotonic() + 20
        while not api.get("/api/v1/outbox").json():
            assert time.monotonic() < deadline, "the event was never sent"
            time.sleep(0.1)


def test_only_the_groups_granting_a_pages_permission_reach_it(server: Server) -> None:
    _wait_for_a_sent_email(server)
    assert set(GRANTS) == set(OPERATORS.values())  # every built-in group has an operator here
    seen: dict[tuple[str, str], int] = {}
    expected: dict[tuple[str, str], int] = {}
    for email, permissions in WHO.items():
        client = http_log_in(server, email)
        token = form_token(client.get("/console/").text)  # the logout form, on any page, even a 403 one
        for path, needed in PAGES.items():
            seen[(email, path)] = client.get(path).status_code
            expected[(email, path)] = 200 if needed in permissions else 403
        for path, needed in ACTIONS.items():
            if needed not in permissions:
                seen[(email, "POST " + path)] = client.post(path, data={"csrf_token": token}).status_code
                expected[(email, "POST " + path)] = 403
        client.close()
    with httpx.Client(base_url=server.url, timeout=10) as visitor:
        for path in [*PAGES, *(f"POST {path}" for path in ACTIONS)]:
            method, _, target = path.rpartition(" ")
            answer = visitor.request(method or "GET", target)
            to_login = answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
            seen[("logged out", path)] = 303 if to_login else answer.status_code
            expected[("logged out", path)] = 303

    wrong = {key: (seen[key], wanted) for key, wanted in expected.items() if seen[key] != wanted}
    assert not wrong, "\n".join(f"{who} {path}: got {got}, wanted {want}" for (who, path), (got, want) in wrong.items())
