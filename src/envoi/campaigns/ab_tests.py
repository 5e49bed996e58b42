"""A/B tests: the reproducible split, the figures per variant, the winner by the delivery's criterion, and what
happens at the end of the test: the winner goes to the rest of the audience (automatic mode), or a person must
choose (manual mode, or a tie). Either way the delivery's creator and editors are told, unless its
notifications are off. Services never commit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.campaigns.content import group_sizes
from envoi.campaigns.models import Criterion, Delivery, DeliveryRecipient, DeliveryState, Profile, WinnerMode
from envoi.db.notify import notify_queue
from envoi.delivery.models import ACCEPTED, Message
from envoi.errors import Conflict, ValidationFailed
from envoi.events.models import MARKETING_EVENT_TYPE, Event, EventMode, EventStatus
from envoi.events.service import insert_event_rows

_CHUNK = 1000
_CRITERIA = {
    Criterion.OPEN_RATE: "open rate",
    Criterion.CLICK_RATE: "click-through rate",
    Criterion.FEWEST_UNSUBSCRIPTIONS: "fewest unsubscriptions",
}


def assign_variants(profile_ids: list[int], split: list[int], seed: int) -> dict[int, str]:
    """Test group per profile (absent: the rest, who get the winner): the profiles shuffled by a hash of the
    seed and their id, so the same audience and seed always give the same groups."""
    shuffled = sorted(profile_ids, key=lambda pid: hashlib.sha256(f"{seed}:{pid}".encode()).digest())
    groups: dict[int, str] = {}
    start = 0
    for index, size in enumerate(group_sizes(split, len(profile_ids))):
        groups.update((pid, "ABC"[index]) for pid in shuffled[start : start + size])
        start += size
    return groups


async def queue_recipients(
    session: AsyncSession, delivery: Delivery, now: datetime, *, test_groups: bool, winner: str | None = None
) -> int:
    """One marketing event per recipient not yet queued: the test groups with their variant, or the rest with
    the winner, a thousand at a time. Profiles unsubscribed since the launch are skipped (and stay unqueued)."""
    group = DeliveryRecipient.variant.is_not(None) if test_groups else DeliveryRecipient.variant.is_(None)
    origin = f"delivery {delivery.id} ({delivery.name})"
    queued, after = 0, 0
    while True:
        page = (
            await session.execute(
                select(DeliveryRecipient.id, DeliveryRecipient.variant, Profile.id, Profile.email, Profile.language)
                .join(Profile, Profile.id == DeliveryRecipient.profile_id)
                .where(
                    DeliveryRecipient.delivery_id == delivery.id,
                    DeliveryRecipient.id > after,
                    DeliveryRecipient.queued_at.is_(None),
                    group,
                    Profile.subscribed.is_(True),
                    Profile.email.is_not(None),
                )
                .order_by(DeliveryRecipient.id)
                .limit(_CHUNK)
            )
        ).all()
        if not page:
            break
        after = page[-1][0]
        events = [
            {
                "type": MARKETING_EVENT_TYPE,
                "mode": EventMode.MARKETING,
                "channel": "email",
                "status": EventStatus.PENDING,
                "email": email,
                "language": language,
                "origin": origin,
                "ctx": "{}",  # as ingestion stores it: JSON text
                "profile_id": profile_id,
                "delivery_id": delivery.id,
                "variant": variant or winner,
                "created_at": now,
                "updated_at": now,
                "next_attempt_at": now,
                "error_count": 0,
            }
            for _rid, variant, profile_id, email, language in page
        ]
        await insert_event_rows(session, events)
        await session.execute(
            update(DeliveryRecipient).where(DeliveryRecipient.id.in_([r[0] for r in page])).values(queued_at=now)
        )
        queued += len(page)
    if queued:
        await notify_queue(session)
    return queued


@dataclass(frozen=True)
class VariantFigures:
    """One group's figures: a test variant's, or (``variant`` None) the rest of the audience's."""

    variant: str | None
    recipients: int
    sent: int
    opens: int
    clicks: int
    unsubscriptions: int

    def rate(self, count: int) -> Fraction:
        return Fraction(count, self.sent) if self.sent else Fraction(0)

    @property
    def open_rate(self) -> Fraction:
        return self.rate(self.opens)

    @property
    def click_rate(self) -> Fraction:
        return self.rate(self.clicks)

    @property
    def unsubscription_rate(self) -> Fraction:
        return self.rate(self.unsubscriptions)

    def summary(self) -> str:
        name = f"variant {self.variant}" if self.variant else "the rest"
        return (
            f"{name}: {self.sent} sent, {float(self.open_rate):.1%} opened, {float(self.click_rate):.1%} clicked, "
            f"{self.unsubscriptions} unsubscribed"
        )


