"""Rate buckets shared by every API process, and an index that finds a dead worker's events first.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-11 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("counted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_buckets")),
    )
    # Small (only the events being processed), but its build reads the whole events table while holding off
    # writes: about a second per million events.
    op.create_index(
        "ix_events_leases",
        "events",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 1"),
        sqlite_where=sa.text("status = 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_leases", table_name="events")
    op.drop_table("rate_buckets")
