"""The last failure-rate alert of each event type, and an index on the timeline's time for the check.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failure_alerts",
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event_type", name=op.f("pk_failure_alerts")),
    )
    op.create_index("ix_event_status_changes_at", "event_status_changes", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_event_status_changes_at", table_name="event_status_changes")
    op.drop_table("failure_alerts")
