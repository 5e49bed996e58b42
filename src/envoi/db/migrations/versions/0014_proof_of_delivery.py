"""Proof of delivery: bounces, the reports' timestamps and queue samples, threshold states, and an index for
per template version figures.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 05:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import envoi.db.base

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = envoi.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.add_column("events", sa.Column("claimed_at", _TIME, nullable=True))
    op.add_column("events", sa.Column("ended_at", _TIME, nullable=True))
    op.add_column("messages", sa.Column("send_started_at", _TIME, nullable=True))
    op.create_index("ix_messages_template_version_id", "messages", ["template_version_id"])
    op.create_table(
        "bounces",
        sa.Column("id", _ID, nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("event_id", _ID, nullable=True),
        sa.Column("address", sa.String(length=envoi.db.base.ADDRESS_LENGTH), nullable=True),
        sa.Column("status_code", sa.String(length=16), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("reporter", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_bounces_message_id_messages"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounces")),
    )
    op.create_index(op.f("ix_bounces_message_id"), "bounces", ["message_id"])
    op.create_index(op.f("ix_bounces_event_id"), "bounces", ["event_id"])
    op.create_index("ix_bounces_address_received_at", "bounces", ["address", "received_at"])
    op.create_table(
        "queue_samples",
        sa.Column("at", _TIME, nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("processing", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("at", "event_type", "channel", name=op.f("pk_queue_samples")),
    )
    op.create_table(
        "threshold_states",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("changed_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_threshold_states")),
    )


def downgrade() -> None:
    op.drop_table("threshold_states")
    op.drop_table("queue_samples")
    op.drop_table("bounces")
    op.drop_index("ix_messages_template_version_id", table_name="messages")
    # Plain DROP COLUMN (SQLite 3.35+): a batch rebuild of events would cascade-delete its messages.
    op.drop_column("messages", "send_started_at")
    op.drop_column("events", "ended_at")
    op.drop_column("events", "claimed_at")
