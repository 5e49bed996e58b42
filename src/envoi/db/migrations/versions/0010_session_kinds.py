"""Operator sessions say which door they open: the console's cookie or a SOAP Logon token.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sessions made so far count as SOAP's: a console login after the upgrade makes a new one.
    op.add_column("operator_sessions", sa.Column("kind", sa.String(length=16), server_default="soap", nullable=False))


def downgrade() -> None:
    op.drop_column("operator_sessions", "kind")
