"""Idempotency keys in a table of their own; on PostgreSQL, events, messages and the timeline partitioned by day.

The tables are not copied: each becomes the first partition (``<table>_before_<tomorrow>``) of a new
partitioned table of the same name. That partition's primary key is rebuilt with the day column in it and it is
checked once against its bound: both read the whole table while writes wait (about a second per million rows).
Foreign keys into the three tables are dropped on PostgreSQL (see envoi.db.partitions).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-12 09:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from envoi.db.partitions import NOT_ON_POSTGRESQL, PARTITIONED, ensure_partitions, midnight

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)
# fk name -> (table, column, referred table, ON DELETE)
_FOREIGN_KEYS = {
    "fk_messages_event_id_events": ("messages", "event_id", "events", "CASCADE"),
    "fk_event_status_changes_event_id_events": ("event_status_changes", "event_id", "events", "CASCADE"),
    "fk_tracking_hits_message_id_messages": ("tracking_hits", "message_id", "messages", "CASCADE"),
    "fk_bounces_message_id_messages": ("bounces", "message_id", "messages", "SET NULL"),
}
assert set(_FOREIGN_KEYS) == NOT_ON_POSTGRESQL


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("event_id", _ID, autoincrement=False, nullable=False),
        sa.Column("api_key_id", _ID, nullable=True),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_idempotency_keys_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.execute(
        "INSERT INTO idempotency_keys (event_id, api_key_id, key, request_hash, created_at)"
        " SELECT id, api_key_id, idempotency_key, request_hash, created_at FROM events"
        " WHERE idempotency_key IS NOT NULL"
    )
    op.create_index("uq_idempotency_keys", "idempotency_keys", ["api_key_id", "key"], unique=True)
    op.drop_index("uq_events_idempotency", table_name="events")
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (table, *_rest) in _FOREIGN_KEYS.items():
        op.drop_constraint(name, table, type_="foreignkey")
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    for table, column in PARTITIONED.items():
        _partition(table, column, tomorrow)
    ensure_partitions(op.get_bind(), datetime.now(UTC).date())


def _definitions(table: str) -> tuple[list[str], list[str]]:
    """A table's index definitions (but its primary key's) and its foreign keys' ADD CONSTRAINT clauses."""
    bind = op.get_bind()
    indexes = bind.execute(
        sa.text(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :t"
            " AND indexname <> :pk"
        ),
        {"t": table, "pk": f"pk_{table}"},
    ).scalars()
    keys = bind.execute(
        sa.text(
            "SELECT format('ADD CONSTRAINT %I %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint"
            " WHERE conrelid = to_regclass(:t) AND contype = 'f'"
        ),
        {"t": table},
    ).scalars()
    # A partitioned table's are "ON ONLY" it: made again on a table, they must reach its partitions.
    return [i.replace(" ON ONLY ", " ON ", 1) for i in indexes], list(keys)


def _recreate(table: str, indexes: list[str], keys: list[str]) -> None:
    for definition in indexes:
        op.execute(definition)
    for clause in keys:
        op.execute(f"ALTER TABLE {table} {clause}")


def _partition(table: str, column: str, first_day: date) -> None:
    legacy = f"{table}_before_{first_day:%Y%m%d}"
    indexes, keys = _definitions(table)
    names = op.get_bind().execute(
        sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t AND indexname <> :pk"),
        {"t": table, "pk": f"pk_{table}"},
    )
    for number, name in enumerate(names.scalars().all()):  # index names are the schema's: the new table's now
        op.execute(f'ALTER INDEX "{name}" RENAME TO {legacy}_{number}')
    op.execute(f"ALTER TABLE {table} RENAME TO {legacy}")
    op.execute(f"ALTER TABLE {legacy} DROP CONSTRAINT pk_{table}")
    op.execute(f"ALTER TABLE {legacy} ADD CONSTRAINT {legacy}_pkey PRIMARY KEY (id, {column})")
    op.execute(f"CREATE TABLE {table} (LIKE {legacy} INCLUDING DEFAULTS) PARTITION BY RANGE ({column})")
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")  # else dropping the first partition drops it
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id, {column})")
    _recreate(table, indexes, keys)
    # Its indexes and foreign keys match the new table's: attaching adopts them instead of building new ones.
    op.execute(
        f"ALTER TABLE {table} ATTACH PARTITION {legacy}"
        f" FOR VALUES FROM (MINVALUE) TO ('{midnight(first_day).isoformat()}')"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in PARTITIONED:
            _unpartition(table)
        for name, (table, column, referred, ondelete) in _FOREIGN_KEYS.items():
            op.create_foreign_key(name, table, referred, [column], ["id"], ondelete=ondelete)
    op.create_index(
        "uq_events_idempotency",
        "events",
        ["api_key_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_table("idempotency_keys")


def _unpartition(table: str) -> None:
    """Back to one plain table: a copy, since a partitioned table cannot become a plain one in place."""
    indexes, keys = _definitions(table)
    op.execute(f"CREATE TABLE {table}_plain (LIKE {table} INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {table}_plain SELECT * FROM {table}")  # noqa: S608 (fixed names)
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}_plain.id")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_plain RENAME TO {table}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id)")
    _recreate(table, indexes, keys)
