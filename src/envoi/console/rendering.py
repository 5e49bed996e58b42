"""Turning a page's data into HTML: the Jinja2 environment (autoescaped), the layout's shared context, and the
headers every console response carries."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from envoi import __version__
from envoi.access.permissions import Permission
from envoi.console.session import Viewer

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

# Scripts only from our own static files (no inline script can run, whatever a page shows); inline styles are
# allowed because captured emails, shown in a sandboxed srcdoc frame that inherits this policy, rely on them.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    permission: Permission


NAV = (
    NavItem("Home", "/console/", Permission.VIEW_EVENTS),
    NavItem("Event types", "/console/event-types", Permission.VIEW_EVENTS),
    NavItem("Templates", "/console/templates", Permission.VIEW_EVENTS),
    NavItem("Events", "/console/events", Permission.VIEW_EVENTS),
    NavItem("Quarantine", "/console/quarantine", Permission.VIEW_EVENTS),
    NavItem("Outbox", "/console/outbox", Permission.VIEW_EVENTS),
    NavItem("Workflows", "/console/workflows", Permission.VIEW_EVENTS),
    NavItem("Deliveries", "/console/deliveries", Permission.VIEW_EVENTS),
    NavItem("Profiles", "/console/profiles", Permission.VIEW_EVENTS),
    NavItem("Webhooks", "/console/webhooks", Permission.VIEW_EVENTS),
    NavItem("Reports", "/console/reports", Permission.VIEW_EVENTS),
    NavItem("DKIM", "/console/dkim", Permission.MANAGE_DELIVERIES),
    NavItem("Operators", "/console/operators", Permission.MANAGE_OPERATORS),
    NavItem("Groups", "/console/groups", Permission.MANAGE_OPERATORS),
    NavItem("API keys", "/console/api-keys", Permission.MANAGE_OPERATORS),
    NavItem("Audit log", "/console/audit", Permission.MANAGE_OPERATORS),
)


def _when(moment: datetime | None) -> Markup:
    """A UTC time as text, in a <time> element that console.js shows in the reader's own time zone."""
    if moment is None:
        return Markup("—")
    shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(moment.isoformat(), shown)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _label(value: str) -> str:
    """``manage_operators`` as ``manage operators``."""
    return value.replace("_", " ")


_env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(when=_when, pretty=_pretty, compact=_compact, label=_label)
_env.globals.update(P=Permission, version=__version__)


def page_context(request: Request) -> dict[str, Any]:
    """What the layout needs on every page: the operator, their CSRF token, what they may see."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    can: Callable[[Permission], bool] = viewer.can if viewer else (lambda _permission: False)
    return {
        "request": request,
        "path": request.url.path,
        "operator": viewer.operator if viewer else None,
        "csrf_token": viewer.csrf_token if viewer else "",
        "can": can,
        "nav": [item for item in NAV if can(item.permission)],
    }


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    html = _env.get_template(name).render({**page_context(request), **(context or {})})
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def error_page(request: Request, status: int, message: str, *, title: str | None = None) -> HTMLResponse:
    titles = {401: "Please log in", 403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Too many tries"}
    return render(
        request,
        "error.html",
        {"title": title or titles.get(status, "Something went wrong"), "message": message, "status": status},
        status=status,
    )
