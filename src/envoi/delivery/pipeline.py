"""One claimed batch, from events to recorded outcomes: route, quarantine check, render, send, record.

The state machine (numbers in events.models.EventStatus):
  pending -> processing                      claimed by a worker, under a lease
  processing -> processed                    every message accepted by its provider
  processing -> pending                      provider said retry: error_count + 1, next_attempt_at later
  processing -> too_old                      expired before sending, or retries exhausted
  processing -> routing_failed               no live template for its type and channel (never retried)
  processing -> paused                       its template is paused; back to pending when resumed
  processing -> ignored                      the address is quarantined
  processing -> delivery_failed              refused for good, invalid address (quarantined), or render error
  processing -> pending, on another channel  instead of delivery_failed or ignored, when the event type has a
                                             fallback channel the event has an address for; attempts start
                                             again (once: the fallback has no fallback). routing_failed,
                                             paused and too_old do not fall back.
  processing -> pending, lease released      its worker was stopped (SIGTERM) and the grace period ended before
                                             the batch was recorded (envoi.delivery.worker)
A processing event whose lease ran out is claimed again by any worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.addresses import address_for
from envoi.bounces.verp import return_path_for
from envoi.channels.base import Channel, EmailMessage, Failed, InvalidAddress, Outcome, Retry, Sent
from envoi.channels.push import PLATFORMS, Platform, PushMessage
from envoi.channels.sms import SmsMessage
from envoi.db.partitions import children_since
from envoi.delivery.claim import ClaimedEvent
from envoi.delivery.marketing import MarketingContext, delivery_variables, finish_marketing_email, load_marketing
from envoi.delivery.models import Message, MessageStatus
from envoi.delivery.quarantine import add_to_quarantine, quarantined
from envoi.delivery.recording import announced, recheck_paused, record_owned
from envoi.delivery.retry import retry_delay
from envoi.events.models import UNENDED, EventStatus, EventStatusChange, EventType
from envoi.outbound import OutboundClient
from envoi.settings import Settings
from envoi.templates.attachments import attach_files, attachment_urls
from envoi.templates.compiled import CompiledTemplate
from envoi.templates.design import Design, render_context
from envoi.templates.email import RenderedEmail
from envoi.templates.models import TemplateState
from envoi.templates.push import RenderedPush
from envoi.templates.rendering import RenderError
from envoi.templates.service import LiveRoute, find_live_routes
from envoi.templates.sms import RenderedSms
from envoi.webhooks.outbox import announce


@dataclass(slots=True)
class BatchContext:
    """What the batch needs from the database, read in the claim's transaction."""

    routes: dict[tuple[str, str], LiveRoute]
    quarantined: dict[tuple[str, str], str]
    existing_messages: dict[tuple[int, str], int]  # (event id, channel) -> message id, for events being retried
    fallbacks: dict[str, str]  # event type -> the channel to try when its first one fails for good
    marketing: MarketingContext  # profiles, and the variants of marketing emails


@dataclass(slots=True)
class Decision:
    event: ClaimedEvent
    status: EventStatus = EventStatus.PROCESSING
    reason: str | None = None
    route: LiveRoute | None = None
    message: EmailMessage | SmsMessage | PushMessage | None = None
    language: str | None = None  # the template variant rendered
    attachments: list[tuple[str, str | None]] | None = None  # (url, filename) to fetch before sending
    outcome: Outcome | None = None
    next_attempt_at: datetime | None = None
    fallback: str | None = None  # the channel the event goes on to, after this one failed for good


def recipient_of(event: ClaimedEvent, channel: str | None = None) -> str | None:
    token = event.registration_token if event.platform in PLATFORMS else None  # a token needs its platform
    return address_for(
        channel or event.channel, email=event.email, mobile_phone=event.mobile_phone, registration_token=token
    )


