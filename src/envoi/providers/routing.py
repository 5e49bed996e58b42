"""Which provider sends what: per slot (a channel, or a push platform) the default provider, and the backup that
takes over while the default keeps failing (failover); the outbox where nothing is configured.

A provider added, changed or removed through the API reaches every process without a restart: the change is
announced in its transaction (``announce_providers_changed``), and on PostgreSQL each process's listener reads
them again at once (``hear_provider_changes``). The revision is also polled every ``providers_refresh_seconds``
while messages go out: the fallback on SQLite, and for a NOTIFY lost while a listener reconnected. A replaced
provider's channel is closed once the sends it has in hand are done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.channels.base import Channel, InvalidAddress, Outcome, Retry, Sent
from envoi.channels.outbox import OutboxChannel
from envoi.channels.push import PushMessage
from envoi.db.listen import Listener
from envoi.db.notify import notify
from envoi.db.outage import store_unavailable
from envoi.delivery.receipts import ReceiptRecorder
from envoi.providers.config import (
    ProviderConfig,
    ProviderConfigError,
    parse_provider,
    static_providers,
    with_dkim,
)
from envoi.providers.kinds import SLOTS
from envoi.providers.models import Provider
from envoi.settings import Settings

log = structlog.get_logger(__name__)
CHANNEL = "envoi_providers"
REFUSED_BATCH = 20  # a batch at least this large whose every address is refused points at the provider


class LiveProvider:
    """A provider's channel, counted while in use so that it is closed only when idle."""

    def __init__(self, name: str, channel: Channel[Any], config: ProviderConfig | None = None):
        self.name = name
        self.config = config  # None for the built-in outbox
        self.channel = channel
        self.in_use = 0
        self.retired = False
        self._closed = False

    async def send_many(self, messages: Sequence[Any]) -> list[Outcome]:
        self.in_use += 1
        try:
            outcomes = await self.channel.send_many(messages)
        finally:
            self.in_use -= 1
            if self.retired and self.in_use == 0:
                await self.aclose()
        if len(outcomes) >= REFUSED_BATCH and all(isinstance(o, InvalidAddress) for o in outcomes):
            return self._misconfigured(outcomes)
        return [dataclasses.replace(o, provider=self.name) if isinstance(o, Sent) else o for o in outcomes]

    def _misconfigured(self, outcomes: list[Outcome]) -> list[Outcome]:
        """A provider refusing every address of a large batch is far more likely set up wrongly (an APNs topic
        or environment, another Firebase project) than sent that many dead addresses: quarantining them all
        would silence every recipient, so they are retried, and count toward failover."""
        said = getattr(outcomes[0], "reason", "")
        log.error("provider.refused_every_address", provider=self.name, count=len(outcomes), reason=said)
        reason = f"{self.name} refused all {len(outcomes)} addresses of a batch ({said}): check its configuration"
        return [Retry(reason)] * len(outcomes)

    async def retire(self) -> None:
        self.retired = True
        if self.in_use == 0:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.channel.aclose()


class Route:
    """One slot's sending: the default provider, failing over to the backup after ``failover_after``
    temporary failures in a row, for ``failover_seconds``; then the default is tried again."""

    def __init__(
        self, slot: str, outbox: LiveProvider, owner: ProviderSet, failover_after: int, failover_seconds: float
    ):
        self.slot = self.name = slot
        self.outbox = outbox
        self.owner = owner
        self.default: LiveProvider | None = None
        self.backup: LiveProvider | None = None
        self.failover_after = failover_after
        self.failover_seconds = failover_seconds
        self.failures = 0  # temporary failures in a row of the default provider
        self.default_down_until = 0.0

    async def send_many(self, messages: Sequence[Any]) -> list[Outcome]:
        await self.owner.refresh()
        default, backup = self.default, self.backup
        if default is None:
            return await (backup or self.outbox).send_many(messages)
        if backup is not None and time.monotonic() < self.default_down_until:
            return await backup.send_many(messages)
        outcomes = await default.send_many(messages)
        for outcome in outcomes:
            self.failures = self.failures + 1 if isinstance(outcome, Retry) else 0
        if backup is None or self.failures < self.failover_after:
            return outcomes
        self.default_down_until = time.monotonic() + self.failover_seconds
        log.warning(
            "provider.failover", slot=self.slot, default=default.name, backup=backup.name,
            failures=self.failures, seconds=self.failover_seconds,
        )  # fmt: skip
        again = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Retry)]
        retried = await backup.send_many([messages[i] for i in again])
        for i, outcome in zip(again, retried, strict=True):
            outcomes[i] = outcome
        return outcomes

    async def aclose(self) -> None:
        return None  # the provider set closes the providers


