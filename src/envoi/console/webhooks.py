"""Status webhooks in the console: each subscription, its state, and its last 7 days of attempts; a disabled
one can be enabled again. Subscriptions are made through the API (their secret is shown once, there)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.console.forms import read_form
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageDeliveries, CanView
from envoi.webhooks.service import enable_webhook, find_webhook, list_webhooks, recent_attempts

router = console_router()
WebhookId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/webhooks")
async def webhooks(request: Request, _viewer: CanView) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        hooks = await list_webhooks(session)
    return render(request, "webhooks.html", {"hooks": hooks})


@router.get("/webhooks/{webhook_id}")
async def webhook(request: Request, webhook_id: WebhookId, _viewer: CanView, enabled: str = "") -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        hook = await find_webhook(session, webhook_id)
        attempts = await recent_attempts(session, webhook_id, limit=200)
    flash = "Enabled: calls start again for changes from now on." if enabled else None
    return render(request, "webhook.html", {"hook": hook, "attempts": attempts, "flash": flash})


@router.post("/webhooks/{webhook_id}/enable")
async def enable(request: Request, webhook_id: WebhookId, viewer: CanManageDeliveries) -> Response:
    await read_form(request)  # its CSRF token
    async with runtime_of(request).transaction() as session:
        hook = await find_webhook(session, webhook_id)
        enable_webhook(hook)
        audit(session, viewer.principal, "enabled", "webhook", webhook_id)
    return see_other(f"/console/webhooks/{webhook_id}?enabled=1")
