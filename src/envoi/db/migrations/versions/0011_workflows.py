"""Workflows, their runs and steps, hourly statistics; the factory workflow template and Envoi's technical
workflows (purge, lease recovery, hourly statistics), started.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 07:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import envoi.db.base

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TIME = sa.DateTime(timezone=True)


def _scheduled(cron: str, kind: str) -> dict[str, object]:
    return {
        "activities": [
            {"name": "start", "kind": "scheduler", "settings": {"cron": cron, "timezone": "UTC"}, "next": [kind]},
            {"name": kind, "kind": kind, "next": ["end"]},
            {"name": "end", "kind": "end"},
        ]
    }


# name, label, is_template, technical, state, supervisors, definition
_SHIPPED = [
    (
        "new_workflow",
        "New workflow",
        True,
        False,
        "stopped",
        None,  # notifications are off in the factory template: add supervisors to turn them on
        {
            "activities": [
                {
                    "name": "start",
                    "kind": "scheduler",
                    "settings": {"cron": "0 6 * * *", "timezone": "UTC"},
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ]
        },
    ),
    (
        "purge",
        "Purge old events and runs",
        False,
        True,
        "started",
        "workflow_supervisors",
        _scheduled("30 3 * * *", "purge"),
    ),
    (
        "recover_leases",
        "Return abandoned events to the queue",
        False,
        True,
        "started",
        "workflow_supervisors",
        _scheduled("*/5 * * * *", "recover_leases"),
    ),
    (
        "hourly_statistics",
        "Hourly statistics",
        False,
        True,
        "started",
        "workflow_supervisors",
        _scheduled("5 * * * *", "hourly_statistics"),
    ),
]


def upgrade() -> None:
    op.create_table(
        "hourly_statistics",
        sa.Column("hour", _TIME, nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("ignored", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "event_type", "channel", name=op.f("pk_hourly_statistics")),
    )
    op.create_table(
        "workflows",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("is_template", sa.Boolean(), nullable=False),
        sa.Column("factory", sa.Boolean(), nullable=False),
        sa.Column("technical", sa.Boolean(), nullable=False),
        sa.Column("template_id", _ID, nullable=True),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("supervisors", sa.String(length=100), nullable=True),
        sa.Column("on_error", sa.String(length=16), nullable=False),
        sa.Column("error_threshold", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("next_run_at", _TIME, nullable=True),
        sa.Column("consecutive_errors", sa.Integer(), nullable=False),
        sa.Column("paused_at", _TIME, nullable=True),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("last_reminder_at", _TIME, nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"], ["workflows.id"], name=op.f("fk_workflows_template_id_workflows"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
    )
    op.create_index(
        "ix_workflows_next_run_at",
        "workflows",
        ["next_run_at"],
        unique=False,
        postgresql_where=sa.text("state = 'started'"),
        sqlite_where=sa.text("state = 'started'"),
    )
    op.create_index("uq_workflows_is_template_name", "workflows", ["is_template", "name"], unique=True)
    op.create_table(
        "workflow_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("workflow_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("pending", _JSON, nullable=False),
        sa.Column("resume_at", _TIME, nullable=True),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("failed_activity", sa.String(length=100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_workflow_runs_workflow_id_workflows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_runs")),
    )
    op.create_index(
        "ix_workflow_runs_resume_at",
        "workflow_runs",
        ["resume_at"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    op.create_index(op.f("ix_workflow_runs_workflow_id"), "workflow_runs", ["workflow_id"], unique=False)
    op.create_table(
        "workflow_steps",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("activity", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME, nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("logs", _JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["workflow_runs.id"], name=op.f("fk_workflow_steps_run_id_workflow_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_steps")),
    )
    op.create_index(op.f("ix_workflow_steps_run_id"), "workflow_steps", ["run_id"], unique=False)
    _ship()


def _ship() -> None:
    columns = ("name", "label", "is_template", "technical", "state", "supervisors", "definition")
    workflows = sa.table(
        "workflows",
        *(sa.column(c) for c in columns[:-1]),
        sa.column("definition", envoi.db.base.Json),
        sa.column("factory", sa.Boolean()),
        sa.column("on_error", sa.String()),
        sa.column("error_threshold", sa.Integer()),
        sa.column("consecutive_errors", sa.Integer()),
        sa.column("reminders_sent", sa.Integer()),
        sa.column("created_by", sa.String()),
        sa.column("created_at", envoi.db.base.UTCDateTime()),
        sa.column("updated_at", envoi.db.base.UTCDateTime()),
    )
    now = datetime.now(UTC)
    common = {
        "factory": True,
        "on_error": "suspend",
        "error_threshold": 1,
        "consecutive_errors": 0,
        "reminders_sent": 0,
        "created_by": "envoi",
        "created_at": now,
        "updated_at": now,
    }
    op.bulk_insert(workflows, [dict(zip(columns, row, strict=True)) | common for row in _SHIPPED])


def downgrade() -> None:
    op.drop_index(op.f("ix_workflow_steps_run_id"), table_name="workflow_steps")
    op.drop_table("workflow_steps")
    op.drop_index(op.f("ix_workflow_runs_workflow_id"), table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_resume_at", table_name="workflow_runs")
    op.drop_table("workflow_runs")
    op.drop_index("uq_workflows_is_template_name", table_name="workflows")
    op.drop_index("ix_workflows_next_run_at", table_name="workflows")
    op.drop_table("workflows")
    op.drop_table("hourly_statistics")
