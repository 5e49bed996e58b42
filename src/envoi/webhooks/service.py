"""Reading subscriptions and their recent attempts (the API and the console show the same). Never commits."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import utcnow
from envoi.errors import NotFound
from envoi.webhooks.models import Webhook, WebhookAttempt, WebhookCall

KEPT = timedelta(days=7)  # attempts shown (and kept by the purge)


async def find_webhook(session: AsyncSession, webhook_id: int) -> Webhook:
    hook = await session.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound(f"webhook {webhook_id} does not exist")
    return hook


async def list_webhooks(session: AsyncSession) -> list[Webhook]:
    return list(await session.scalars(select(Webhook).order_by(Webhook.id)))


async def recent_attempts(session: AsyncSession, webhook_id: int, limit: int = 500) -> list[tuple[WebhookAttempt, str]]:
    """The last 7 days of attempts, newest first, each with the change its call announced."""
    rows = await session.execute(
        select(WebhookAttempt, WebhookCall.change)
        .join(WebhookCall, WebhookCall.id == WebhookAttempt.call_id)
        .where(WebhookAttempt.webhook_id == webhook_id, WebhookAttempt.at >= utcnow() - KEPT)
        .order_by(WebhookAttempt.id.desc())
        .limit(limit)
    )
    return [(attempt, change) for attempt, change in rows]


def enable_webhook(hook: Webhook) -> None:
    """Calls start again for changes from now on (those failed while it was disabled are not resent)."""
    hook.active, hook.disabled_at, hook.disabled_reason = True, None, None
