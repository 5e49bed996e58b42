"""REST: status webhook subscriptions (``/api/v1/webhooks``) and their last 7 days of attempts."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Path

from envoi.access.api import CanManageDeliveries, CanView, RuntimeDep
from envoi.access.audit import audit
from envoi.webhooks import service
from envoi.webhooks.models import Webhook
from envoi.webhooks.schemas import AttemptOut, WebhookIn, WebhookOut
from envoi.webhooks.service import find_webhook, recent_attempts

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
Id = Annotated[int, Path(ge=1, le=2**62)]


@router.get("", response_model=list[WebhookOut], response_model_exclude_none=False)
async def list_webhooks(runtime: RuntimeDep, _who: CanView) -> list[WebhookOut]:
    async with runtime.transaction() as session:
        return [WebhookOut.of(h) for h in await service.list_webhooks(session)]


@router.post("", response_model=WebhookOut, status_code=201)
async def create_webhook(body: WebhookIn, runtime: RuntimeDep, who: CanManageDeliveries) -> WebhookOut:
    """Each status change it asks for is POSTed to ``url`` as JSON, signed with ``secret`` (the header
    ``Envoi-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``), retried for 24 hours."""
    async with runtime.transaction() as session:
        hook = Webhook(
            url=str(body.url),
            changes=sorted({c.value for c in body.changes}),
            event_types=sorted(set(body.event_types)) if body.event_types else None,
            secret=body.secret or "whsec_" + secrets.token_urlsafe(32),
            active=True,
            owner_id=who.operator_id,
            created_by=who.actor,
        )
        session.add(hook)
        await session.flush()
        audit(session, who, "created", "webhook", hook.id, {"url": hook.url, "changes": hook.changes})
        return WebhookOut.of(hook, with_secret=True)


@router.get("/{webhook_id}", response_model=WebhookOut)
async def read_webhook(webhook_id: Id, runtime: RuntimeDep, _who: CanView) -> WebhookOut:
    async with runtime.transaction() as session:
        return WebhookOut.of(await find_webhook(session, webhook_id))


@router.post("/{webhook_id}/enable", response_model=WebhookOut)
async def enable_webhook(webhook_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> WebhookOut:
    """Calls start again for changes from now on (those failed while it was disabled are not resent)."""
    async with runtime.transaction() as session:
        hook = await find_webhook(session, webhook_id)
        service.enable_webhook(hook)
        audit(session, who, "enabled", "webhook", hook.id)
        return WebhookOut.of(hook)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> None:
    async with runtime.transaction() as session:
        hook = await find_webhook(session, webhook_id)
        await session.delete(hook)
        audit(session, who, "deleted", "webhook", webhook_id, {"url": hook.url})


@router.get("/{webhook_id}/attempts", response_model=list[AttemptOut])
async def list_attempts(webhook_id: Id, runtime: RuntimeDep, _who: CanView) -> list[AttemptOut]:
    """The last 7 days of attempts, newest first (at most 500): status code, latency, the answer's start."""
    async with runtime.transaction() as session:
        await find_webhook(session, webhook_id)
        return [AttemptOut.of(attempt, change) for attempt, change in await recent_attempts(session, webhook_id)]