async def load_context(session: AsyncSession, events: list[ClaimedEvent], settings: Settings) -> BatchContext:
    routes = await find_live_routes(session, {(e.type, e.channel) for e in events if e.delivery_id is None})
    blocked: dict[tuple[str, str], str] = {}
    for channel in {e.channel for e in events}:
        addresses = {a for e in events if e.channel == channel and (a := recipient_of(e))}
        for address, reason in (await quarantined(session, channel, addresses)).items():
            blocked[(channel, address)] = reason
    retried = [e for e in events if e.error_count]
    existing: dict[tuple[int, str], int] = {}
    if retried:
        rows = await session.execute(
            select(Message.event_id, Message.channel, Message.id).where(
                Message.event_id.in_([e.id for e in retried]),
                # A message is never older than its event: on PostgreSQL, older days' partitions are not read.
                Message.created_at >= children_since(min(e.created_at for e in retried)),
            )
        )
        existing = {(event_id, channel): message_id for event_id, channel, message_id in rows}
    fallbacks = await session.execute(
        select(EventType.name, EventType.fallback_channel).where(
            EventType.name.in_({e.type for e in events}), EventType.fallback_channel.is_not(None)
        )
    )
    fallback_of = {name: channel for name, channel in fallbacks if channel}
    return BatchContext(routes, blocked, existing, fallback_of, await load_marketing(session, settings, events))


