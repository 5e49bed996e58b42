"""Logging in and out of the console: the login form (with its own CSRF token), the throttle on failed
logins, the session cookie, and logout."""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import timedelta

import structlog
from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from envoi.access.api import SESSION_COOKIE
from envoi.access.operators import check_login, close_session, open_session
from envoi.access.throttle import login_key, minutes_to_wait, record_attempt
from envoi.console.forms import read_form
from envoi.console.rendering import render
from envoi.console.routing import LOGIN_PATH, console_router, local_path, see_other
from envoi.console.session import CSRF_FIELD, LoggedIn, find_viewer
from envoi.errors import Unauthorized
from envoi.runtime import Runtime
from envoi.settings import Settings

LOGIN_CSRF_COOKIE = "envoi_login_csrf"
_KEEP_ATTEMPTS = timedelta(days=1)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NOTICES = {"expired": "Your session has ended; please log in again.", "logged_out": "You are logged out."}

log = structlog.get_logger(__name__)
router = console_router()


def _settings(request: Request) -> Settings:
    runtime: Runtime = request.app.state.runtime
    return runtime.settings


def _secure(request: Request) -> bool:
    return _settings(request).console_secure_cookie or request.url.scheme == "https"


def _address(request: Request) -> str:
    return (request.client.host if request.client else "unknown")[:64]  # as long as the column


def _login_form(
    request: Request,
    *,
    email: str = "",
    next_path: str | None = None,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The form, with a CSRF token that a cookie holds too: another site cannot log a browser in as itself."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _TOKEN.match(token):
        token = secrets.token_urlsafe(32)
    context = {"email": email, "next": next_path or "", "error": error, "notice": notice, "csrf_token": token}
    response = render(request, "login.html", context, status=status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, path=LOGIN_PATH, httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip
    return response


@router.get("/login")
async def login_page(
    request: Request, next: str | None = None, expired: bool = False, logged_out: bool = False
) -> Response:
    if await find_viewer(request) is not None:
        return see_other(local_path(next))
    notice = _NOTICES["expired"] if expired else _NOTICES["logged_out"] if logged_out else None
    return _login_form(request, next_path=next, notice=notice)


@router.post("/login")
async def log_in(request: Request) -> Response:
    form = await read_form(request)
    email, password, next_path = form.text("email"), form.raw("password"), form.text("next")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(form.text(CSRF_FIELD).encode(), expected.encode()):
        error = "This login form had expired, so it was not sent. Please log in again."
        return _login_form(request, email=email, next_path=next_path, error=error, status=403)
    if not email or not password:
        error = "Enter your email and your password."
        return _login_form(request, email=email, next_path=next_path, error=error, status=422)
    login, address = login_key(email), _address(request)
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    async with runtime.transaction() as session:
        wait = await minutes_to_wait(
            session, login, address, per_login=settings.console_login_failures_per_login,
            per_address=settings.console_login_failures_per_address,
            window=timedelta(minutes=settings.console_login_window_minutes),
        )  # fmt: skip
        if wait:
            log.warning("console.login_throttled", login=login, address=address, minutes=wait)
            error = f"Too many failed logins; try again in {wait} minute{'s' if wait > 1 else ''}."
            return _login_form(request, email=email, next_path=next_path, error=error, status=429)
        try:
            operator = await check_login(session, email, password)
        except Unauthorized as refused:
            await record_attempt(session, login, address, succeeded=False, keep=_KEEP_ATTEMPTS)
            failure: str | None = refused.message
        else:
            failure = None
            await record_attempt(session, login, address, succeeded=True, keep=_KEEP_ATTEMPTS)
            previous = request.cookies.get(SESSION_COOKIE)
            if previous:  # a new token at each login: a session planted before login is worth nothing after
                await close_session(session, previous)
            token = await open_session(session, operator, timedelta(hours=settings.console_session_hours), "console")
    if failure is not None:
        log.info("console.login_failed", login=login, address=address)
        return _login_form(request, email=email, next_path=next_path, error=failure, status=401)
    log.info("console.logged_in", operator_id=operator.id, address=address)
    response = see_other(local_path(next_path))
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(settings.console_session_hours * 3600), path="/", httponly=True,
        samesite="strict",
        secure=_secure(request),
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/logout")
async def log_out(request: Request, viewer: LoggedIn) -> Response:
    runtime: Runtime = request.app.state.runtime
    async with runtime.transaction() as session:
        await close_session(session, viewer.session_token)
    log.info("console.logged_out", operator_id=viewer.operator.id)
    response = see_other(f"{LOGIN_PATH}?logged_out=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
