"""A provider's configuration, from wherever it comes: the environment (``ENVOI_SMTP_URL``...), the settings
file (``ENVOI_PROVIDERS_FILE``, TOML) or the database (the API)."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, ValidationError

from envoi.channels.dkim import DkimKeyError, load_keys
from envoi.errors import Problem, input_problems
from envoi.providers.kinds import KINDS, ROLES, Kind
from envoi.settings import Settings

Source = Literal["environment", "file", "api"]
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: Kind
    settings: BaseModel
    role: str | None
    source: Source

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything that makes the channel does, secrets included."""
        return json.dumps([self.kind.name, revealed(self.settings)], sort_keys=True, default=str)


class ProviderConfigError(ValueError):
    """A provider's configuration is wrong; ``problems`` lists (field, message) for each mistake."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


def revealed(settings: BaseModel) -> dict[str, Any]:
    """The settings as JSON with secrets in clear: for storage only, never for display."""
    dumped: dict[str, Any] = settings.model_dump(mode="json")
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            dumped[name] = value.get_secret_value()
    return dumped


def parse_provider(
    name: str, kind_name: str, role: str | None, fields: Mapping[str, Any], source: Source
) -> ProviderConfig:
    """Raises ProviderConfigError with every problem, fields named as the API names them."""
    problems: list[Problem] = []
    if not NAME.match(name):
        problems.append(("name", "lowercase letters, digits, - and _, at most 64, starting with a letter or digit"))
    if role is not None and role not in ROLES:
        problems.append(("role", "default, backup, or null"))
    kind = KINDS.get(kind_name)
    if kind is None:
        problems.append(("kind", f"one of {', '.join(KINDS)}"))
        raise ProviderConfigError(problems)
    try:
        settings = kind.parse(fields)
    except ValidationError as error:
        problems += [(f"settings.{field}", message) for field, message in input_problems(error.errors())]
    except ValueError as error:
        problems.append(("settings", str(error)))
    if problems:
        raise ProviderConfigError(problems)
    return ProviderConfig(name, kind, settings, role, source)


def environment_providers(settings: Settings) -> list[ProviderConfig]:
    """``ENVOI_SMTP_URL`` and ``ENVOI_SMPP_URL``: the default providers named ``smtp`` and ``smpp``."""
    found = []
    if settings.smtp_url is not None:
        fields = {
            "url": settings.smtp_url.get_secret_value(),
            "ca_file": settings.smtp_ca_file,
            "timeout": settings.smtp_timeout,
            "connections": settings.smtp_connections,
        }
        found.append(_from_environment("smtp", "ENVOI_SMTP_URL", fields))
    if settings.smpp_url is not None:
        found.append(_from_environment("smpp", "ENVOI_SMPP_URL", {"url": settings.smpp_url.get_secret_value()}))
    return found


def _from_environment(kind: str, variable: str, fields: dict[str, Any]) -> ProviderConfig:
    try:
        return parse_provider(kind, kind, "default", fields, "environment")
    except ProviderConfigError as error:
        raise ProviderConfigError([(variable, str(error))]) from None


def file_providers(path: Path) -> list[ProviderConfig]:
    """Every ``[providers.<name>]`` table of a TOML file: ``kind``, ``role`` and the kind's settings."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ProviderConfigError([(str(path), f"cannot read it: {error}")]) from None
    tables = document.get("providers", {})
    unknown = set(document) - {"providers"}
    if unknown or not isinstance(tables, dict):
        raise ProviderConfigError([(str(path), "only [providers.<name>] tables are expected")])
    found, problems = [], []
    for name, table in tables.items():
        fields = dict(table) if isinstance(table, dict) else {}
        kind, role = str(fields.pop("kind", "")), fields.pop("role", None)
        try:
            found.append(parse_provider(name, kind, role, fields, "file"))
        except ProviderConfigError as error:
            problems += [(f"{path}: providers.{name}.{field}", message) for field, message in error.problems]
    if problems:
        raise ProviderConfigError(problems)
    return found


def check_roles(configs: Iterable[ProviderConfig]) -> list[Problem]:
    """At most one default and one backup per slot; names unique."""
    taken: dict[tuple[str, str], str] = {}
    names: set[str] = set()
    problems = []
    for config in configs:
        if config.name in names:
            problems.append(("name", f"two providers are named {config.name!r}"))
        names.add(config.name)
        if config.role is None:
            continue
        holder = taken.setdefault((config.kind.slot, config.role), config.name)
        if holder != config.name:
            problems.append(("role", f"{holder!r} is already the {config.role} provider for {config.kind.slot}"))
    return problems


def static_providers(settings: Settings) -> list[ProviderConfig]:
    """The providers of the environment and the settings file, checked together (and the DKIM keys)."""
    if settings.dkim_key_dir is not None:
        try:
            load_keys(settings.dkim_key_dir)  # a bad key stops Envoi now, not its SMTP providers later
        except DkimKeyError as error:
            raise ProviderConfigError([("ENVOI_DKIM_KEY_DIR", str(error))]) from None
    configs = environment_providers(settings)
    if settings.providers_file is not None:
        configs += file_providers(settings.providers_file)
    problems = check_roles(configs)
    if problems:
        raise ProviderConfigError(problems)
    return configs


def with_dkim(config: ProviderConfig, key_dir: Path | None) -> ProviderConfig:
    """An SMTP provider with no DKIM key folder of its own signs with those of ENVOI_DKIM_KEY_DIR: keys belong to
    sender domains, whichever relay carries their mail."""
    if key_dir is None or config.kind.name != "smtp" or getattr(config.settings, "dkim_key_dir", None) is not None:
        return config
    return dataclasses.replace(config, settings=config.settings.model_copy(update={"dkim_key_dir": key_dir}))
