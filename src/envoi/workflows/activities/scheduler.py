from __future__ import annotations

from typing import Any

from pydantic import model_validator

from envoi.workflows.activities.base import Activity, ActivitySettings, Done, RunContext
from envoi.workflows.cron import Cron, CronError


class SchedulerSettings(ActivitySettings):
    cron: str
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _valid(self) -> SchedulerSettings:
        try:
            Cron.parse(self.cron, self.timezone)
        except CronError as error:
            raise ValueError(str(error)) from None
        return self

    @property
    def schedule(self) -> Cron:
        return Cron.parse(self.cron, self.timezone)


class SchedulerActivity(Activity[SchedulerSettings]):
    kind = "scheduler"
    settings_model = SchedulerSettings
    description = "Starts the workflow on a cron schedule, in a time zone."

    async def run(self, settings: SchedulerSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        context.log(f"started at {context.now.isoformat(timespec='seconds')} ({settings.cron}, {settings.timezone})")
        return Done()