async def delivery_figures(session: AsyncSession, delivery_id: int) -> list[VariantFigures]:
    """Per test group (the rest last): recipients, emails sent, and the people (not bots) who opened, clicked
    or unsubscribed."""
    sent = Message.status.in_(ACCEPTED)  # a bounced email was sent too
    rows = await session.execute(
        select(
            DeliveryRecipient.variant,
            func.count(DeliveryRecipient.id),
            func.count(Message.id),
            func.count(Message.opened_at),
            func.count(Message.clicked_at),
            func.count(Message.unsubscribed_at),
        )
        .select_from(DeliveryRecipient)
        .outerjoin(
            Event,
            and_(
                Event.delivery_id == DeliveryRecipient.delivery_id,
                Event.profile_id == DeliveryRecipient.profile_id,
                Event.delivery_id.is_not(None),
            ),
        )
        .outerjoin(Message, and_(Message.event_id == Event.id, sent))
        .where(DeliveryRecipient.delivery_id == delivery_id)
        .group_by(DeliveryRecipient.variant)
    )
    figures = [VariantFigures(*row) for row in rows]
    return sorted(figures, key=lambda f: f.variant or "~")


@dataclass(frozen=True)
class Verdict:
    winner: str | None  # None: a person must choose
    reason: str


def judge(figures: list[VariantFigures], criterion: str) -> Verdict:
    """The winner by the criterion; a tie, or a test where nothing was sent, has none."""
    tested = [f for f in figures if f.variant]
    what = _CRITERIA.get(Criterion(criterion), criterion)
    detail = "; ".join(f.summary() for f in tested)
    if not any(f.sent for f in tested):
        return Verdict(None, f"no test email was sent, so nothing can be compared ({detail})")

    def score(f: VariantFigures) -> Fraction:
        if criterion == Criterion.FEWEST_UNSUBSCRIPTIONS:
            return -f.unsubscription_rate
        return f.click_rate if criterion == Criterion.CLICK_RATE else f.open_rate

    measured = [f for f in tested if f.sent]  # a variant that sent nothing has no rate, not the best one
    best = max(score(f) for f in measured)
    leaders = [f.variant for f in measured if score(f) == best]
    if len(leaders) != 1:
        return Verdict(None, f"variants {' and '.join(str(v) for v in leaders)} tie on {what} ({detail})")
    return Verdict(leaders[0], f"variant {leaders[0]} has the best {what} ({detail})")


async def send_winner(
    session: AsyncSession,
    delivery: Delivery,
    variant: str,
    *,
    chosen_by: str,
    now: datetime,
    verdict: str | None = None,
) -> int:
    """The winner goes to the rest of the audience; returns how many emails were queued. ``verdict``: why it
    won, when the test chose it; a person's choice keeps the test's verdict beside their name."""
    names = [v.get("name") for v in delivery.variants]
    if variant not in names:
        raise ValidationFailed(f"the delivery's variants are {', '.join(map(str, names))}", field="variant")
    if delivery.state not in (DeliveryState.TESTING, DeliveryState.WAITING_FOR_CHOICE):
        raise Conflict(f"the delivery is {delivery.state}: there is no winner to choose", field="state")
    if verdict is None:
        ended = delivery.state == DeliveryState.WAITING_FOR_CHOICE and delivery.decision
        verdict = f"chosen by {chosen_by} " + (
            f"after the test: {delivery.decision}" if ended else "before the test ended"
        )
    delivery.winner, delivery.winner_chosen_by, delivery.decision = variant, chosen_by, verdict
    delivery.decided_at, delivery.state = now, DeliveryState.SENT
    return await queue_recipients(session, delivery, now, test_groups=False, winner=variant)


def needs_a_person(delivery: Delivery, verdict: Verdict) -> bool:
    return verdict.winner is None or delivery.winner_mode == WinnerMode.MANUAL
