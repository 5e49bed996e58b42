"""Tracking tests: emails "sent" by inserting their rows (a profile, its marketing event, the message), and a
client with no credentials at all, as a mail client or a mailbox provider is."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from envoi.app import create_app
from envoi.campaigns.models import Profile
from envoi.db.base import utcnow
from envoi.delivery.models import Message, MessageStatus
from envoi.events.models import Event, EventMode, EventStatus
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.tracking.links import make_token
from envoi.tracking.models import TrackingHit
from envoi.tracking.secret import tracking_secret

BASE = "https://envoi.test"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari"


@dataclass
class SentEmail:
    event_id: int
    message_id: int
    profile_id: int
    token: str


SendEmail = Callable[..., Awaitable[SentEmail]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": BASE})


@pytest.fixture
async def web(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """No API key, no cookie: what reaches the tracking endpoints from a mailbox."""
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


@pytest.fixture
async def secret(runtime: Runtime) -> bytes:
    async with runtime.transaction() as session:
        return await tracking_secret(session, runtime.settings)


@pytest.fixture
def send_email(runtime: Runtime, secret: bytes) -> SendEmail:
    async def send(*, seconds_ago: float = 3600.0, address: str = "ada.lovelace@example.com") -> SentEmail:
        """A marketing email sent ``seconds_ago`` (the default is well past the scanner window)."""
        async with runtime.transaction() as session:
            profile = Profile(email=address)
            session.add(profile)
            await session.flush()
            event = Event(
                type="newsletter",
                mode=EventMode.MARKETING,
                channel="email",
                status=EventStatus.PROCESSED,
                email=address,
                ctx={},
                profile_id=profile.id,
                delivery_id=None,
            )
            session.add(event)
            await session.flush()
            sent_at = utcnow() - timedelta(seconds=seconds_ago)
            message = Message(
                event_id=event.id, channel="email", address=address, status=MessageStatus.SENT, sent_at=sent_at
            )
            session.add(message)
            await session.flush()
            return SentEmail(event.id, message.id, profile.id, make_token(event.id, secret))

    return send


async def message_of(runtime: Runtime, sent: SentEmail) -> Message:
    async with runtime.transaction() as session:
        message = await session.get(Message, sent.message_id)
        assert message is not None
        return message


async def profile_of(runtime: Runtime, sent: SentEmail) -> Profile:
    async with runtime.transaction() as session:
        profile = await session.get(Profile, sent.profile_id)
        assert profile is not None
        return profile


async def hits_of(runtime: Runtime, sent: SentEmail) -> list[TrackingHit]:
    async with runtime.transaction() as session:
        query = select(TrackingHit).where(TrackingHit.message_id == sent.message_id).order_by(TrackingHit.id)
        return list((await session.scalars(query)).all())
