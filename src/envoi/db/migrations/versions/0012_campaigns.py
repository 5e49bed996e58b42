"""Profiles, audiences, email deliveries with A/B tests, tracking hits; events reconciled with profiles;
the factory delivery templates ("Email", "A/B test email": notifications on) and the technical workflow that
launches scheduled deliveries and ends A/B tests, started.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 23:45:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import envoi.db.base

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TIME = envoi.db.base.UTCDateTime(timezone=True)


def _created() -> list[sa.Column[datetime]]:
    return [sa.Column("created_at", _TIME, nullable=False), sa.Column("updated_at", _TIME, nullable=False)]


def upgrade() -> None:
    op.create_table(
        "audiences",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("filters", _JSON, nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        *_created(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
        sa.UniqueConstraint("name", name=op.f("uq_audiences_name")),
    )
    op.create_table(
        "profiles",
        sa.Column("id", _ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("attributes", _JSON, nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("unsubscribed_at", _TIME, nullable=True),
        sa.Column("unsubscribed_how", sa.String(length=100), nullable=True),
        *_created(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    for column in ("email", "external_id"):
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"uq_profiles_{column}", "profiles", [column], unique=True, postgresql_where=where, sqlite_where=where
        )
    op.create_table(
        "deliveries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("is_template", sa.Boolean(), nullable=False),
        sa.Column("factory", sa.Boolean(), nullable=False),
        sa.Column("template_id", _ID, nullable=True),
        sa.Column("audience_id", _ID, nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("notifications", sa.Boolean(), nullable=False),
        sa.Column("variants", _JSON, nullable=False),
        sa.Column("test_split", _JSON, nullable=False),
        sa.Column("criterion", sa.String(length=32), nullable=False),
        sa.Column("test_duration_seconds", sa.Integer(), nullable=False),
        sa.Column("winner_mode", sa.String(length=16), nullable=False),
        sa.Column("seed", _ID, nullable=False),
        sa.Column("scheduled_at", _TIME, nullable=True),
        sa.Column("launched_at", _TIME, nullable=True),
        sa.Column("test_ends_at", _TIME, nullable=True),
        sa.Column("winner", sa.String(length=1), nullable=True),
        sa.Column("winner_chosen_by", sa.String(length=320), nullable=True),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("decided_at", _TIME, nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        *_created(),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audiences.id"], name=op.f("fk_deliveries_audience_id_audiences"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["template_id"], ["deliveries.id"], name=op.f("fk_deliveries_template_id_deliveries"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    due = sa.text("state IN ('scheduled', 'testing')")
    op.create_index("ix_deliveries_due", "deliveries", ["state"], postgresql_where=due, sqlite_where=due)
    op.create_index("uq_deliveries_is_template_name", "deliveries", ["is_template", "name"], unique=True)
    op.create_table(
        "delivery_recipients",
        sa.Column("id", _ID, nullable=False),
        sa.Column("delivery_id", _ID, nullable=False),
        sa.Column("profile_id", _ID, nullable=False),
        sa.Column("variant", sa.String(length=1), nullable=True),
        sa.Column("queued_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_recipients_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_delivery_recipients_profile_id_profiles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_recipients")),
        sa.UniqueConstraint("delivery_id", "profile_id", name=op.f("uq_delivery_recipients_delivery_id_profile_id")),
    )
    op.create_index(op.f("ix_delivery_recipients_profile_id"), "delivery_recipients", ["profile_id"])
    op.create_index("ix_delivery_recipients_variant", "delivery_recipients", ["delivery_id", "variant"])
    op.create_table(
        "tracking_hits",
        sa.Column("id", _ID, nullable=False),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("bot", sa.String(length=200), nullable=True),
        sa.Column("at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_tracking_hits_message_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_hits")),
    )
    op.create_index(op.f("ix_tracking_hits_message_id"), "tracking_hits", ["message_id"])
    op.add_column("event_types", sa.Column("profile_based", sa.Boolean(), server_default=sa.false(), nullable=False))
    # No foreign keys on the queue: ingestion checks nothing more per row, and a downgrade can drop the columns
    # without rebuilding the events table (which on SQLite would delete every message pointing at it).
    op.add_column("events", sa.Column("profile_id", _ID, nullable=True))
    op.add_column("events", sa.Column("delivery_id", _ID, nullable=True))
    op.add_column("events", sa.Column("variant", sa.String(length=1), nullable=True))
    marketing = sa.text("delivery_id IS NOT NULL")
    op.create_index(
        "ix_events_delivery_id",
        "events",
        ["delivery_id", "profile_id"],
        postgresql_where=marketing,
        sqlite_where=marketing,
    )
    for column in ("opened_at", "clicked_at", "unsubscribed_at"):
        op.add_column("messages", sa.Column(column, _TIME, nullable=True))
    _ship()


_AB_BODY = (
    "<p>Hello {{ profile.firstName | default: 'there' }},</p>\n<p>Our news this month.</p>\n"
    '<p><a href="https://example.com/">Read more</a></p>'
)


def _variant(name: str, subject: str) -> dict[str, str]:
    return {"name": name, "from": "News <news@example.com>", "subject": subject, "html": _AB_BODY}


def _ship() -> None:
    now = datetime.now(UTC)
    deliveries = sa.table(
        "deliveries",
        *(sa.column(c) for c in ("name", "label", "state", "criterion", "winner_mode", "created_by")),
        *(sa.column(c, sa.Boolean()) for c in ("is_template", "factory", "notifications")),
        *(sa.column(c, sa.Integer()) for c in ("test_duration_seconds", "seed")),
        *(sa.column(c, envoi.db.base.Json) for c in ("variants", "test_split")),
        *(sa.column(c, envoi.db.base.UTCDateTime()) for c in ("created_at", "updated_at")),
    )
    common = {
        "is_template": True,
        "factory": True,
        "state": "draft",
        "criterion": "open_rate",
        "winner_mode": "automatic",
        "test_duration_seconds": 4 * 3600,
        "seed": 0,
        "created_by": "envoi",
        "created_at": now,
        "updated_at": now,
    }
    op.bulk_insert(
        deliveries,
        [
            common
            | {
                "name": "email",
                "label": "Email",
                "notifications": False,
                "variants": [_variant("A", "Our news")],
                "test_split": [],
            },
            # Notifications are on in the factory A/B test template: untick them in a delivery or a template.
            common
            | {
                "name": "ab_test_email",
                "label": "A/B test email",
                "notifications": True,
                "variants": [_variant("A", "Our news"), _variant("B", "This month at Example")],
                "test_split": [10, 10],
            },
        ],
    )
    workflows = sa.table(
        "workflows",
        *(sa.column(c) for c in ("name", "label", "state", "on_error", "created_by")),
        *(sa.column(c, sa.Boolean()) for c in ("is_template", "technical", "factory")),
        *(sa.column(c, sa.Integer()) for c in ("error_threshold", "consecutive_errors", "reminders_sent")),
        sa.column("supervisors", sa.String()),
        sa.column("definition", envoi.db.base.Json),
        *(sa.column(c, envoi.db.base.UTCDateTime()) for c in ("created_at", "updated_at")),
    )
    definition = {
        "activities": [
            {
                "name": "start",
                "kind": "scheduler",
                "settings": {"cron": "* * * * *", "timezone": "UTC"},
                "next": ["deliveries"],
            },
            {"name": "deliveries", "kind": "email_deliveries", "next": ["end"]},
            {"name": "end", "kind": "end"},
        ]
    }
    op.bulk_insert(
        workflows,
        [
            {
                "name": "email_deliveries",
                "label": "Email deliveries: send scheduled ones, end A/B tests",
                "state": "started",
                "on_error": "ignore",
                "error_threshold": 5,
                "consecutive_errors": 0,
                "reminders_sent": 0,
                "created_by": "envoi",
                "is_template": False,
                "technical": True,
                "factory": True,
                "supervisors": "workflow_supervisors",
                "definition": definition,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM workflows WHERE name = 'email_deliveries' AND technical")
    op.drop_index("ix_events_delivery_id", table_name="events")
    for column in ("variant", "delivery_id", "profile_id"):
        op.drop_column("events", column)
    for column in ("unsubscribed_at", "clicked_at", "opened_at"):
        op.drop_column("messages", column)
    op.drop_column("event_types", "profile_based")
    op.drop_table("tracking_hits")
    op.drop_table("delivery_recipients")
    op.drop_table("deliveries")
    op.drop_table("profiles")
    op.drop_table("audiences")
