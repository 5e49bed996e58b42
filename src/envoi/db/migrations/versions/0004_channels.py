"""Channels: an event type's default and fallback channel; messages found by their provider's id (receipts).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 01:35:38.036471
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_types", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_channel", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("fallback_channel", sa.String(length=16), nullable=True))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_channel_provider_id", ["channel", "provider_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_channel_provider_id")

    op.drop_column("event_types", "fallback_channel")
    op.drop_column("event_types", "default_channel")
