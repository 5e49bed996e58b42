"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from envoi.db.migrate import pending_migrations
from envoi.db.registry import metadata
from envoi.runtime import Runtime


async def test_migrated_schema_matches_the_models(runtime: Runtime) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with runtime.engine.connect() as connection:
        assert await connection.run_sync(diff) == []
    assert await pending_migrations(runtime.engine) == []
