"""Day partitions (PostgreSQL): where rows land, how the purge drops whole days and stops at a wanted event, and
that an existing database keeps its rows and its idempotency keys through migration 0016. SQLite, unpartitioned,
must purge the same rows row by row."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from envoi.db.engine import create_engine
from envoi.db.migrate import upgrade_database
from envoi.db.outage import store_unavailable
from envoi.db.partitions import DAYS_AHEAD, days_ahead, ensure_partitions, midnight, partitions
from envoi.delivery.models import Message, MessageStatus
from envoi.events.models import Event, EventStatus, EventStatusChange, IdempotencyKey
from envoi.events.schemas import EventIn
from envoi.events.service import ingest_event, request_hash
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.tracking.models import TrackingHit
from envoi.workflows.activities.base import RunContext
from envoi.workflows.activities.upkeep import PurgeActivity, PurgeSettings, _drop_days, _ended_days
from tests.conftest import BACKENDS, pg_database

TODAY = datetime.now(UTC).date()


def _event(created: datetime, status: EventStatus, **values: Any) -> Event:
    return Event(
        type="order_confirmation",
        channel="email",
        email="ada@example.com",
        ctx={},
        status=status,
        created_at=created,
        updated_at=created + timedelta(hours=1),
        next_attempt_at=created,
        **values,
    )


async def _tables(runtime: Runtime) -> set[str]:
    async with runtime.engine.connect() as connection:
        return set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_purge_drops_whole_days_up_to_the_first_day_with_a_wanted_event(runtime: Runtime) -> None:
    d1, d2, d3 = (midnight(TODAY + timedelta(days=n)) for n in (2, 3, 4))  # made ahead by the migration
    async with runtime.transaction() as session:
        sent = _event(d1 + timedelta(hours=9), EventStatus.PROCESSED, idempotency_key="k1")
        sent_next_day = _event(d2 + timedelta(hours=23), EventStatus.PROCESSED)
        waiting = _event(d3 + timedelta(hours=1), EventStatus.PENDING)
        ended_beside_it = _event(d3 + timedelta(hours=2), EventStatus.DELIVERY_FAILED)
        session.add_all([sent, sent_next_day, waiting, ended_beside_it])
        await session.flush()
        message = Message(
            event_id=sent.id, channel="email", address="ada@example.com", status=MessageStatus.SENT,
            created_at=sent.created_at + timedelta(minutes=1),
        )  # fmt: skip
        session.add_all([
            message,
            Message(
                event_id=sent_next_day.id, channel="email", address="ada@example.com", status=MessageStatus.SENT,
                created_at=d3 + timedelta(minutes=30),  # in the next day's partition
            ),
            EventStatusChange(event_id=sent.id, status=EventStatus.PROCESSED, at=sent.created_at),
            IdempotencyKey(event_id=sent.id, api_key_id=None, key="k1", request_hash="h", created_at=sent.created_at),
        ])  # fmt: skip
        await session.flush()
        session.add(TrackingHit(message_id=message.id, kind="open", at=d2))
        ids = {e.id for e in (sent, sent_next_day, waiting, ended_beside_it)}

    postgresql = runtime.settings.database_url.startswith("postgresql")
    if postgresql:
        async with runtime.engine.connect() as connection:
            where = await connection.execute(text("SELECT id, tableoid::regclass::text FROM events"))
            assert dict(where.all()) == {  # each in its own day's table
                sent.id: f"events_{d1:%Y%m%d}",
                sent_next_day.id: f"events_{d2:%Y%m%d}",
                waiting.id: f"events_{d3:%Y%m%d}",
                ended_beside_it.id: f"events_{d3:%Y%m%d}",
            }

    now = d3 + timedelta(days=runtime.settings.retention_events_days, hours=36)  # d3 is past retention
    async with runtime.transaction() as session:
        context = RunContext(session, runtime.settings, 0, "purge", 0, now)
        done = await PurgeActivity().run(PurgeSettings(), None, context)

    async with runtime.transaction() as session:
        left = set(await session.scalars(select(Event.id).where(Event.id.in_(ids))))
        messages = set(await session.scalars(select(Message.event_id)))
        timeline = list(await session.scalars(select(EventStatusChange.id)))
        keys = list(await session.scalars(select(IdempotencyKey.key)))
        hits = list(await session.scalars(select(TrackingHit.id)))
    assert left == {waiting.id}  # the one still waiting; the one beside it went row by row
    assert done.count == 3
    assert sent.id not in messages and timeline == [] and keys == [] and hits == []
    if not postgresql:
        assert messages == set()
        return
    tables = await _tables(runtime)
    assert {f"{t}_{d1:%Y%m%d}" for t in ("events", "messages", "event_status_changes")}.isdisjoint(tables)
    assert {f"events_{d2:%Y%m%d}", f"events_before_{TODAY + timedelta(days=1):%Y%m%d}"}.isdisjoint(tables)
    assert {f"events_{d3:%Y%m%d}", f"messages_{d3:%Y%m%d}"} <= tables  # d3 holds a wanted event: kept
    # A message sent the day after its event was received stays until its own day goes: one day at most.
    assert messages == {sent_next_day.id}
    assert context.logs[0].startswith("made the partitions events_")  # up to a week after the purge's now
    assert context.logs[1].startswith("dropped 4 days of partitions: 2 ended events")  # up to d2
    async with runtime.engine.connect() as connection:
        assert await connection.run_sync(days_ahead, now.date()) == DAYS_AHEAD


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_existing_database_keeps_its_events_and_their_idempotency_keys(backend: str, tmp_path: Path) -> None:
    first = EventIn.model_validate({"type": "order_confirmation", "email": "ada@example.com", "ctx": {"n": 1}})
    if backend == "sqlite":
        await _upgraded_keeps_its_rows(f"sqlite:///{tmp_path / 'old.db'}", tmp_path, first)
        return
    with pg_database("envoi_old") as url:
        await _upgraded_keeps_its_rows(url, tmp_path, first)


async def _upgraded_keeps_its_rows(url: str, tmp_path: Path, first: EventIn) -> None:
    engine = create_engine(Settings(database_url=url, data_dir=tmp_path))
    runtime: Runtime | None = None
    try:
        await upgrade_database(engine, "0015")
        long_ago, digest = datetime.now(UTC) - timedelta(days=3), request_hash(first)
        async with engine.begin() as connection:
            await connection.execute(
                sa.insert(
                    sa.table("event_types", *map(sa.column, ("id", "name", "label", "created_at", "updated_at")))
                ),
                {
                    "id": 1,
                    "name": "order_confirmation",
                    "label": "Order",
                    "created_at": long_ago,
                    "updated_at": long_ago,
                },
            )
            columns = ("id", "type", "mode", "channel", "status", "email", "ctx", "idempotency_key", "request_hash",
                       "created_at", "updated_at", "next_attempt_at", "error_count")  # fmt: skip
            await connection.execute(
                sa.insert(sa.table("events", *map(sa.column, columns))),
                {
                    "id": 7,
                    "type": "order_confirmation",
                    "mode": 0,
                    "channel": "email",
                    "status": 2,
                    "email": "ada@example.com",
                    "ctx": "{}",
                    "idempotency_key": "order-7",
                    "request_hash": digest,
                    "created_at": long_ago,
                    "updated_at": long_ago,
                    "next_attempt_at": long_ago,
                    "error_count": 0,
                },
            )
            if url.startswith("postgresql"):  # as if the rows had taken their ids from the sequences
                await connection.execute(text("SELECT setval('events_id_seq', 7), setval('messages_id_seq', 1)"))
            await connection.execute(
                text(
                    "INSERT INTO messages (id, event_id, channel, address, status, attempts, created_at, updated_at)"
                    " VALUES (1, 7, 'email', 'ada@example.com', 1, 1, :at, :at)"
                ),
                {"at": long_ago},
            )
        await upgrade_database(engine)
        runtime = Runtime.create(Settings(database_url=url, data_dir=tmp_path, load_demo_data=False, smtp_url=None))
        async with runtime.transaction() as session:
            again = await ingest_event(session, first, api_key_id=None, idempotency_key="order-7")
            other = first.model_copy(update={"ctx": {"n": 2}})
            new = await ingest_event(session, other, api_key_id=None, idempotency_key="order-8")
        assert again == (7, False)
        assert new[1] is True and new[0] > 7  # the sequence went on from the old table's
        async with runtime.transaction() as session:
            assert await session.scalar(select(Message.event_id).where(Message.id == 1)) == 7
            assert set(await session.scalars(select(IdempotencyKey.key))) == {"order-7", "order-8"}
        if url.startswith("postgresql"):
            async with engine.connect() as connection:
                where = await connection.scalar(text("SELECT tableoid::regclass::text FROM events WHERE id = 7"))
                days = await connection.run_sync(lambda c: [p.day for p in partitions(c, "events")])
                made = await connection.run_sync(ensure_partitions, TODAY)
            assert where == f"events_before_{TODAY + timedelta(days=1):%Y%m%d}"
            assert days == [None, *(TODAY + timedelta(days=n) for n in range(1, DAYS_AHEAD + 1))]
            assert made == []  # nothing missing: making them again makes none
    finally:
        if runtime is not None:
            await runtime.aclose()
        await engine.dispose()


def test_partition_bounds_are_utc_midnights() -> None:
    assert midnight(date(2026, 12, 5)).isoformat() == "2026-12-05T00:00:00+00:00"


async def test_an_event_past_the_last_partition_is_refused_as_the_store_being_unavailable(runtime: Runtime) -> None:
    if not runtime.settings.database_url.startswith("postgresql"):
        return  # SQLite has no partitions: nothing to run out of
    far = midnight(TODAY + timedelta(days=DAYS_AHEAD + 2))
    with pytest.raises(DBAPIError) as refused:
        async with runtime.transaction() as session:
            session.add(_event(far, EventStatus.PENDING))
    unavailable = store_unavailable(refused.value)
    assert unavailable is not None and unavailable.status_code == 503
    assert "no day partition holds events of today (envoi migrate makes them)" in str(unavailable)


async def test_a_day_found_ended_is_checked_again_before_it_is_dropped(runtime: Runtime) -> None:
    """Between finding the days and dropping them (the purge's row deletes run in between), an operator may
    retry one of their events: the day is kept, and so are the days after it."""
    if not runtime.settings.database_url.startswith("postgresql"):
        return  # nothing is dropped on SQLite
    d1, d2 = (midnight(TODAY + timedelta(days=n)) for n in (2, 3))
    async with runtime.transaction() as session:
        early, retried = _event(d1, EventStatus.PROCESSED), _event(d2, EventStatus.PROCESSED)
        session.add_all([early, retried])
    before = d2 + timedelta(days=1)  # the end of d2
    async with runtime.engine.begin() as connection:
        days = await connection.run_sync(_ended_days, before)
        assert [day.name for day in days][-2:] == [f"events_{d1:%Y%m%d}", f"events_{d2:%Y%m%d}"]
        await connection.execute(sa.update(Event).where(Event.id == retried.id).values(status=EventStatus.PENDING))
        dropped, events = await connection.run_sync(_drop_days, days, before)
    assert (dropped, events) == (len(days) - 1, 1)
    tables = await _tables(runtime)
    assert f"events_{d1:%Y%m%d}" not in tables and f"events_{d2:%Y%m%d}" in tables
