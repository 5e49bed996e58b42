from __future__ import annotations

from typing import Any

from envoi.workflows.activities.base import Activity, ActivitySettings, Done, Duration, RunContext, parse_duration


class WaitSettings(ActivitySettings):
    duration: Duration


class WaitActivity(Activity[WaitSettings]):
    kind = "wait"
    settings_model = WaitSettings
    description = "Waits, then goes on; the run sleeps in the database, not in a process."

    async def run(self, settings: WaitSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        until = context.now + parse_duration(settings.duration)
        context.log(f"next activities start after {until.isoformat(timespec='seconds')}")
        return Done(output=given, count=given.get("count") if given else None, not_before=until)
