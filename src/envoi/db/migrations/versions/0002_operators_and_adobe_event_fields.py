"""Operators and their session tokens (SOAP Logon), and the Adobe event attributes events keep.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:00:53.726263
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import envoi.db.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", envoi.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("email", name=op.f("uq_operators_email")),
    )
    op.create_table(
        "operator_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", envoi.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", envoi.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", envoi.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_operator_sessions_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_operator_sessions_token_hash")),
    )
    with op.batch_alter_table("operator_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operator_sessions_operator_id"), ["operator_id"], unique=False)

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=35), nullable=True))
        batch_op.add_column(sa.Column("email_format", sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column("registration_token", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("mobile_app_uuid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("correlation_id", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("correlation_id")
        batch_op.drop_column("mobile_app_uuid")
        batch_op.drop_column("registration_token")
        batch_op.drop_column("email_format")
        batch_op.drop_column("country")

    with op.batch_alter_table("operator_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_sessions_operator_id"))

    op.drop_table("operator_sessions")
    op.drop_table("operators")
