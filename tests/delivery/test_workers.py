"""Several ``envoi worker`` processes on one PostgreSQL: each event is sent once, and only once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from envoi.events.models import Event, EventStatus
from envoi.runtime import Runtime
from tests.helpers import published_template
from tests.processes import start_envoi
from tests.smtp_sink import SmtpSink

EVENTS = 5_000


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_workers_deliver_each_event_exactly_once(
    api: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink, database_url: str, tmp_path: Path
) -> None:
    await published_template(api, subject="Order {{ ctx.orderId }}")
    for start in range(0, EVENTS, 1_000):
        batch = [
            {"type": "order_confirmation", "email": f"user{i}@example.com", "ctx": {"orderId": str(i)}}
            for i in range(start, start + 1_000)
        ]
        assert (await api.post("/api/v1/events/batch", json={"events": batch})).status_code == 202

    env = {
        "ENVOI_DATABASE_URL": database_url,
        "ENVOI_SMTP_URL": smtp_sink.url,
        "ENVOI_WORKER_BATCH_SIZE": "50",
        "ENVOI_DATA_DIR": str(tmp_path),
    }
    logs = [tmp_path / f"worker{n}.log" for n in (1, 2)]
    workers = [start_envoi(["worker"], env=env, cwd=tmp_path, output=log.open("wb")) for log in logs]
    try:
        await smtp_sink.wait_for(EVENTS, timeout=180)
        await asyncio.sleep(0.5)  # anything sent twice would arrive now
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=30) for worker in workers]
    assert codes == [0, 0]

    recipients = Counter(rcpt for mail in smtp_sink.messages for rcpt in mail.rcpt_tos)
    assert len(smtp_sink.messages) == EVENTS
    assert set(recipients) == {f"user{i}@example.com" for i in range(EVENTS)}
    assert max(recipients.values()) == 1
    for log in logs:  # both workers took part
        assert "delivery.batch_recorded" in log.read_text()
    async with runtime.transaction() as session:
        statuses = dict((await session.execute(select(Event.status, func.count()).group_by(Event.status))).all())
    assert statuses == {EventStatus.PROCESSED: EVENTS}
