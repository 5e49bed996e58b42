"""What the ``email_deliveries`` technical workflow does each minute: send the deliveries whose time has come,
and end the A/B tests whose duration is over. Each delivery in its own savepoint: one that cannot go is logged
and left as it is, the others still go. Services never commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.campaigns.ab_tests import delivery_figures, judge, needs_a_person, send_winner
from envoi.campaigns.deliveries import launch_delivery
from envoi.campaigns.models import Delivery, DeliveryRecipient, DeliveryState
from envoi.campaigns.notices import tell_choice_needed, tell_launch_refused, tell_winner
from envoi.errors import EnvoiError
from envoi.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class Round:
    launched: int = 0
    decided: int = 0
    waiting: int = 0
    queued: int = 0
    problems: list[str] = field(default_factory=list)


async def run_round(session: AsyncSession, settings: Settings, now: datetime) -> Round:
    done = Round()
    due = await session.scalars(
        select(Delivery)
        .where(Delivery.state == DeliveryState.SCHEDULED, Delivery.scheduled_at <= now, Delivery.is_template.is_(False))
        .order_by(Delivery.scheduled_at)
        # An operator sending it or picking a winner at this moment holds its row: it is theirs, not ours.
        .with_for_update(skip_locked=True)
    )
    for delivery in list(due):
        delivery_id = delivery.id
        try:
            async with session.begin_nested():
                done.queued += await launch_delivery(session, settings, delivery, now)
                done.launched += 1
        except EnvoiError as error:
            # It cannot go as it is: back to draft (not retried every minute), with why, and its makers told.
            await session.refresh(delivery)  # the savepoint's rollback expired it
            delivery.state, delivery.decision = DeliveryState.DRAFT, f"could not be sent at its time: {error.message}"
            await tell_launch_refused(session, settings, delivery)
            done.problems.append(f"delivery {delivery_id}: {error.message}")
            log.warning("campaigns.launch_refused", delivery=delivery_id, reason=error.message)
    ended = await session.scalars(
        select(Delivery)
        .where(Delivery.state == DeliveryState.TESTING, Delivery.test_ends_at <= now)
        .order_by(Delivery.test_ends_at)
        .with_for_update(skip_locked=True)
    )
    for delivery in list(ended):
        delivery_id = delivery.id
        try:
            async with session.begin_nested():
                await end_test(session, settings, delivery, now, done)
        except Exception as error:  # one test that cannot end must not stop the others
            done.problems.append(f"delivery {delivery_id}: its test could not end: {error}")
            log.exception("campaigns.end_test_failed", delivery=delivery_id)
    return done


async def end_test(session: AsyncSession, settings: Settings, delivery: Delivery, now: datetime, done: Round) -> None:
    verdict = judge(await delivery_figures(session, delivery.id), delivery.criterion)
    if needs_a_person(delivery, verdict) or verdict.winner is None:
        delivery.state, delivery.decision, delivery.decided_at = DeliveryState.WAITING_FOR_CHOICE, verdict.reason, now
        waiting = await session.scalar(
            select(func.count())
            .select_from(DeliveryRecipient)
            .where(DeliveryRecipient.delivery_id == delivery.id, DeliveryRecipient.variant.is_(None))
        )
        told = await tell_choice_needed(session, settings, delivery, waiting or 0)
        done.waiting += 1
        log.info("campaigns.choice_needed", delivery=delivery.id, told=told)
        return
    queued = await send_winner(
        session, delivery, verdict.winner, chosen_by="automatic", verdict=verdict.reason, now=now
    )
    told = await tell_winner(session, settings, delivery, queued)
    done.decided += 1
    done.queued += queued
    log.info("campaigns.winner_sent", delivery=delivery.id, winner=verdict.winner, queued=queued, told=told)
