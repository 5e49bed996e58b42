"""Every route of the application, called with every credential that is no good: none, a malformed one, a
revoked key, a deactivated operator's key, an expired, logged-out, forged or SOAP-only session. The REST API
answers 401, the console sends the browser to its login form, SOAP answers a Client fault: never a 2xx, never
a 5xx, and nothing is stored.

The routes meant to be public are listed below, each with why; a route in neither list fails the test, so a new
route must say whether it is public. Roles: tests/access/test_permissions.py checks every REST route and /metrics
for every built-in group; here, every console route is checked for every built-in group too (the browser test,
tests/console/test_permission_matrix.py, visits the pages a person sees, not every form's action)."""

from __future__ import annotations

import base64
import re
import secrets
from datetime import timedelta

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Mount

from envoi.access.api import csrf_token
from envoi.access.models import Operator, OperatorSession
from envoi.access.operators import open_session
from envoi.access.permissions import BUILT_IN_GROUPS, Permission
from envoi.access.service import create_api_key
from envoi.db.base import utcnow
from envoi.events.models import Event
from envoi.runtime import Runtime
from tests.security.callers import OPERATORS, PASSWORD, Cast, envelope, make_cast, soap_texts

SIGNED = "the token in its address is signed with the tracking secret; a forged one records nothing"
PUBLIC: dict[tuple[str, str], tuple[str, int]] = {  # route -> (why anyone may call it, its answer to a stranger)
    ("GET", "/"): ("where things are (name, version, links); a browser is sent on to the console", 200),
    ("GET", "/healthz"): ("for load balancers: 'ok' and the version, nothing read from the data", 200),
    ("GET", "/readyz"): ("for load balancers: ready or why not (schema revision, shutdown), no data", 200),
    ("GET", "/openapi.json"): ("the API's description, the same for everyone; it holds no data", 200),
    ("GET", "/docs"): ("the API's description, rendered", 200),
    ("GET", "/docs/oauth2-redirect"): ("a static page of the rendered description", 200),
    ("GET", "/redoc"): ("the API's description, rendered", 200),
    ("GET", "/nl/jsp/schemawsdl.jsp"): ("the WSDL, as Adobe serves it: SOAP toolkits fetch it unauthenticated", 200),
    ("POST", "/nl/jsp/schemawsdl.jsp"): ("the WSDL, as Adobe serves it", 200),
    ("GET", "/t/o/{token}.gif"): (f"the open pixel, loaded by mail clients; {SIGNED} and still gets the pixel", 200),
    ("GET", "/t/c/{token}"): (f"a tracked link, clicked from an email; {SIGNED} and redirects nowhere", 404),
    ("GET", "/u/{token}"): (f"the unsubscribe page, from an email; {SIGNED}", 404),
    ("POST", "/u/{token}"): (f"one-click unsubscribe (RFC 8058), posted by mailbox providers; {SIGNED}", 404),
    ("GET", "/receipts/{name}"): ("a provider's delivery report, proved by the signature Envoi put in its URL", 404),
    ("POST", "/receipts/{name}"): ("a provider's delivery report, proved by the signature Envoi put in its URL", 404),
    ("GET", "/console/login"): ("the login form", 200),
    ("POST", "/console/login"): ("the login form's answer; it needs the form's own CSRF token", 403),
    ("MOUNT", "/console/static"): ("the console's CSS and scripts", 200),
}
SOAP_ROUTE = ("POST", "/nl/jsp/soaprouter.jsp")  # each operation checks its caller: see the SOAP test below
SOAP_PUSHES = [f"nms:{queue}#{method}" for queue in ("rtEvent", "batchEvent") for method in ("PushEvent", "PushEvents")]

