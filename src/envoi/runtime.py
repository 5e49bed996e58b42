"""What a running process shares: settings, the database, the channels, the worker's doorbell and the hub of
operators' notification streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from envoi.channels.base import Channel
from envoi.db.engine import create_engine, create_sessionmaker
from envoi.db.notify import Wakeup
from envoi.delivery.receipts import ReceiptRecorder
from envoi.events.admission import Admission
from envoi.events.group import IngestGroup
from envoi.notifications.hub import NotificationHub
from envoi.outbound import OutboundClient
from envoi.providers.routing import ProviderSet
from envoi.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    providers: ProviderSet
    receipts: ReceiptRecorder  # closed after the providers that feed it
    wakeup: Wakeup = field(default_factory=Wakeup)
    notifications: NotificationHub = field(default_factory=NotificationHub)  # wakes operators' open streams
    ingest: IngestGroup = field(init=False)
    admission: Admission = field(init=False)  # whether to take more events now: the queue, each key's rate
    outbound: OutboundClient = field(init=False)  # fetches attachments

    def __post_init__(self) -> None:
        self.ingest = IngestGroup(self.sessionmaker, self.wakeup, region=self.settings.default_region)
        self.admission = Admission(self.settings, self.sessionmaker)
        self.outbound = attachment_fetcher(self.settings)
        self.notifications.watch(self.engine)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        """Raises ProviderConfigError when the environment or the providers file configures a provider wrongly."""
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        receipts = ReceiptRecorder(sessionmaker)
        return cls(settings, engine, sessionmaker, ProviderSet(settings, sessionmaker, receipts), receipts)

    @property
    def channels(self) -> dict[str, Channel[Any]]:
        """What the worker sends through, by channel: each routes to the provider configured for it."""
        return self.providers.channels

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """The unit of work of a request or a command: commits on success, rolls back on any error."""
        async with self.sessionmaker.begin() as session:
            yield session

    async def aclose(self) -> None:
        self.notifications.close()
        await self.ingest.aclose()
        await self.providers.aclose()
        await self.receipts.aclose()
        await self.outbound.aclose()
        await self.engine.dispose()


def attachment_fetcher(settings: Settings) -> OutboundClient:
    return OutboundClient(
        timeout=settings.attachment_timeout,
        max_bytes=settings.attachment_max_bytes,
        allow_private=settings.attachment_allow_private_networks,
        ca_file=settings.attachment_ca_file,
    )
