"""What a running process shares: settings, the database, the channels and the worker's doorbell."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from envoi.channels.base import Channel, EmailChannel, SmsChannel
from envoi.channels.outbox import OutboxChannel
from envoi.channels.smpp import SmppChannel, SmppSettings
from envoi.channels.smtp import SmtpChannel, SmtpSettings
from envoi.db.engine import create_engine, create_sessionmaker
from envoi.db.notify import Wakeup
from envoi.delivery.receipts import ReceiptRecorder
from envoi.events.group import IngestGroup
from envoi.outbound import OutboundClient
from envoi.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    channels: dict[str, Channel[Any]]
    receipts: ReceiptRecorder | None = None  # closed after the channels that feed it
    wakeup: Wakeup = field(default_factory=Wakeup)
    ingest: IngestGroup = field(init=False)
    outbound: OutboundClient = field(init=False)  # fetches attachments

    def __post_init__(self) -> None:
        self.ingest = IngestGroup(self.sessionmaker, self.wakeup, region=self.settings.default_region)
        self.outbound = attachment_fetcher(self.settings)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        receipts = ReceiptRecorder(sessionmaker, "sms")
        channels: dict[str, Channel[Any]] = {
            "email": email_channel(settings, sessionmaker),
            "sms": sms_channel(settings, sessionmaker, receipts),
        }
        return cls(settings, engine, sessionmaker, channels, receipts)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """The unit of work of a request or a command: commits on success, rolls back on any error."""
        async with self.sessionmaker.begin() as session:
            yield session

    async def aclose(self) -> None:
        await self.ingest.aclose()
        for channel in self.channels.values():
            await channel.aclose()
        if self.receipts is not None:
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


def email_channel(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> EmailChannel:
    if settings.smtp_url is None:
        return OutboxChannel(sessionmaker)
    return SmtpChannel(
        SmtpSettings.from_url(
            settings.smtp_url.get_secret_value(),
            ca_file=settings.smtp_ca_file,
            timeout=settings.smtp_timeout,
            connections=settings.smtp_connections,
        )
    )


def sms_channel(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], receipts: ReceiptRecorder
) -> SmsChannel:
    if settings.smpp_url is None:
        return OutboxChannel(sessionmaker)
    return SmppChannel(SmppSettings.from_url(settings.smpp_url.get_secret_value()), on_receipt=receipts)