VIEW, EDIT, PUBLISH = Permission.VIEW_EVENTS, Permission.EDIT_TEMPLATES, Permission.PUBLISH
DELIVERIES, WORKFLOWS, ADMIN = Permission.MANAGE_DELIVERIES, Permission.MANAGE_WORKFLOWS, Permission.MANAGE_OPERATORS
LOGGED_IN = None  # any operator with a session
CONSOLE: dict[tuple[str, str], Permission | None] = {
    ("POST", "/console/logout"): LOGGED_IN,
    ("GET", "/console/"): VIEW,
    **{("GET", f"/console/{page}"): VIEW for page in (
        "event-types", "event-types/{name}", "templates", "templates/{template_id}",
        "templates/{template_id}/versions", "events", "events/{event_id}", "quarantine", "outbox",
        "outbox/{message_id}", "workflows", "workflows/{workflow_id}", "workflows/{workflow_id}/runs/{run_id}",
        "workflow-templates/{template_id}", "deliveries", "deliveries/{delivery_id}",
        "delivery-templates/{template_id}", "profiles", "profiles/{profile_id}", "audiences",
        "audiences/{audience_id}", "webhooks", "webhooks/{webhook_id}", "reports",
    )},
    **{(method, f"/console/{page}"): EDIT for method, page in (
        ("GET", "event-types/new"), ("POST", "event-types/new"), ("GET", "event-types/{name}/edit"),
        ("POST", "event-types/{name}/edit"), ("GET", "templates/new"), ("POST", "templates/new"),
        ("POST", "templates/{template_id}"), ("POST", "templates/{template_id}/delete"),
    )},
    **{("POST", f"/console/templates/{page}"): PUBLISH for page in (
        "{template_id}/publish", "{template_id}/unpublish", "{template_id}/pause", "{template_id}/resume",
        "{template_id}/versions/{number}/republish",
    )},
    **{(method, f"/console/{page}"): DELIVERIES for method, page in (
        ("POST", "quarantine/release"), ("GET", "deliveries/new"), ("POST", "deliveries/new"),
        ("POST", "deliveries/{delivery_id}/send"), ("POST", "deliveries/{delivery_id}/schedule"),
        ("POST", "deliveries/{delivery_id}/cancel"), ("POST", "deliveries/{delivery_id}/winner"),
        ("POST", "deliveries/{delivery_id}/delete"), ("POST", "deliveries/{delivery_id}/properties"),
        ("POST", "deliveries/{delivery_id}/variants"), ("POST", "delivery-templates/{template_id}/properties"),
        ("POST", "delivery-templates/{template_id}/variants"), ("POST", "delivery-templates/{template_id}/delete"),
        ("GET", "profiles/import"), ("POST", "profiles/import"), ("GET", "audiences/new"),
        ("POST", "audiences/new"), ("POST", "audiences/{audience_id}"), ("POST", "audiences/{audience_id}/delete"),
        ("POST", "webhooks/{webhook_id}/enable"), ("GET", "dkim"),
    )},
    **{(method, f"/console/{page}"): WORKFLOWS for method, page in (
        ("GET", "workflows/new"), ("POST", "workflows/new"), ("POST", "workflows/{workflow_id}/properties"),
        ("POST", "workflows/{workflow_id}/definition"), ("POST", "workflows/{workflow_id}/delete"),
        ("POST", "workflows/{workflow_id}/{action}"), ("POST", "workflow-templates/{template_id}/properties"),
        ("POST", "workflow-templates/{template_id}/definition"), ("POST", "workflow-templates/{template_id}/delete"),
    )},
    **{(method, f"/console/{page}"): ADMIN for method, page in (
        ("GET", "operators"), ("POST", "operators"), ("GET", "operators/{operator_id}"),
        ("POST", "operators/{operator_id}/groups"), ("POST", "operators/{operator_id}/deactivate"),
        ("POST", "operators/{operator_id}/activate"), ("GET", "groups"), ("POST", "groups"),
        ("GET", "groups/{name}"), ("POST", "groups/{name}"), ("POST", "groups/{name}/delete"),
        ("GET", "api-keys"), ("POST", "api-keys"), ("POST", "api-keys/{key_id}/revoke"), ("GET", "audit"),
    )},
}  # fmt: skip
PARAMETERS = {"name": "nothing-here", "token": "AAAAAAAAAAAAAAAAAAAAAA", "action": "start"}


