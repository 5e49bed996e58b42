"""The DKIM keys in use, for the console and the API: each with the DNS record to publish and the SMTP providers
that sign with it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from envoi.channels.dkim import DkimKey, DkimKeyError, load_keys
from envoi.providers.config import ProviderConfig, with_dkim
from envoi.providers.service import all_providers
from envoi.settings import Settings


@dataclass(frozen=True)
class KeyInUse:
    key: DkimKey
    providers: list[str]  # the SMTP providers that sign with it; none: mail goes to the outbox, unsigned


@dataclass(frozen=True)
class DkimKeys:
    keys: list[KeyInUse] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # key folders that cannot be used, and why


async def dkim_keys(session: AsyncSession, settings: Settings, static: Sequence[ProviderConfig]) -> DkimKeys:
    """The keys of ENVOI_DKIM_KEY_DIR and of SMTP providers that name a folder of their own."""
    folders: dict[Path, list[str]] = {settings.dkim_key_dir: []} if settings.dkim_key_dir else {}
    for config in await all_providers(session, static):
        folder = getattr(with_dkim(config, settings.dkim_key_dir).settings, "dkim_key_dir", None)
        if config.kind.name == "smtp" and folder is not None:
            folders.setdefault(folder, []).append(config.name)
    found = DkimKeys()
    for folder, providers in folders.items():
        try:
            keys = await asyncio.to_thread(load_keys, folder)
        except DkimKeyError as error:
            found.problems.append(str(error))
            continue
        found.keys.extend(KeyInUse(key, providers) for key in keys)
    found.keys.sort(key=lambda used: (used.key.domain, used.key.selector))
    return found