class PushRouter:
    """The push channel: each notification goes to the route of its platform."""

    name = "push"

    def __init__(self, routes: dict[str, Route]):
        self.routes = routes

    async def send_many(self, messages: Sequence[PushMessage]) -> list[Outcome]:
        by_platform: dict[str, list[int]] = {}
        for i, message in enumerate(messages):
            by_platform.setdefault(message.platform, []).append(i)
        outcomes: list[Outcome | None] = [None] * len(messages)
        for platform, indexes in by_platform.items():
            sent = await self.routes[f"push.{platform}"].send_many([messages[i] for i in indexes])
            for i, outcome in zip(indexes, sent, strict=True):
                outcomes[i] = outcome
        return [o for o in outcomes if o is not None]

    async def aclose(self) -> None:
        return None


class ProviderSet:
    """Every configured provider of this process, and the channels the worker sends through."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], recorder: ReceiptRecorder):
        self.sessionmaker = sessionmaker
        self.recorder = recorder
        self.refresh_seconds = settings.providers_refresh_seconds
        self.static = static_providers(settings)
        self.dkim_key_dir = settings.dkim_key_dir
        outbox = self.outbox = LiveProvider("outbox", OutboxChannel(sessionmaker))
        self.routes = {
            slot: Route(slot, outbox, self, settings.provider_failover_after, settings.provider_failover_seconds)
            for slot in SLOTS
        }
        push = PushRouter({slot: route for slot, route in self.routes.items() if slot.startswith("push.")})
        self.channels: dict[str, Channel[Any]] = {
            "email": self.routes["email"],
            "sms": self.routes["sms"],
            "push": push,
        }
        self.live: dict[str, LiveProvider] = {}
        self._revision: tuple[Any, ...] | None = None
        self._checked = -1e9
        self._lock = asyncio.Lock()
        self._apply(self.static)

    async def refresh(self, *, force: bool = False, at_most_every: float = 0.0) -> None:
        """Read the API's providers again if they changed (looked at every ``refresh_seconds`` at most; forced,
        at most every ``at_most_every`` seconds: callers anyone can make must not hammer the database)."""
        wait = at_most_every if force else self.refresh_seconds
        if time.monotonic() - self._checked < wait:
            return
        async with self._lock:
            if time.monotonic() - self._checked < wait:
                return
            try:
                async with self.sessionmaker() as session:
                    revision = (await session.execute(select(func.count(), func.max(Provider.updated_at)))).one()
                    if tuple(revision) != self._revision:
                        rows = (await session.scalars(select(Provider).order_by(Provider.id))).all()
                        await self._replace([*self.static, *stored_configs(rows)])
                        self._revision = tuple(revision)
            except Exception as error:  # the database is away: a batch in hand still goes out with what we have
                if (unavailable := store_unavailable(error)) is None:
                    raise
                log.warning("provider.refresh_failed", cause=unavailable.details["cause"])
            self._checked = time.monotonic()

    async def _replace(self, configs: list[ProviderConfig]) -> None:
        retired = self._apply(configs)
        for live in retired:
            await live.retire()

    def _apply(self, configs: list[ProviderConfig]) -> list[LiveProvider]:
        kept: dict[str, LiveProvider] = {}
        for config in (with_dkim(config, self.dkim_key_dir) for config in configs):
            current = self.live.get(config.name)
            if current is not None and current.config and current.config.fingerprint == config.fingerprint:
                current.config = config  # the role may have changed
                kept[config.name] = current
                continue
            handler = self.recorder.handler(config.kind.channel, config.name) if config.kind.receipts else None
            try:
                kept[config.name] = LiveProvider(config.name, config.kind.build(config.settings, handler), config)
            except Exception as error:  # a plugin that cannot start must not stop the others
                log.error("provider.unusable", provider=config.name, error=str(error))
        retired = [live for name, live in self.live.items() if kept.get(name) is not live]
        self.live = kept
        for slot, route in self.routes.items():
            roles = {live.config.role: live for live in kept.values() if live.config and live.config.kind.slot == slot}
            if route.default is not roles.get("default"):
                route.failures, route.default_down_until = 0, 0.0
            route.default, route.backup = roles.get("default"), roles.get("backup")
        return retired

    async def aclose(self) -> None:
        for live in [*self.live.values(), self.outbox]:
            await live.aclose()
        self.live = {}


async def announce_providers_changed(session: AsyncSession) -> None:
    """Once the caller's transaction commits (and only then), every process reads the providers again."""
    await notify(session, CHANNEL)


def hear_provider_changes(listener: Listener, providers: ProviderSet) -> None:
    """PostgreSQL: read the providers again when another process changed them, and after each reconnection."""
    listener.on(CHANNEL, lambda _payload: providers.refresh(force=True), lambda: providers.refresh(force=True))


def stored_configs(rows: Sequence[Provider]) -> list[ProviderConfig]:
    """The API's providers; one whose stored settings no longer parse is left out, loudly."""
    configs = []
    for row in rows:
        try:
            configs.append(parse_provider(row.name, row.kind, row.role, row.settings, "api"))
        except ProviderConfigError as error:
            log.error("provider.invalid", provider=row.name, problems=str(error))
    return configs