def routes_of(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the application answers, mounts included; HEAD goes with GET."""
    found = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            found.append(("MOUNT", str(route.path)))
        found += [(method, str(route.path)) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def url(path: str) -> str:
    if path == "/console/static":
        return "/console/static/console.css"
    return re.sub(r"\{(\w+)\}", lambda m: PARAMETERS.get(m.group(1), "999999"), path)


async def bad_credentials(cast: Cast) -> dict[str, dict[str, str]]:
    """Each no-good credential as the headers that carry it. The revoked key and the deactivated operator's key
    were used (and so cached) before they stopped being good; the logged-out session too."""
    runtime = cast.runtime
    async with runtime.transaction() as session:
        _key, revoked = await create_api_key(session, "billing")
        deactivated_id = cast.operator_ids["deliveries@example.com"]
        _key, deactivated = await create_api_key(session, "ops", operator_id=deactivated_id)
        viewer = await _operator(session, "viewer@example.com", cast)
        expiring = await open_session(session, viewer, timedelta(hours=1), "console")  # expires below, never used
    logged_out = await cast.session("editor@example.com")
    _status, logon = await cast.soap_logon("admin@example.com")
    (soap_token,) = soap_texts(logon, "pstrSessionToken")
    async with cast.client() as client, cast.admin() as admin:
        for key in (revoked, deactivated):
            assert (await client.get("/api/v1/me", headers=_bearer(key))).status_code == 200
        key_id = next(k["id"] for k in (await admin.get("/api/v1/api-keys")).json() if k["name"] == "billing")
        assert (await admin.delete(f"/api/v1/api-keys/{key_id}")).status_code == 204
        patched = await admin.patch(f"/api/v1/operators/{deactivated_id}", json={"active": False})
        assert patched.status_code == 200, patched.text
        cookie = {"Cookie": f"envoi_session={logged_out}"}
        assert (await client.get("/api/v1/me", headers=cookie)).status_code == 200
        page = (await client.get("/console/", headers=cookie)).text
        assert (await client.post("/console/logout", headers=cookie, data={"csrf_token": _token_in(page)})).is_redirect
    async with runtime.transaction() as session:
        await session.execute(
            update(OperatorSession).where(OperatorSession.operator_id == cast.operator_ids["viewer@example.com"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )  # fmt: skip
    basic = base64.b64encode(f"admin@example.com:{PASSWORD}".encode()).decode()
    return {
        "no credential": {},
        "an empty bearer": {"Authorization": "Bearer "},
        "a malformed bearer": {"Authorization": "Bearer not a key at all"},
        "a Basic login and password": {"Authorization": f"Basic {basic}"},
        "an unknown key shaped like ours": _bearer("envoi_" + secrets.token_urlsafe(32)),
        "a revoked key": _bearer(revoked),
        "a deactivated operator's key": _bearer(deactivated),
        "an expired console session": {"Cookie": f"envoi_session={expiring}"},
        "a logged-out console session": {"Cookie": f"envoi_session={logged_out}"},
        "a forged session cookie": {"Cookie": f"envoi_session={secrets.token_urlsafe(32)}"},
        "a SOAP session as the cookie": {"Cookie": f"envoi_session={soap_token}"},
    }


async def _operator(session: AsyncSession, email: str, cast: Cast) -> Operator:
    operator = await session.get(Operator, cast.operator_ids[email])
    assert operator is not None
    return operator


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _token_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def _call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """The request as its caller would send it, with the CSRF token that goes with the cookie: a refusal must come
    from the credential, not from a missing token."""
    session = (headers.get("Cookie") or "=").partition("=")[2]
    if method == "GET" or method == "MOUNT":
        return await client.get(url(path), headers=headers)
    if path.startswith("/console/"):
        return await client.request(method, url(path), headers=headers, data={"csrf_token": csrf_token(session)})
    return await client.request(method, url(path), headers=headers | {"X-CSRF-Token": csrf_token(session)}, json={})


def _refused(kind: str, answer: httpx.Response) -> bool:
    if kind == "console":
        return answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
    return answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"


async def test_every_route_refuses_every_bad_credential_unless_it_is_public(runtime: Runtime) -> None:
    cast = await make_cast(runtime)
    routes = routes_of(cast.app)
    guarded = [route for route in routes if route not in PUBLIC and route != SOAP_ROUTE]
    assert sorted(set(PUBLIC) - set(routes)) == [], "PUBLIC names routes that no longer exist"
    assert sorted(set(CONSOLE) - set(routes)) == [], "CONSOLE names routes that no longer exist"
    credentials = await bad_credentials(cast)
    # The console takes sessions only: an API key, even a good one, does not open its pages.
    console_credentials = credentials | {"the administrator's own API key": _bearer(cast.admin_key)}

    wrong = []
    async with cast.client() as client:
        for method, path in routes:
            for name, headers in (console_credentials if path.startswith("/console/") else credentials).items():
                answer = await _call(client, method, path, headers)
                if (method, path) in PUBLIC:
                    ok = answer.status_code == PUBLIC[(method, path)][1]
                elif (method, path) == SOAP_ROUTE:
                    ok = answer.status_code == 500 and b"SOAP-ENV:Client" in answer.content  # no SOAPAction
                else:
                    ok = _refused("console" if path.startswith("/console/") else "api", answer)
                if not ok:
                    wrong.append(f"{method} {path} with {name}: {answer.status_code} {answer.text[:120]}")
    assert wrong == [], "\n".join(wrong)
    assert len(guarded) > 200 and len(credentials) == 11  # what the README's figures count


async def test_every_soap_push_refuses_every_bad_credential_and_stores_nothing(runtime: Runtime) -> None:
    cast = await make_cast(runtime)
    headers_of = await bad_credentials(cast)
    _status, logon = await cast.soap_logon("admin@example.com")
    (logged_off,) = soap_texts(logon, "pstrSessionToken")
    logoff = envelope(f"<urn:Logoff><urn:sessiontoken>{logged_off}</urn:sessiontoken></urn:Logoff>", "urn:xtk:session")
    assert (await cast.soap("xtk:session#Logoff", logoff))[0] == 200
    async with runtime.transaction() as session:
        admin = await _operator(session, "admin@example.com", cast)
        expired = await open_session(session, admin, timedelta(hours=1), "soap")  # expires just below
        await session.execute(
            update(OperatorSession).where(OperatorSession.kind == "soap", OperatorSession.revoked_at.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )  # fmt: skip
    console_session = await cast.session("admin@example.com")
    tokens = {  # the sessiontoken element: Adobe's callers put a login/password or a Logon token there
        "a wrong password": "admin@example.com/not the password",
        "a deactivated operator's password": f"deliveries@example.com/{PASSWORD}",
        "a forged session token": secrets.token_urlsafe(32),
        "an expired Logon token": expired,
        "a logged-off Logon token": logged_off,
        "a console session as the token": console_session,
    }
    cases = {name: ("", headers) for name, headers in headers_of.items() if "Cookie" not in headers}
    cases |= {name: (token, {}) for name, token in tokens.items()}

    wrong = []
    for action in SOAP_PUSHES:
        service, method = action.split("#")
        for name, (token, headers) in cases.items():
            status, root = await cast.soap(action, _push(service, method, token), **headers)
            if status != 500 or soap_texts(root, "faultcode") != ["SOAP-ENV:Client"]:
                wrong.append(f"{action} with {name}: {status} {soap_texts(root, 'faultstring')}")
    assert wrong == [], "\n".join(wrong)
    async with runtime.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 0


def _push(service: str, method: str, token: str) -> str:
    tag = service.partition(":")[2]
    event = f'<{tag} type="order_confirmation" email="ada@example.com"><ctx><orderId>A-1</orderId></ctx></{tag}>'
    events = f"<urn:domEventCollection><collection>{event}</collection></urn:domEventCollection>"
    holder = f"<urn:domEvent>{event}</urn:domEvent>" if method == "PushEvent" else events
    operation = f"<urn:{method}><urn:sessiontoken>{token}</urn:sessiontoken>{holder}</urn:{method}>"
    return envelope(operation, f"urn:{service}")


async def test_every_console_route_lets_in_only_the_groups_with_its_permission(runtime: Runtime) -> None:
    cast = await make_cast(runtime)
    console_routes = [route for route in routes_of(cast.app) if route[1].startswith("/console/")]
    unlisted = [route for route in console_routes if route not in CONSOLE and route not in PUBLIC]
    assert unlisted == [], "console routes missing from CONSOLE: say what they need"
    granted = {group.name: group.permissions for group in BUILT_IN_GROUPS}
    logout = ("POST", "/console/logout")  # last: it ends the session the others use

    wrong = []
    async with cast.client() as client:
        for email, group in OPERATORS.items():
            session = await cast.session(email)
            headers = {"Cookie": f"envoi_session={session}"}
            for method, path in [*(route for route in CONSOLE if route != logout), logout]:
                needed = CONSOLE[(method, path)]
                allowed = needed is None or needed in granted.get(group or "", frozenset())
                answer = await _call(client, method, path, headers)
                to_login = answer.is_redirect and answer.headers["location"].startswith("/console/login")
                if (method, path) == logout:
                    to_login = answer.headers.get("location") != "/console/login?logged_out=1"
                if allowed == (answer.status_code == 403) or to_login or answer.status_code >= 500:
                    wrong.append(f"{method} {path} as {email}: {answer.status_code} {answer.text[:120]}")
    assert wrong == [], "\n".join(wrong)
