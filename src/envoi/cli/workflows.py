"""Workflows from the command line: list them, run one now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.cli.common import console, in_transaction, load_settings
from envoi.errors import NotFound
from envoi.workflows.models import Workflow
from envoi.workflows.service import list_workflows, run_now, upcoming_run

workflow_app = typer.Typer(help="Workflows: list them, run one now.", no_args_is_help=True)


@workflow_app.command("list")
def workflow_list() -> None:
    """Every workflow, its state and its next run."""
    settings = load_settings()

    async def rows(session: AsyncSession) -> list[tuple[str, ...]]:
        return [
            (
                str(w.id),
                w.name,
                w.state,
                next_run.strftime("%Y-%m-%d %H:%M") if (next_run := upcoming_run(w)) else "-",
                w.supervisors or "nobody",
            )
            for w in await list_workflows(session)
        ]

    table = Table("id", "name", "state", "next run (UTC)", "supervisors")
    for row in in_transaction(settings, rows, migrate=True):
        table.add_row(*row)
    console.print(table)


@workflow_app.command("run")
def workflow_run(name: Annotated[str, typer.Argument(help="The workflow's name (see envoi workflow list).")]) -> None:
    """Start a run now; the scheduler (in envoi serve, or one envoi worker on PostgreSQL) carries it out."""
    settings = load_settings()

    async def start(session: AsyncSession) -> tuple[int, int]:
        workflow = await session.scalar(select(Workflow).where(Workflow.is_template.is_(False), Workflow.name == name))
        if workflow is None:
            raise NotFound(f"no workflow is named {name!r}: envoi workflow list shows them")
        return workflow.id, (await run_now(session, workflow)).id

    workflow_id, run_id = in_transaction(settings, start, migrate=True)
    console.print(f"Run {run_id} of {name} started: /console/workflows/{workflow_id}/runs/{run_id}", soft_wrap=True)
