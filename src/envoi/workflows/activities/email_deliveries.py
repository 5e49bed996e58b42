"""The technical workflow's activity: send scheduled email deliveries, end A/B tests (see campaigns.rounds)."""

from __future__ import annotations

from typing import Any

from envoi.campaigns.rounds import run_round
from envoi.workflows.activities.base import Activity, ActivitySettings, Done, RunContext


class EmailDeliveriesSettings(ActivitySettings):
    pass


class EmailDeliveriesActivity(Activity[EmailDeliveriesSettings]):
    kind = "email_deliveries"
    settings_model = EmailDeliveriesSettings
    description = (
        "Sends the email deliveries whose time has come and ends the A/B tests whose duration is over: the "
        "winner goes to the rest of the audience, or the people who made the email are asked to choose."
    )

    async def run(self, settings: EmailDeliveriesSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        done = await run_round(context.session, context.settings, context.now)
        context.log(
            f"{done.launched} deliveries sent, {done.decided} A/B tests decided, {done.waiting} waiting for a "
            f"choice, {done.queued} emails queued"
        )
        for problem in done.problems:
            context.log(problem)
        return Done(output={"queued": done.queued}, count=done.queued)
