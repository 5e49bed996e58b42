from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from envoi.db.base import Base, BigId, Json, UTCDateTime, utcnow


class WorkflowState(enum.StrEnum):
    """A workflow's life: ``stopped`` (never started, or stopped: not scheduled), ``started`` (runs on its
    schedule), ``paused`` (keeps its place, reminders to its supervisors), ``error`` (suspended by an error,
    waits for an operator to resume or restart it)."""

    STOPPED = "stopped"
    STARTED = "started"
    PAUSED = "paused"
    ERROR = "error"


class OnError(enum.StrEnum):
    SUSPEND = "suspend"  # the first error suspends the workflow
    IGNORE = "ignore"  # the failed branch is skipped, until ``error_threshold`` errors in a row


class RunStatus(enum.StrEnum):
    RUNNING = "running"  # has activities to do now or after a wait
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # ended, with ignored errors
    SUSPENDED = "suspended"  # stopped at a failed activity; resuming retries it
    CANCELLED = "cancelled"  # stopped or restarted by an operator


class StepStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Workflow(Base):
    """A workflow, or a workflow template (``is_template``: never scheduled, copied into new workflows)."""

    __tablename__ = "workflows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    is_template: Mapped[bool] = mapped_column(Boolean, default=False)
    factory: Mapped[bool] = mapped_column(Boolean, default=False, doc="Shipped with Envoi: cannot be deleted.")
    technical: Mapped[bool] = mapped_column(Boolean, default=False, doc="Envoi's own upkeep (purge, statistics).")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("workflows.id", ondelete="SET NULL"))
    definition: Mapped[dict[str, Any]] = mapped_column(Json, doc="The activities and their transitions.")
    supervisors: Mapped[str | None] = mapped_column(String(100), doc="The security group told of errors.")
    on_error: Mapped[str] = mapped_column(String(16), default=OnError.SUSPEND)
    error_threshold: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default=WorkflowState.STOPPED)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), doc="The schedule's next occurrence.")
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("uq_workflows_is_template_name", "is_template", "name", unique=True),
        Index(
            "ix_workflows_next_run_at",
            "next_run_at",
            postgresql_where=text("state = 'started'"),
            sqlite_where=text("state = 'started'"),
        ),
    )


class WorkflowRun(Base):
    """One execution of a workflow. ``pending`` holds the activities still to do with their input, so a run
    that waits, or whose process died, resumes where it was."""

    __tablename__ = "workflow_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING)
    trigger: Mapped[str] = mapped_column(String(16), doc="schedule, manual or restart.")
    definition: Mapped[dict[str, Any]] = mapped_column(Json, doc="The workflow's definition when the run began.")
    pending: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), doc="When a running run is next due.")
    errors: Mapped[int] = mapped_column(Integer, default=0)
    failed_activity: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_workflow_runs_resume_at",
            "resume_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
    )


class WorkflowStep(Base):
    """One activity's execution within a run: when, what it produced, what it logged, how it failed."""

    __tablename__ = "workflow_steps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True)
    activity: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    count: Mapped[int | None] = mapped_column(Integer, doc="What the activity produced: rows, events, status.")
    logs: Mapped[list[str]] = mapped_column(Json, default=list)
    error: Mapped[str | None] = mapped_column(Text)


class HourlyStatistic(Base):
    """Events received and ended per hour, type and channel: kept after the events themselves are purged."""

    __tablename__ = "hourly_statistics"

    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    received: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    ignored: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    messages: Mapped[int] = mapped_column(Integer, default=0)
