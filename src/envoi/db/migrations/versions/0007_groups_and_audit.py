"""Security groups with their permissions (the built-in five), membership, API keys owned by an operator or a
service account with scopes, and the audit log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 04:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ALL = ["manage_operators", "edit_templates", "publish", "push_events", "view_events", "manage_workflows",
        "manage_deliveries"]  # fmt: skip
_BUILT_IN = [
    ("administrators", "Administrators", _ALL),
    ("template_editors", "Template editors", ["edit_templates", "publish", "view_events"]),
    ("workflow_supervisors", "Workflow supervisors", ["manage_workflows", "view_events"]),
    ("delivery_supervisors", "Delivery supervisors", ["manage_deliveries", "view_events"]),
    ("viewers", "Viewers", ["view_events"]),
]


def upgrade() -> None:
    groups = op.create_table(
        "security_groups",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("built_in", sa.Boolean(), nullable=False),
        sa.Column("permissions", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_security_groups_name")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        groups,
        [
            {"name": name, "label": label, "built_in": True, "permissions": permissions, "created_at": now}
            for name, label, permissions in _BUILT_IN
        ],
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", _ID, nullable=False),
        sa.Column("operator_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["security_groups.id"], name=op.f("fk_group_members_group_id_security_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_group_members_operator_id_operators"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", "operator_id", name=op.f("pk_group_members")),
    )  # fmt: skip
    op.create_index(op.f("ix_group_members_operator_id"), "group_members", ["operator_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=400), nullable=False),
        sa.Column("operator_id", _ID, nullable=True),
        sa.Column("key_id", _ID, nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=False),
        sa.Column("details", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"], unique=False)
    # api_keys: nothing points at it, so rebuilding it on SQLite (batch mode) deletes nothing elsewhere.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operator_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("scopes", _JSON, nullable=True))
        batch_op.create_index(batch_op.f("ix_api_keys_operator_id"), ["operator_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_operator_id_operators"), "operators", ["operator_id"], ["id"], ondelete="CASCADE"
        )
    keys = sa.table("api_keys", sa.column("scopes", _JSON))
    op.execute(keys.update().values(scopes=_ALL))  # the keys made so far could do everything: they still can
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("scopes", existing_type=_JSON, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_operator_id_operators"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_keys_operator_id"))
        batch_op.drop_column("scopes")
        batch_op.drop_column("operator_id")
    op.drop_index("ix_audit_log_object", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_group_members_operator_id"), table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("security_groups")
