"""Push: an event's and a seed's platform; addresses long enough for a Web Push subscription; the outbox keeps
a push notification's data, badge and sound.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 04:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Tables no foreign key points at: rebuilding them on SQLite (batch mode) deletes nothing elsewhere.
_ADDRESSES = {"messages": "address", "quarantine": "address", "outbox": "recipient", "template_seeds": "address"}


def upgrade() -> None:
    op.add_column("events", sa.Column("platform", sa.String(length=16), nullable=True))
    op.add_column("template_seeds", sa.Column("platform", sa.String(length=16), nullable=True))
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.add_column("outbox", sa.Column("push", json, nullable=True))
    for table, column in _ADDRESSES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=320), type_=sa.String(length=2000))


def downgrade() -> None:
    for table, column in _ADDRESSES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=2000), type_=sa.String(length=320))
    op.drop_column("outbox", "push")
    op.drop_column("template_seeds", "platform")
    op.drop_column("events", "platform")
