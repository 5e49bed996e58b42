"""A provider changed over the API in one process is used at once by another process's worker (tests/two_processes.py:
two applications against one PostgreSQL database, the providers polled only once an hour)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envoi.settings import Settings
from tests.helpers import published_template, push
from tests.smtp_sink import SmtpSink
from tests.two_processes import Client, admin_key, poll, shared_database, two_processes


@pytest.fixture
def pg_settings(migrated_templates: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    with shared_database(migrated_templates, tmp_path) as settings:
        yield settings


async def test_a_provider_added_in_one_process_is_used_by_the_others_worker_at_once(
    pg_settings: Settings, smtp_sink: SmtpSink
) -> None:
    async with two_processes(pg_settings, worker_in_b=True) as (a, b):
        admin = await admin_key(a.runtime)
        async with a.api({"Authorization": f"Bearer {admin}"}) as api:
            await published_template(api)
            first = await push(api, email="before@example.com")
            # B's worker sends it through the outbox: B has read its providers and will not poll them for an hour.
            await poll(lambda: _status(api, first), "processed", "the first event")
            assert smtp_sink.messages == []

            added = await api.post(
                "/api/v1/providers",
                json={"name": "relay", "kind": "smtp", "role": "default", "settings": {"url": smtp_sink.url}},
            )
            assert added.status_code == 201, added.text
            await poll(lambda: _has_provider(b, "relay"), True, "B reading its providers again")
            second = await push(api, email="after@example.com")
            await poll(lambda: _status(api, second), "processed", "the second event")
        assert [item.rcpt_tos for item in await smtp_sink.wait_for(1)] == [["after@example.com"]]


async def _status(api: httpx.AsyncClient, event_id: int) -> str:
    return str((await api.get(f"/api/v1/events/{event_id}")).json()["status"])


async def _has_provider(client: Client, name: str) -> bool:
    return name in client.runtime.providers.live
