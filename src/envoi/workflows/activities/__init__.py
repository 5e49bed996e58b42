"""The activities a workflow is made of, by kind: each a small module with its settings model."""

from __future__ import annotations

from typing import Any

from envoi.workflows.activities.base import Activity
from envoi.workflows.activities.branch import BranchActivity
from envoi.workflows.activities.email_deliveries import EmailDeliveriesActivity
from envoi.workflows.activities.end import EndActivity
from envoi.workflows.activities.http_request import HttpRequestActivity
from envoi.workflows.activities.push_events import PushEventsActivity
from envoi.workflows.activities.query import QueryActivity
from envoi.workflows.activities.recycle import RecycleFailedEventsActivity
from envoi.workflows.activities.scheduler import SchedulerActivity
from envoi.workflows.activities.upkeep import PurgeActivity, RecoverLeasesActivity, StatisticsActivity
from envoi.workflows.activities.wait import WaitActivity

ACTIVITIES: dict[str, Activity[Any]] = {
    activity.kind: activity
    for activity in (
        SchedulerActivity(),
        QueryActivity(),
        PushEventsActivity(),
        HttpRequestActivity(),
        WaitActivity(),
        BranchActivity(),
        RecycleFailedEventsActivity(),
        PurgeActivity(),
        RecoverLeasesActivity(),
        StatisticsActivity(),
        EmailDeliveriesActivity(),
        EndActivity(),
    )
}

__all__ = ["ACTIVITIES", "Activity"]
