"""Apply Alembic migrations from code: ``envoi serve`` and ``envoi migrate`` both call this."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from envoi.db.partitions import ensure_partitions

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK = 0x656E_6D69  # pg_advisory_xact_lock key ("enmi"): one process migrates at a time


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade_database(engine: AsyncEngine, revision: str = "head") -> None:
    def upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several hosts' envoi serve (or migrate) starting together: the first migrates, the others wait for
            # its commit and then find nothing left to do, instead of racing on the same DDL.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        await connection.run_sync(upgrade)
        # The coming days' partitions (PostgreSQL), should the daily purge have stopped running for a while.
        await connection.run_sync(ensure_partitions, datetime.now(UTC).date())


async def pending_migrations(engine: AsyncEngine) -> list[str]:
    """Revisions not yet applied (empty when the schema is current)."""

    def pending(connection: Connection) -> list[str]:
        current = MigrationContext.configure(connection).get_current_heads()
        script = ScriptDirectory.from_config(alembic_config())
        return [r.revision for r in script.iterate_revisions("heads", current or "base")] if script else []

    async with engine.connect() as connection:
        return await connection.run_sync(pending)