class DeliveryPipeline:
    def __init__(self, settings: Settings, channels: Mapping[str, Channel[Any]], outbound: OutboundClient):
        self.settings = settings
        self.channels = channels
        self.outbound = outbound
        # By version id, or delivery and variant: neither changes once it is sent.
        self._compiled: dict[object, CompiledTemplate] = {}

    def decide(self, events: list[ClaimedEvent], context: BatchContext, now: datetime) -> list[Decision]:
        decisions = []
        for event in events:
            decision = Decision(event)
            route = self._route(event, context)
            address = recipient_of(event)
            if event.error_count >= self.settings.retry_max_attempts:
                decision.status = EventStatus.TOO_OLD
                decision.reason = f"gave up after {event.error_count} attempts: {event.last_error}"
            elif event.expires_at is not None and event.expires_at <= now:
                decision.status, decision.reason = (
                    EventStatus.TOO_OLD,
                    f"expired at {event.expires_at.isoformat()}",
                )
            elif route is None and event.delivery_id is not None:
                decision.status = EventStatus.ROUTING_FAILED
                decision.reason = f"delivery {event.delivery_id} has no variant {event.variant} (deleted?)"
            elif route is None:
                decision.status = EventStatus.ROUTING_FAILED
                decision.reason = f"no published {event.channel} template for event type '{event.type}'"
            elif event.delivery_id in context.marketing.cancelled:
                decision.status, decision.reason = EventStatus.IGNORED, f"delivery {event.delivery_id} was cancelled"
            elif event.delivery_id is not None and event.profile_id not in context.marketing.profiles:
                decision.status, decision.reason = EventStatus.IGNORED, "the profile was deleted"
            elif event.delivery_id is not None and event.profile_id in context.marketing.unsubscribed:
                decision.status, decision.reason = EventStatus.IGNORED, "the profile unsubscribed"
            elif route.state == TemplateState.PAUSED:
                decision.status, decision.route = EventStatus.PAUSED, route
                decision.reason = f"template {route.template_id} is paused"
            elif address is None or (event.channel, address) in context.quarantined:
                decision.status, decision.route = EventStatus.IGNORED, route
                why = context.quarantined.get((event.channel, address or ""), "no address")
                decision.reason = f"{address} is quarantined: {why}" if address else "no address for the channel"
            else:
                decision.route = route
                self._render(decision, context.marketing)
            decisions.append(decision)
        return decisions

    @staticmethod
    def _route(event: ClaimedEvent, context: BatchContext) -> LiveRoute | None:
        if event.delivery_id is not None:
            return context.marketing.routes.get((event.delivery_id, event.variant or ""))
        return context.routes.get((event.type, event.channel))

    def _render(self, decision: Decision, marketing: MarketingContext) -> None:
        event, route = decision.event, decision.route
        assert route is not None
        compiled = self._compiled.get(route.cache_key)
        if compiled is None:
            if len(self._compiled) > 1024:
                self._compiled.clear()
            compiled = self._compiled[route.cache_key] = CompiledTemplate(Design.of_version(route.content))
        context = render_context(
            event.ctx,
            event_id=event.id,
            event_type=event.type,
            email=event.email,
            mobile_phone=event.mobile_phone,
            external_id=event.external_id,
            origin=event.origin,
            language=event.language,
            profile=marketing.profiles.get(event.profile_id) if event.profile_id is not None else None,
        )
        if event.delivery_id is not None:
            context["delivery"] = delivery_variables(event, marketing, self.settings)
        try:
            rendered = compiled.render(context, event.language)
            if isinstance(rendered, RenderedEmail):
                decision.attachments = attachment_urls(event.ctx) or None
        except RenderError as error:  # one event's bad data must never hold up the rest of the batch
            decision.status, decision.reason = EventStatus.DELIVERY_FAILED, f"template error: {error}"
            return
        except ValueError as error:
            decision.status, decision.reason = EventStatus.DELIVERY_FAILED, f"attachment: {error}"
            return
        decision.language = rendered.language
        if isinstance(rendered, RenderedPush):
            decision.message = PushMessage(
                ref=event.id,
                token=event.registration_token or "",
                platform=cast(Platform, event.platform),  # recipient_of found the token: its platform is known
                title=rendered.title,
                body=rendered.body,
                data=rendered.data,
                badge=rendered.badge,
                sound=rendered.sound,
            )
            return
        if isinstance(rendered, RenderedSms):
            phone = event.mobile_phone or ""
            decision.message = SmsMessage(ref=event.id, to=phone, text=rendered.text, sender=rendered.sender)
            return
        email = EmailMessage(
            ref=event.id,
            sender=rendered.sender,
            to=event.email or "",
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            reply_to=rendered.reply_to,
            message_id=f"<{event.id}.{int(event.created_at.timestamp())}@{self.settings.message_id_domain}>",
            return_path=return_path_for(self.settings, event.id),  # bounces come back to the bounce listener
        )
        if event.delivery_id is not None:
            email = finish_marketing_email(email, event, marketing, self.settings)
        decision.message = email

    async def send(self, decisions: list[Decision]) -> None:
        await asyncio.gather(*(self._attach(d) for d in decisions if d.attachments and d.message))
        by_channel: dict[str, list[Decision]] = {}
        for decision in decisions:
            if decision.message is not None and decision.outcome is None:
                by_channel.setdefault(decision.event.channel, []).append(decision)
        for channel_name, group in by_channel.items():
            channel = self.channels.get(channel_name)
            if channel is None:
                for decision in group:
                    decision.outcome = Failed(f"no {channel_name} provider is configured")
                continue
            outcomes = await channel.send_many([d.message for d in group if d.message is not None])
            for decision, outcome in zip(group, outcomes, strict=True):
                decision.outcome = outcome

    async def _attach(self, decision: Decision) -> None:
        """Fetch the event's attachments now, at send time; a refusal fails the event, an outage retries it."""
        assert isinstance(decision.message, EmailMessage) and decision.attachments
        attached = await attach_files(self.outbound, decision.message, decision.attachments)
        if isinstance(attached, EmailMessage):
            decision.message = attached
        else:
            decision.outcome = attached

    def fall_back(self, decisions: list[Decision], context: BatchContext, now: datetime) -> None:
        """An event that failed for good on its channel, or had no usable address for it, goes back to the queue
        on its type's fallback channel (once: the fallback has no fallback of its own)."""
        for d in decisions:
            event = d.event
            fallback = context.fallbacks.get(event.type)
            if d.status not in (EventStatus.DELIVERY_FAILED, EventStatus.IGNORED) or fallback in (None, event.channel):
                continue
            if not recipient_of(event, fallback):
                continue
            d.status, d.next_attempt_at, d.fallback = EventStatus.PENDING, now, fallback
            d.reason = f"{event.channel} failed for good ({d.reason}); trying {fallback}"

    def settle(self, decisions: list[Decision], now: datetime) -> None:
        """Turn each send outcome into the event's next status."""
        for decision in decisions:
            outcome = decision.outcome
            if outcome is None:
                continue
            attempts = decision.event.error_count + 1
            if isinstance(outcome, Sent):
                decision.status, decision.reason = EventStatus.PROCESSED, None
            elif isinstance(outcome, Retry):
                delay = retry_delay(attempts, self.settings, at_least=outcome.after)
                retry_at = now + timedelta(seconds=delay)
                expires = decision.event.expires_at
                if attempts >= self.settings.retry_max_attempts:
                    decision.status = EventStatus.TOO_OLD
                    decision.reason = f"gave up after {attempts} attempts: {outcome.reason}"
                elif expires is not None and retry_at > expires:
                    decision.status = EventStatus.TOO_OLD
                    decision.reason = f"expires before the next attempt: {outcome.reason}"
                else:
                    decision.status, decision.next_attempt_at = EventStatus.PENDING, retry_at
                    decision.reason = f"attempt {attempts} failed, retrying at {retry_at.isoformat()}: {outcome.reason}"
            elif isinstance(outcome, InvalidAddress):
                decision.status = EventStatus.DELIVERY_FAILED
                decision.reason = f"address refused, quarantined: {outcome.reason}"
            else:
                decision.status, decision.reason = EventStatus.DELIVERY_FAILED, outcome.reason

    async def record(
        self,
        session: AsyncSession,
        owner: str,
        decisions: list[Decision],
        context: BatchContext,
        now: datetime,
        send_started: datetime | None = None,
    ) -> int:
        """Every status, message and quarantine entry of the batch, in the caller's one transaction.
        Only events whose lease we still hold are recorded; returns how many that was. ``now`` is when sending
        ended (the messages' sent_at, the final statuses' ended_at), ``send_started`` when it began."""
        await recheck_paused(session, decisions, now)
        owned = await record_owned(session, owner, [(d.event, self._event_values(d, now)) for d in decisions])
        decisions = [d for d in decisions if d.event.id in owned]
        if not decisions:
            return 0
        timeline, new_messages, quarantine = [], [], []
        for d in decisions:
            e = d.event
            timeline.append({"event_id": e.id, "status": d.status, "at": now, "reason": d.reason})
            if isinstance(d.outcome, InvalidAddress) and d.message is not None:
                quarantine.append((e.channel, d.message.to, d.outcome.reason))
            existing = context.existing_messages.get((e.id, e.channel))
            if d.outcome is not None and d.message is not None:
                retrying = d.status == EventStatus.PENDING and d.fallback is None
                message = self._message_row(d, now, send_started, retrying=retrying)
                if existing is None:
                    new_messages.append(message)
                    continue
                changes = {k: v for k, v in message.items() if k not in ("created_at", "attempts")}
                changes["attempts"] = Message.attempts + 1
            elif existing is not None and (d.fallback or d.status not in (EventStatus.PENDING, EventStatus.PAUSED)):
                # The earlier attempt's message will not be retried any more.
                changes = {"status": MessageStatus.FAILED, "error": d.reason, "updated_at": now}
            else:
                continue
            mine = (Message.id == existing) & (Message.created_at >= children_since(e.created_at))
            await session.execute(update(Message).where(mine).values(changes))
        await session.execute(insert(EventStatusChange), timeline)
        if new_messages:
            await session.execute(insert(Message), new_messages)
        await add_to_quarantine(session, quarantine)
        await announce(session, [change for d in decisions if (change := announced(d, now))])
        return len(decisions)

    @staticmethod
    def _event_values(d: Decision, now: datetime) -> dict[str, Any]:
        e = d.event
        failed_send = d.outcome is not None and not isinstance(d.outcome, Sent)
        return {
            "lease_owner": None,  # the lease ends with the batch's record
            "status": d.status,
            "updated_at": now,
            "next_attempt_at": d.next_attempt_at or now,
            # A final status ends the reports' processing time; waiting again (a retry, a fallback) does not.
            "ended_at": None if d.status in UNENDED else now,
            # The fallback channel starts afresh: its own retries, its own attempts.
            "error_count": 0 if d.fallback else e.error_count + (1 if failed_send else 0),
            "last_error": d.reason if d.status != EventStatus.PROCESSED else None,
            "channel": d.fallback or e.channel,
            "template_id": d.route.template_id if d.route else None,
            "template_version_id": d.route.version_id if d.route and d.message else None,
        }

    @staticmethod
    def _message_row(d: Decision, now: datetime, send_started: datetime | None, retrying: bool) -> dict[str, Any]:
        assert d.message is not None and d.route is not None
        outcome = d.outcome
        sent = isinstance(outcome, Sent)
        return {
            "event_id": d.event.id,
            "channel": d.event.channel,
            "address": d.message.to,
            "template_version_id": d.route.version_id,
            "language": d.language,
            "status": MessageStatus.SENT if sent else MessageStatus.RETRYING if retrying else MessageStatus.FAILED,
            "subject": d.message.subject if isinstance(d.message, EmailMessage) else None,
            "provider": outcome.provider if isinstance(outcome, Sent) else None,
            "provider_id": outcome.provider_id if isinstance(outcome, Sent) else None,
            "attempts": 1,
            "error": None if sent else getattr(outcome, "reason", None),
            "created_at": now,
            "updated_at": now,
            "send_started_at": send_started if sent else None,
            "sent_at": now if sent else None,
        }
