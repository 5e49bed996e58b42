"""The reports page (charts, error rates, times, thresholds, for a period, a type and a channel) and the figures
of each version on a template's versions page."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from envoi.delivery.models import Message
from envoi.delivery.quarantine import add_to_quarantine
from tests.conftest import drain
from tests.console.conftest import InProcess
from tests.console.test_pages import RESET, push


def _cells(html: str, label: str) -> list[str]:
    """The cells of the table row headed ``label``."""
    found = re.search(rf'<th scope="row">{re.escape(label)}</th>(.*?)</tr>', html, re.S)
    assert found, label
    return re.findall(r'<td class="num">([^<]*)</td>', found.group(1))


async def test_the_reports_page(in_process: InProcess) -> None:
    await push(in_process, RESET | {"email": "a@example.com"}, RESET | {"email": "b@example.com"})
    async with in_process.runtime.transaction() as session:
        await add_to_quarantine(session, [("email", "gone@example.com", "550 user unknown")])
    await push(in_process, RESET | {"email": "gone@example.com"})  # ignored
    await drain(in_process.runtime)
    viewer = await in_process.log_in("viewer@example.com")

    page = (await viewer.get("/console/reports")).text
    assert '<a href="/console/reports" aria-current="page">Reports</a>' in page
    assert page.count('<svg class="chart') == 4 - ("No samples in this period" in page)
    assert 'aria-label="Events received per hour"' in page and 'aria-label="Messages sent per hour"' in page
    assert _cells(page, "ignored") == ["1", "33.3 %"] and _cells(page, "processed") == ["2", "66.7 %"]
    assert _cells(page, "routing failed") == ["0", "0.0 %"]
    assert _cells(page, "Processing time")[0] == "3" and _cells(page, "Sending time")[0] == "2"
    assert _cells(page, "Queue depth") == ["1,000 events", "10,000 events"]
    assert "From when the event was due (received, or its scheduled time if later)" in page

    narrowed = (await viewer.get("/console/reports?period=1h&type=password_reset&channel=email")).text
    assert _cells(narrowed, "ignored") == ["1", "33.3 %"] and _cells(narrowed, "processed") == ["2", "66.7 %"]
    other = (await viewer.get("/console/reports?type=order_confirmation")).text
    assert _cells(other, "ignored") == ["0", "—"]
    assert '<option value="password_reset" selected>' in narrowed
    assert _cells((await viewer.get("/console/reports?channel=sms")).text, "processed") == ["0", "—"]

    for query, message in (
        ("channel=fax", "Not a channel."),
        ("from=soon", "A date and time as YYYY-MM-DD HH:MM (UTC)."),
        ("from=2026-02-01T00:00&to=2026-01-01T00:00", "Since must be before until."),
        ("from=2026-01-01T00:00&to=2026-03-01T00:00", "A report covers at most 31 days."),
    ):
        refused = await viewer.get(f"/console/reports?{query}")
        assert refused.status_code == 200 and '<p class="field-error"' in refused.text and message in refused.text
        assert "Error rates by cause" not in refused.text


async def test_the_versions_page_shows_each_versions_figures(in_process: InProcess) -> None:
    await push(in_process, RESET | {"email": "a@example.com"}, RESET | {"email": "b@example.com"})
    await drain(in_process.runtime)
    async with in_process.runtime.transaction() as session:
        version_id = (await session.scalars(select(Message.template_version_id))).first()
        await session.execute(
            update(Message).where(Message.address == "a@example.com").values(opened_at=Message.sent_at)
        )
    async with in_process.api() as api:
        template = next(t for t in (await api.get("/api/v1/templates")).json() if t["eventType"] == "password_reset")
    editor = await in_process.log_in("editor@example.com")

    page = (await editor.get(f"/console/templates/{template['id']}/versions")).text
    assert version_id is not None
    assert '<th class="num">Sent</th>' in page and '<th class="num">Clicked</th>' in page
    row = re.search(r"<tr>\s*<td>1 <span.*?</tr>", page, re.S)
    assert row, page
    assert re.findall(r'<td class="num">(\d+)</td>', row.group(0)) == ["2", "0", "0", "1", "0"]
