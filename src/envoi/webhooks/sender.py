"""Delivering webhook calls: claimed from the outbox under a lease (several workers never send one call twice
at once), POSTed signed, retried with growing delays for ``webhook_retry_hours``; a subscription whose calls
still fail after that is disabled and its owner told.

Signature: ``Envoi-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>``. A
receiver recomputes it over the raw body and refuses a ``t`` too old, so a captured call cannot be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta

import httpcore
import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.db.base import utcnow
from envoi.notifications.service import Category, Recipients, notify
from envoi.observability.metrics import count_webhook_calls
from envoi.outbound import GuardedBackend, OutboundError
from envoi.settings import Settings
from envoi.webhooks.models import CallStatus, Webhook, WebhookAttempt, WebhookCall

log = structlog.get_logger(__name__)
_EXCERPT = 500
_BATCH = 50


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def retry_delay(attempts: int, settings: Settings) -> float:
    return float(min(settings.webhook_retry_base_seconds * 2 ** (attempts - 1), settings.webhook_retry_max_seconds))


class WebhookSender:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        backend = GuardedBackend(allow_private=settings.webhook_allow_private_networks, allowed_networks=())
        self.pool = httpcore.AsyncConnectionPool(network_backend=backend, max_connections=20)
        timeout = settings.webhook_timeout_seconds
        self.timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    sent = await self.send_due()
                except Exception:  # the database may be away for a while: keep trying
                    log.exception("webhooks.round_failed")
                    sent = 0
                if not sent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.webhook_poll_seconds)
        finally:
            await self.pool.aclose()

    async def send_due(self) -> int:
        """Send the calls due now (up to a batch); returns how many were tried."""
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds * 3)
        async with self.sessionmaker.begin() as session:
            due = (
                select(WebhookCall.id)
                .where(WebhookCall.status == CallStatus.PENDING, WebhookCall.next_attempt_at <= now)
                .order_by(WebhookCall.next_attempt_at)
                .limit(_BATCH)
                .with_for_update(skip_locked=True)
            )
            claimed = (
                await session.execute(
                    update(WebhookCall)
                    .where(WebhookCall.id.in_(due.scalar_subquery()))
                    .values(next_attempt_at=lease)
                    .returning(WebhookCall.id, WebhookCall.webhook_id, WebhookCall.body, WebhookCall.attempts)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            hooks = {
                h.id: h for h in await session.scalars(select(Webhook).where(Webhook.id.in_({c[1] for c in claimed})))
            }
        results = await asyncio.gather(*(self._post(hooks[c[1]], c[0], c[2]) for c in claimed if c[1] in hooks))
        counted = []
        async with self.sessionmaker.begin() as session:
            for (call_id, hook_id, _body, attempts), (status, latency, excerpt) in zip(claimed, results, strict=True):
                result = await self._record(session, hooks[hook_id], call_id, attempts + 1, status, latency, excerpt)
                counted.append((result, latency))
        count_webhook_calls(counted)  # once recorded
        return len(claimed)

    async def _post(self, hook: Webhook, call_id: int, body: object) -> tuple[int | None, int, str]:
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        url = httpx.URL(hook.url)
        headers = [
            (b"Host", url.netloc),
            (b"Content-Type", b"application/json"),
            (b"User-Agent", b"Envoi-Webhooks"),
            (b"Envoi-Signature", signature(hook.secret, int(time.time()), payload).encode()),
            (b"Envoi-Webhook-Id", str(hook.id).encode()),
            (b"Envoi-Call-Id", str(call_id).encode()),  # the same on every retry: receivers deduplicate by it
        ]
        target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
        started = time.perf_counter()
        try:
            async with self.pool.stream(
                "POST", target, headers=headers, content=payload, extensions={"timeout": self.timeouts}
            ) as response:
                start = b""
                async for chunk in response.aiter_stream():  # the start only, however large the answer
                    start += chunk
                    if len(start) >= _EXCERPT:
                        break
            return response.status, _ms(started), start[:_EXCERPT].decode("utf-8", "replace").strip()
        except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError) as error:
            return None, _ms(started), f"{type(error).__name__}: {error}"[:_EXCERPT]
        except OutboundError as error:
            return None, _ms(started), error.reason[:_EXCERPT]

    async def _record(
        self,
        session: AsyncSession,
        hook: Webhook,
        call_id: int,
        attempts: int,
        status: int | None,
        latency: int,
        excerpt: str,
    ) -> str:
        """Returns the attempt's result for /metrics: delivered, retry or failed (the subscription disabled)."""
        now = utcnow()
        session.add(
            WebhookAttempt(
                webhook_id=hook.id, call_id=call_id, at=now, status_code=status, latency_ms=latency, response=excerpt
            )
        )
        call = update(WebhookCall).where(WebhookCall.id == call_id)
        if status is not None and 200 <= status < 300:
            await session.execute(call.values(status=CallStatus.DELIVERED, attempts=attempts, delivered_at=now))
            return "delivered"
        created = await session.scalar(select(WebhookCall.created_at).where(WebhookCall.id == call_id))
        retry_at = now + timedelta(seconds=retry_delay(attempts, self.settings))
        if created is not None and retry_at - created <= timedelta(hours=self.settings.webhook_retry_hours):
            await session.execute(call.values(attempts=attempts, next_attempt_at=retry_at))
            return "retry"
        await session.execute(call.values(status=CallStatus.FAILED, attempts=attempts))
        await disable(
            session,
            hook,
            now,
            f"a call failed for {self.settings.webhook_retry_hours:g} hours, the last time with "
            + (f"HTTP {status}: {excerpt}" if status is not None else excerpt),
        )
        return "failed"


async def disable(session: AsyncSession, hook: Webhook, now: datetime, reason: str) -> None:
    """Stop calling it (its pending calls fail) and tell its owner."""
    changed = await session.execute(
        update(Webhook)
        .where(Webhook.id == hook.id, Webhook.active.is_(True))
        .values(active=False, disabled_at=now, disabled_reason=reason[:1000], updated_at=now)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        return
    await session.execute(
        update(WebhookCall)
        .where(WebhookCall.webhook_id == hook.id, WebhookCall.status == CallStatus.PENDING)
        .values(status=CallStatus.FAILED)
    )
    log.warning("webhooks.disabled", webhook=hook.id)
    if hook.owner_id is not None:
        await notify(
            session,
            Recipients(operators=[hook.owner_id]),
            category=Category.ACTION_REQUIRED,
            title=f"Webhook {hook.id} was disabled",
            body=f"Envoi stopped calling {hook.url}: {reason}. Fix the receiver, then enable the webhook again.",
            link=f"/api/v1/webhooks/{hook.id}",
        )


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
