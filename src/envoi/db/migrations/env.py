"""Alembic environment: runs on the connection handed over by envoi.db.migrate (sync, inside run_sync)."""

from __future__ import annotations

from alembic import context

from envoi.db.partitions import in_the_models
from envoi.db.registry import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with 'envoi migrate' (or envoi.db.migrate.upgrade_database)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=in_the_models,
)
with context.begin_transaction():
    context.run_migrations()
