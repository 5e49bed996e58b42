from __future__ import annotations

from typing import Any

from envoi.workflows.activities.base import Activity, ActivitySettings, Done, RunContext


class EndSettings(ActivitySettings):
    pass


class EndActivity(Activity[EndSettings]):
    kind = "end"
    settings_model = EndSettings
    description = "Ends its branch."

    async def run(self, settings: EndSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        return Done(count=given.get("count") if given else None)
