"""REST: the Message Center reports (``/api/v1/reports``) and per template version figures
(``/api/v1/templates/{id}/figures``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from envoi.access.api import CanView, RuntimeDep
from envoi.reports.figures import template_figures
from envoi.reports.schemas import ReportOut, VersionFiguresOut
from envoi.reports.service import build_report, report_filter

router = APIRouter(prefix="/api/v1", tags=["reports"])
TemplateId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/reports", response_model=ReportOut)
async def read_report(
    runtime: RuntimeDep,
    _who: CanView,
    since: Annotated[datetime | None, Query(description="Default: 24 hours before until. Without a zone: UTC.")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive; default now; at most 31 days after since.")] = None,
    event_type: Annotated[str | None, Query(alias="eventType", max_length=100)] = None,
    channel: Annotated[Literal["email", "sms", "push"] | None, Query()] = None,
) -> ReportOut:
    """Events received, messages sent and events ended per hour; error rates by cause; average, p95 and p99 of
    queue, processing and sending times; the queue's depth over time."""
    wanted = report_filter(since, until, event_type, channel)
    async with runtime.transaction() as session:
        report = await build_report(session, wanted, runtime.settings.report_sample_seconds)
    return ReportOut.of(report)


@router.get("/templates/{template_id}/figures", response_model=list[VersionFiguresOut], tags=["templates"])
async def read_template_figures(template_id: TemplateId, runtime: RuntimeDep, _who: CanView) -> list[VersionFiguresOut]:
    """Per published version, oldest first: messages sent, delivered, bounced, opened and clicked."""
    async with runtime.transaction() as session:
        return [VersionFiguresOut.of(v) for v in await template_figures(session, template_id)]
