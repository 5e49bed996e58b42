"""The REST shapes of workflows, templates, runs and activities."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from envoi.nesting import JsonObject
from envoi.workflows.models import Workflow, WorkflowRun, WorkflowStep

_EXAMPLE = {
    "activities": [
        {
            "name": "start",
            "kind": "scheduler",
            "settings": {"cron": "0 * * * *", "timezone": "Europe/Paris"},
            "next": ["ping"],
        },
        {"name": "ping", "kind": "http_request", "settings": {"url": "https://example.com/health"}, "next": ["end"]},
        {"name": "end", "kind": "end"},
    ]
}


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class WorkflowFields(_Camel):
    label: str | None = Field(None, max_length=200)
    definition: JsonObject | None = Field(None, examples=[_EXAMPLE])
    supervisors: str | None = Field(
        None, description="A security group whose members are told (in-app and by email) when it is suspended."
    )
    on_error: Literal["suspend", "ignore"] | None = Field(None, alias="onError")
    error_threshold: int | None = Field(
        None,
        alias="errorThreshold",
        ge=0,
        le=1000,
        description="ignore: suspend at this many errors in a row (0: never).",
    )

    @field_validator("label", "definition", "on_error", "error_threshold")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Left out, a field keeps its value; null would erase one that has no "nothing" (supervisors has: nobody)
        if value is None:
            raise PydanticCustomError("not_null", "cannot be null: leave it out to keep its value")
        return value


class WorkflowIn(WorkflowFields):
    name: str = Field(max_length=100, examples=["nightly-export"])
    template: int | None = Field(None, ge=1, le=2**62, description="The template's id; unset: the factory template.")


class WorkflowOut(_Camel):
    id: int
    name: str
    label: str
    is_template: bool = Field(alias="isTemplate")
    factory: bool
    technical: bool
    template: int | None
    definition: dict[str, Any]
    supervisors: str | None
    on_error: str = Field(alias="onError")
    error_threshold: int = Field(alias="errorThreshold")
    state: str
    next_run_at: datetime | None = Field(alias="nextRunAt")
    consecutive_errors: int = Field(alias="consecutiveErrors")
    paused_at: datetime | None = Field(alias="pausedAt")
    created_by: str | None = Field(alias="createdBy")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")

    @classmethod
    def of(cls, workflow: Workflow) -> WorkflowOut:
        return cls(
            id=workflow.id,
            name=workflow.name,
            label=workflow.label,
            is_template=workflow.is_template,
            factory=workflow.factory,
            technical=workflow.technical,
            template=workflow.template_id,
            definition=workflow.definition,
            supervisors=workflow.supervisors,
            on_error=workflow.on_error,
            error_threshold=workflow.error_threshold,
            state=workflow.state,
            next_run_at=workflow.next_run_at,
            consecutive_errors=workflow.consecutive_errors,
            paused_at=workflow.paused_at,
            created_by=workflow.created_by,
            created_at=workflow.created_at,
            updated_at=workflow.updated_at,
        )


class StepOut(_Camel):
    activity: str
    kind: str
    status: str
    started_at: datetime = Field(alias="startedAt")
    ended_at: datetime | None = Field(alias="endedAt")
    count: int | None
    logs: list[str]
    error: str | None

    @classmethod
    def of(cls, step: WorkflowStep) -> StepOut:
        return cls(
            activity=step.activity,
            kind=step.kind,
            status=step.status,
            started_at=step.started_at,
            ended_at=step.ended_at,
            count=step.count,
            logs=step.logs,
            error=step.error,
        )


class RunOut(_Camel):
    id: int
    status: str
    trigger: str
    started_at: datetime = Field(alias="startedAt")
    ended_at: datetime | None = Field(alias="endedAt")
    errors: int
    failed_activity: str | None = Field(alias="failedActivity")
    error: str | None
    waiting: list[str] = Field(description="Activities still to do.")
    steps: list[StepOut] | None = Field(None, description="Each activity's execution (one run's page only).")

    @classmethod
    def of(cls, run: WorkflowRun, steps: list[WorkflowStep] | None = None) -> RunOut:
        return cls(
            id=run.id,
            status=run.status,
            trigger=run.trigger,
            started_at=run.started_at,
            ended_at=run.ended_at,
            errors=run.errors,
            failed_activity=run.failed_activity,
            error=run.error,
            waiting=[item["activity"] for item in run.pending],
            steps=None if steps is None else [StepOut.of(step) for step in steps],
        )


class ActivityKindOut(_Camel):
    kind: str
    description: str
    outcomes: list[str]
    settings_schema: dict[str, Any] = Field(alias="settingsSchema")
