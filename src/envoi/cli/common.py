"""What every command shares: settings, the console it prints to, and one unit of work on the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.migrate import upgrade_database
from envoi.errors import EnvoiError
from envoi.observability.logging import configure_logging
from envoi.providers.config import ProviderConfigError
from envoi.runtime import Runtime
from envoi.settings import Settings

T = TypeVar("T")
console = Console()


def load_settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def open_runtime(settings: Settings) -> Runtime:
    """The process's runtime; a provider configured wrongly stops the command with what is wrong."""
    try:
        return Runtime.create(settings)
    except ProviderConfigError as error:
        raise misconfigured(error) from None


def misconfigured(error: ProviderConfigError) -> typer.Exit:
    console.print(f"[red]Provider configuration: {error}[/]", soft_wrap=True, highlight=False)
    return typer.Exit(2)


def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, migrate: bool = False) -> T:
    """Run ``work`` in one transaction (after bringing the schema up to date with ``migrate``); a refusal the
    user can act on (an EnvoiError) is printed in red and the command exits with status 1."""

    async def run() -> T:
        runtime = open_runtime(settings)
        try:
            if migrate:
                await upgrade_database(runtime.engine)
            async with runtime.transaction() as session:
                return await work(session)
        finally:
            await runtime.aclose()

    try:
        return asyncio.run(run())
    except EnvoiError as error:
        console.print(f"[red]{error.message}[/]")
        raise typer.Exit(1) from None
