"""Console routes: errors become HTML pages (or a trip to the login form), never the API's JSON."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from envoi.access.api import SESSION_COOKIE
from envoi.console.rendering import SECURITY_HEADERS, error_page
from envoi.console.session import LoginRequired
from envoi.errors import EnvoiError
from envoi.runtime import Runtime

LOGIN_PATH = "/console/login"
HOME_PATH = "/console/"


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def local_path(target: str | None) -> str:
    """Where to go after login: a console page of this site only, never another site (an open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME_PATH


def see_other(url: str) -> RedirectResponse:
    """After a successful form post: the browser GETs the next page (a reload does not post again)."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def to_login(request: Request, *, expired: bool) -> RedirectResponse:
    query: dict[str, str] = {}
    if request.method == "GET":
        query["next"] = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if expired:
        query["expired"] = "1"
    response = see_other(LOGIN_PATH + (f"?{urlencode(query)}" if query else ""))
    if expired:
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except LoginRequired as error:
                return to_login(request, expired=error.expired)
            except EnvoiError as error:
                return error_page(request, error.status_code, error.message)
            except RequestValidationError as error:
                if any(problem.get("loc", ("",))[0] == "path" for problem in error.errors()):
                    return error_page(request, 404, "There is no such page.")
                return error_page(request, 400, "This page's address holds a value it cannot use.")

        return handler


def console_router() -> APIRouter:
    return APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
