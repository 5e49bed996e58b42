"""Who is looking at a console page: the operator of the session cookie, what their groups allow, and the
checks every page makes (logged in, CSRF token on every change, the page's permission)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from envoi.access.api import CSRF_HEADER, SESSION_COOKIE, csrf_token
from envoi.access.groups import operator_principal
from envoi.access.models import Operator
from envoi.access.operators import check_session
from envoi.access.permissions import Permission, Principal
from envoi.errors import Forbidden, Unauthorized
from envoi.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class OperatorView:
    """The operator as pages show them."""

    id: int
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class Viewer:
    operator: OperatorView
    principal: Principal
    session_token: str = field(repr=False)

    @property
    def csrf_token(self) -> str:
        return csrf_token(self.session_token)

    def can(self, permission: Permission) -> bool:
        return self.principal.can(permission)


class LoginRequired(Exception):
    """No live session: the page sends the browser to the login form (and back here afterwards)."""

    def __init__(self, *, expired: bool) -> None:
        super().__init__("log in to see this page")
        self.expired = expired


class CsrfRefused(Forbidden):
    code = "csrf_refused"


async def find_viewer(request: Request) -> Viewer | None:
    """The operator of the session cookie, read afresh on each page: logout, deactivation and group changes
    apply at once."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    runtime: Runtime = request.app.state.runtime
    async with runtime.transaction() as session:
        try:
            operator_id = await check_session(session, token, "console")
        except Unauthorized:
            return None
        operator = await session.get(Operator, operator_id)
        if operator is None or not operator.active:
            return None
        principal = await operator_principal(session, operator)
        return Viewer(OperatorView(operator.id, operator.email, operator.name), principal, token)


async def check_csrf(request: Request, viewer: Viewer) -> None:
    """A change must carry the session's CSRF token: the ``csrf_token`` field of a form, or the header a
    script sends. Another site can make a browser post a form here, but cannot read the token."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    if not hmac.compare_digest(sent.encode(), viewer.csrf_token.encode()):
        raise CsrfRefused(
            "This form did not carry its security token, or carried an old one, so nothing was changed. "
            "Go back, reload the page and try again."
        )


def requires(permission: Permission | None) -> Callable[[Request], Awaitable[Viewer]]:
    """The dependency of a page: a logged-in operator (who has ``permission``, unless None); on a change, the
    CSRF token too."""

    async def check(request: Request) -> Viewer:
        viewer = await find_viewer(request)
        if viewer is None:
            raise LoginRequired(expired=SESSION_COOKIE in request.cookies)
        request.state.viewer = viewer
        if request.method not in SAFE_METHODS:
            await check_csrf(request, viewer)
        if permission is not None and not viewer.can(permission):
            raise Forbidden(
                f"Your security groups do not give you the “{permission.value.replace('_', ' ')}” permission this "
                "page needs. An administrator can add you to a group that does."
            )
        return viewer

    return check


LoggedIn = Annotated[Viewer, Depends(requires(None))]
CanView = Annotated[Viewer, Depends(requires(Permission.VIEW_EVENTS))]
CanEditTemplates = Annotated[Viewer, Depends(requires(Permission.EDIT_TEMPLATES))]
CanPublish = Annotated[Viewer, Depends(requires(Permission.PUBLISH))]
CanManageDeliveries = Annotated[Viewer, Depends(requires(Permission.MANAGE_DELIVERIES))]
CanManageWorkflows = Annotated[Viewer, Depends(requires(Permission.MANAGE_WORKFLOWS))]
CanManageOperators = Annotated[Viewer, Depends(requires(Permission.MANAGE_OPERATORS))]
