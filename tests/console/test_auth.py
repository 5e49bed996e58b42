"""Console sessions: the login form and its CSRF token, the throttle on failed logins, the session cookie,
rotation at login, logout, expiry, and the CSRF token every change needs."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from envoi.access.models import OperatorSession
from envoi.db.base import utcnow
from tests.console.conftest import PASSWORD, InProcess, form_token, page_token

WRONG = "not the password at all"


def _cookie(response: httpx.Response, name: str) -> str:
    """The Set-Cookie header of ``name``."""
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, response.headers
    return found[0]


async def _post_login(client: httpx.AsyncClient, email: str, password: str, **extra: str) -> httpx.Response:
    token = form_token((await client.get("/console/login")).text)
    return await client.post("/console/login", data={"email": email, "password": password, "csrf_token": token} | extra)


async def test_logging_in_sets_a_strict_httponly_session_cookie_and_lands_on_home(in_process: InProcess) -> None:
    client = in_process.client()
    assert (await client.get("/", headers={"Accept": "text/html"})).headers["location"] == "/console/"
    assert (await client.get("/", headers={"Accept": "application/json"})).json()["console"] == "/console/"
    assert (await client.get("/console/")).headers["location"] == "/console/login?next=%2Fconsole%2F"
    form = await client.get("/console/login")
    assert form.status_code == 200 and 'name="email"' in form.text and 'name="password"' in form.text
    assert "httponly" in _cookie(form, "envoi_login_csrf").lower()

    answer = await _post_login(client, "Admin@Example.com", PASSWORD)

    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    cookie = _cookie(answer, "envoi_session").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie and "max-age=28800" in cookie
    assert "secure" not in cookie  # plain http here; https or the setting adds it
    home = await client.get("/console/")
    assert home.status_code == 200 and "Events received per minute" in home.text and "Admin" in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]


async def test_after_login_the_browser_goes_back_to_the_page_it_asked_for_never_to_another_site(
    in_process: InProcess,
) -> None:
    client = in_process.client()
    asked = await client.get("/console/events?status=pending")
    assert asked.status_code == 303
    assert asked.headers["location"] == "/console/login?next=%2Fconsole%2Fevents%3Fstatus%3Dpending"
    assert 'value="/console/events?status=pending"' in (await client.get(asked.headers["location"])).text

    back = await _post_login(client, "viewer@example.com", PASSWORD, next="/console/events?status=pending")
    assert back.headers["location"] == "/console/events?status=pending"
    for elsewhere in ("https://evil.example/", "//evil.example/console/", "/console/\\evil"):
        away = await _post_login(in_process.client(), "viewer@example.com", PASSWORD, next=elsewhere)
        assert away.headers["location"] == "/console/"


async def test_unknown_login_and_wrong_password_get_the_same_answer(in_process: InProcess) -> None:
    unknown = await _post_login(in_process.client(), "ghost@example.com", PASSWORD)
    wrong = await _post_login(in_process.client(), "admin@example.com", WRONG)

    for answer in (unknown, wrong):
        assert answer.status_code == 401
        assert "Invalid login or password" in answer.text
        assert not [h for h in answer.headers.get_list("set-cookie") if h.startswith("envoi_session=")]


async def test_a_login_form_without_its_csrf_token_is_refused(in_process: InProcess) -> None:
    client = in_process.client()
    await client.get("/console/login")
    for token in ("", "another-token"):
        answer = await client.post("/console/login", data={"email": "admin@example.com", "password": PASSWORD,
                                                           "csrf_token": token})  # fmt: skip
        assert answer.status_code == 403 and "expired" in answer.text
        assert "envoi_session" not in client.cookies


async def test_failed_logins_are_throttled_per_login_and_a_success_forgives_them(in_process: InProcess) -> None:
    client = in_process.client()
    for _ in range(4):
        assert (await _post_login(client, "editor@example.com", WRONG)).status_code == 401
    assert (await _post_login(in_process.client(), "editor@example.com", PASSWORD)).status_code == 303
    for _ in range(5):
        assert (await _post_login(client, "editor@example.com", WRONG)).status_code == 401

    throttled = await _post_login(client, "editor@example.com", PASSWORD)  # the right password, too late

    assert throttled.status_code == 429
    assert "Too many failed logins; try again in 15 minutes." in throttled.text
    assert (await _post_login(in_process.client(), "viewer@example.com", PASSWORD)).status_code == 303


async def test_failed_logins_are_throttled_per_client_address(in_process: InProcess) -> None:
    guesser = in_process.client(address="10.0.0.1")
    for attempt in range(20):  # 4 per login: under the per-login limit every time
        assert (await _post_login(guesser, f"guess{attempt % 5}@example.com", WRONG)).status_code == 401

    assert (await _post_login(guesser, "admin@example.com", PASSWORD)).status_code == 429
    assert (await _post_login(in_process.client(address="10.0.0.2"), "admin@example.com", PASSWORD)).status_code == 303


async def test_login_rotates_the_session_and_logout_revokes_it(in_process: InProcess) -> None:
    first = (await in_process.log_in("admin@example.com")).cookies["envoi_session"]
    client = in_process.client()
    token = form_token((await client.get("/console/login")).text)
    client.cookies.set("envoi_session", first, domain="envoi.test")  # a session the browser already holds
    again = await client.post("/console/login", data={"email": "admin@example.com", "password": PASSWORD,
                                                      "csrf_token": token})  # fmt: skip
    assert again.status_code == 303
    second = client.cookies["envoi_session"]
    assert second != first
    planted = in_process.client()
    planted.cookies.set("envoi_session", first)
    assert (await planted.get("/console/")).status_code == 303  # the old token died at the new login

    page = (await client.get("/console/")).text
    assert (await client.post("/console/logout", data={})).status_code == 403  # no CSRF token: still logged in
    out = await client.post("/console/logout", data={"csrf_token": form_token(page, "/console/logout")})

    assert out.status_code == 303 and out.headers["location"] == "/console/login?logged_out=1"
    assert "You are logged out." in (await client.get(out.headers["location"])).text
    stale = in_process.client()
    stale.cookies.set("envoi_session", second)
    assert (await stale.get("/console/")).headers["location"].startswith("/console/login")
    assert (await stale.get("/api/v1/me")).status_code == 401


async def test_an_expired_session_sends_the_browser_back_to_the_login_form(in_process: InProcess) -> None:
    client = await in_process.log_in("viewer@example.com")
    async with in_process.runtime.transaction() as session:
        await session.execute(update(OperatorSession).values(expires_at=utcnow() - timedelta(seconds=1)))

    answer = await client.get("/console/events")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=%2Fconsole%2Fevents&expired=1"
    assert _cookie(answer, "envoi_session").startswith('envoi_session=""')  # the browser forgets it
    assert "Your session has ended" in (await client.get(answer.headers["location"])).text


async def test_every_console_form_needs_its_csrf_token(in_process: InProcess) -> None:
    client = await in_process.log_in("admin@example.com")
    page = (await client.get("/console/groups")).text
    group = {"name": "auditors", "label": "Auditors", "permissions": "view_events"}

    for token in ({}, {"csrf_token": "forged"}):
        refused = await client.post("/console/groups", data=group | token)
        assert refused.status_code == 403 and "security token" in refused.text
    assert "auditors" not in (await client.get("/console/groups")).text
    made = await client.post("/console/groups", data=group | {"csrf_token": form_token(page, "/console/groups")})
    assert made.status_code == 303 and made.headers["location"] == "/console/groups/auditors?done=created"


async def test_the_editor_script_calls_the_api_with_the_session_and_the_csrf_header(in_process: InProcess) -> None:
    client = await in_process.log_in("editor@example.com")
    token = page_token((await client.get("/console/templates/1")).text)

    previewed = await client.post("/api/v1/templates/1/preview", json={}, headers={"X-CSRF-Token": token})
    refused = await client.post("/api/v1/templates/1/preview", json={})

    assert previewed.status_code == 200 and previewed.json()["subject"].startswith("Your order")
    assert refused.status_code == 403


async def test_a_deactivated_operator_is_logged_out_at_once(in_process: InProcess) -> None:
    editor = await in_process.log_in("editor@example.com")
    admin = await in_process.log_in("admin@example.com")
    editor_id = in_process.operator_ids["editor@example.com"]
    page = (await admin.get(f"/console/operators/{editor_id}")).text

    action = f"/console/operators/{editor_id}/deactivate"
    done = await admin.post(action, data={"csrf_token": form_token(page, action)})

    assert done.status_code == 303
    assert (await editor.get("/console/templates")).headers["location"].startswith("/console/login")
    refused = await _post_login(in_process.client(), "editor@example.com", PASSWORD)
    assert refused.status_code == 401 and "Invalid login or password" in refused.text
