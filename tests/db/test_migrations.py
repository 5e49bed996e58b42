"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from envoi.db.base import Json
from envoi.db.engine import create_engine
from envoi.db.migrate import alembic_config, pending_migrations, upgrade_database
from envoi.db.partitions import in_the_models
from envoi.db.registry import metadata
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import BACKENDS, pg_database


async def test_migrated_schema_matches_the_models(runtime: Runtime) -> None:
    def diff(connection: Connection) -> list[object]:
        opts = {"compare_type": True, "include_object": in_the_models}
        context = MigrationContext.configure(connection, opts=opts)
        return list(compare_metadata(context, metadata))

    async with runtime.engine.connect() as connection:
        assert await connection.run_sync(diff) == []
    assert await pending_migrations(runtime.engine) == []


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with pg_database("envoi_empty") as url:
        yield url


async def test_templates_made_before_0003_keep_their_content_both_ways(empty_database_url: str, tmp_path: Path) -> None:
    """0003 moved a template's email under "email", beside its variants; a downgrade moves it back."""
    engine = create_engine(Settings(database_url=empty_database_url, data_dir=tmp_path))
    email = {"from": "shop@example.com", "subject": "Order {{ ctx.orderId }}", "text": "Hi"}
    now = datetime.now(UTC)
    templates = sa.table("templates", sa.column("content", Json))
    versions = sa.table("template_versions", sa.column("content", Json))
    try:
        await upgrade_database(engine, "0002")
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO event_types (id, name, label, created_at, updated_at)"
                    " VALUES (1, 'order', 'Order', :now, :now)"
                ),
                {"now": now},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO templates (id, name, event_type, channel, state, content, created_at, updated_at)"
                    " VALUES (1, 'Order', 'order', 'email', 'published', :content, :now, :now)"
                ).bindparams(sa.bindparam("content", type_=Json)),
                {"content": email, "now": now},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO template_versions (id, template_id, number, content, published_at)"
                    " VALUES (1, 1, 1, :content, :now)"
                ).bindparams(sa.bindparam("content", type_=Json)),
                {"content": email, "now": now},
            )
        await upgrade_database(engine)

        async with engine.connect() as connection:
            draft = (await connection.execute(sa.select(templates.c.content))).scalar_one()
            frozen = (await connection.execute(sa.select(versions.c.content))).scalar_one()
        assert draft == {"email": email, "variants": {}, "language": "en", "layout": None}
        assert frozen == draft | {"snippets": {}}

        def downgrade(connection: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")

        async with engine.begin() as connection:
            await connection.run_sync(downgrade)
        async with engine.connect() as connection:
            assert (await connection.execute(sa.select(templates.c.content))).scalar_one() == email
            # Downgrades never rebuild a table: on SQLite that would cascade-delete the rows referring to it.
            assert (await connection.execute(sa.select(versions.c.content))).scalar_one() == email
    finally:
        await engine.dispose()
