"""Providers configured through the API: created, changed and removed in the caller's transaction.

Those of the environment and the settings file are shown beside them but only their owner's files change them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import utcnow
from envoi.errors import Conflict, NotFound, invalid
from envoi.providers.config import ProviderConfig, ProviderConfigError, check_roles, parse_provider, revealed
from envoi.providers.kinds import KINDS
from envoi.providers.models import Provider
from envoi.providers.routing import stored_configs

_SOURCES = {"environment": "the environment (ENVOI_* variables)", "file": "the providers file (ENVOI_PROVIDERS_FILE)"}
MASK = "**********"  # a secret as the API shows it (pydantic's SecretStr)


async def all_providers(session: AsyncSession, static: Sequence[ProviderConfig]) -> list[ProviderConfig]:
    rows = (await session.scalars(select(Provider).order_by(Provider.id))).all()
    return [*static, *stored_configs(rows)]


async def find_provider(session: AsyncSession, static: Sequence[ProviderConfig], name: str) -> ProviderConfig:
    for config in await all_providers(session, static):
        if config.name == name:
            return config
    raise NotFound(f"no provider is named {name!r}", field="name")


async def create_provider(
    session: AsyncSession,
    static: Sequence[ProviderConfig],
    name: str,
    kind: str,
    role: str | None,
    settings: Mapping[str, Any],
    files_dir: Path | None = None,
) -> ProviderConfig:
    """``files_dir``: the only folder whose files the provider may name (ENVOI_PROVIDER_FILES_DIR)."""
    config = _parsed(name, kind, role, settings, files_dir)
    current = await all_providers(session, static)
    if any(other.name == name for other in current):
        raise Conflict(f"a provider is already named {name!r}", field="name")
    _check_roles([*current, config])
    now = utcnow()
    session.add(
        Provider(name=name, kind=kind, role=role, settings=revealed(config.settings), created_at=now, updated_at=now)
    )
    await session.flush()
    return config


async def update_provider(
    session: AsyncSession,
    static: Sequence[ProviderConfig],
    name: str,
    changes: Mapping[str, Any],
    files_dir: Path | None = None,
) -> ProviderConfig:
    """``changes`` may hold ``role`` (null to make it unused) and ``settings`` (only the fields given change;
    a secret left out or sent back masked keeps its value)."""
    row = await _own_row(session, static, name)
    fields = dict(row.settings)
    given = changes.get("settings") or {}
    secrets = _secret_fields(row.kind)
    moved = [key for key, value in given.items() if _is_address(key) and value != row.settings.get(key)]
    kept = [key for key in secrets if key in row.settings and given.get(key, MASK) == MASK]
    if moved and kept:
        # A kept secret must not follow the provider to an address the caller chose: send it again.
        raise invalid([(f"settings.{key}", f"send it again: {', '.join(sorted(moved))} changes") for key in kept])
    for key, value in given.items():
        if value != MASK:
            fields[key] = value
    role = changes.get("role", row.role)
    config = _parsed(name, row.kind, role, fields, files_dir)
    _check_roles([config if other.name == name else other for other in await all_providers(session, static)])
    row.role, row.settings, row.updated_at = role, revealed(config.settings), utcnow()
    await session.flush()
    return config


async def delete_provider(session: AsyncSession, static: Sequence[ProviderConfig], name: str) -> None:
    await _own_row(session, static, name)
    await session.execute(delete(Provider).where(Provider.name == name))


async def _own_row(session: AsyncSession, static: Sequence[ProviderConfig], name: str) -> Provider:
    for config in static:
        if config.name == name:
            where = _SOURCES.get(config.source, config.source)
            raise Conflict(f"{name!r} is configured in {where}: change it there", field="name")
    row = await session.scalar(select(Provider).where(Provider.name == name).with_for_update())
    if row is None:
        raise NotFound(f"no provider is named {name!r}", field="name")
    return row


def _is_address(field: str) -> bool:
    """Settings that say where a provider's requests (and so its secrets) go."""
    return field.endswith(("url", "uri")) or field in ("host", "port", "ca_file")


def _secret_fields(kind: str) -> set[str]:
    model = KINDS[kind].settings_model()
    return {name for name, field in model.model_fields.items() if "SecretStr" in str(field.annotation)}


def _parsed(
    name: str, kind: str, role: str | None, settings: Mapping[str, Any], files_dir: Path | None
) -> ProviderConfig:
    try:
        config = parse_provider(name, kind, role, settings, "api")
    except ProviderConfigError as error:
        raise invalid(error.problems) from None
    problems = [(f"settings.{field}", problem) for field, problem in _outside(config, files_dir)]
    if problems:
        raise invalid(problems)
    return config


def _outside(config: ProviderConfig, files_dir: Path | None) -> list[tuple[str, str]]:
    """The path settings that lead out of ``files_dir``: whoever may manage providers must not make the server read
    a file of their choice (a key, a password file) as a CA bundle or a DKIM key folder."""
    found = []
    for field, value in config.settings:
        if not isinstance(value, Path):
            continue
        if files_dir is None:
            found.append((field, "files are named in the providers file or the environment, not through the API "
                          "(or set ENVOI_PROVIDER_FILES_DIR and put the file there)"))  # fmt: skip
        elif not value.resolve().is_relative_to(files_dir.resolve()):
            found.append((field, f"must be inside ENVOI_PROVIDER_FILES_DIR ({files_dir})"))
    return found


def _check_roles(configs: list[ProviderConfig]) -> None:
    problems = check_roles(configs)
    if problems:
        field, message = problems[0]
        raise Conflict(message, field=field)
