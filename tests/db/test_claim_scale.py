"""With a million events queued on PostgreSQL, a claim and the admission's queue-depth reading read about as many
rows as they take, never the whole queue: their plans are read from EXPLAIN (ANALYZE, BUFFERS)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from envoi.db.base import utcnow
from envoi.db.engine import create_engine, create_sessionmaker
from envoi.delivery.claim import claim_statement
from envoi.events.admission import due_events, queue_depth
from envoi.settings import Settings
from tests.conftest import pg_database

QUEUED = 1_000_000
SENT = 1_000_000  # processed already: a scan of the table, rather than of the queue's index, reads them first
SCHEDULED = 200_000  # real-time events scheduled for next year: due in no claim, counted in no depth
BATCH = 100
LEASED = 50  # events of a dead worker, their lease ended: claimed before the queue


@pytest.fixture(scope="module")
def big_queue(migrated_templates: dict[str, str]) -> Iterator[str]:
    """A PostgreSQL database holding a million due events and more scheduled for next year (which no claim and no
    depth reading may wade through), over three day partitions, analyzed as autovacuum would have done."""
    with pg_database("envoi_scale", template=migrated_templates["postgresql"]) as url:
        with psycopg.connect(url, autocommit=True) as connection:
            fill = (
                "INSERT INTO events (type, mode, channel, status, ctx, created_at, updated_at, next_attempt_at,"
                " error_count) SELECT 'order_confirmation', {mode}, 'email', {status}, '{{}}',"
                # Received over three days: on PostgreSQL, in three partitions (today's and the next two days').
                " now() + interval '1 day' * (g % 3), now(),"
                " now() + {at}, 0 FROM generate_series(1, {count}) AS g"
            )
            # What a queue in production sits among: the events it already sent, stored before it.
            connection.execute(fill.format(mode=0, status=2, at="- interval '1 day'", count=SENT))
            # Due real-time events, oldest first; next year's scheduled ones sort before any batch event.
            connection.execute(
                fill.format(mode=0, status=0, at="interval '1 ms' * g - interval '2 hours'", count=QUEUED)
            )
            connection.execute(
                fill.format(mode=0, status=0, at="interval '365 days' + interval '1 ms' * g", count=SCHEDULED)
            )
            connection.execute(fill.format(mode=1, status=0, at="- interval '3 hours'", count=BATCH))
            # A dead worker's batch: leased an hour ago for a minute.
            connection.execute(fill.format(mode=0, status=1, at="- interval '59 minutes'", count=LEASED))
            connection.execute("VACUUM ANALYZE events")
        yield url


@pytest.fixture
async def engine(big_queue: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=big_queue, data_dir=tmp_path))
    yield engine
    await engine.dispose()


@contextlib.contextmanager
def explained(engine: AsyncEngine) -> Iterator[None]:
    """Every statement sent meanwhile is sent as EXPLAIN (ANALYZE, BUFFERS) of itself: the plan of exactly what the
    application sends, with its parameters (ANALYZE runs it: callers roll back)."""

    def explain(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> Any:
        return "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters

    event.listen(engine.sync_engine, "before_cursor_execute", explain, retval=True)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", explain)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def rows_read(plan: dict[str, Any]) -> int:
    """Rows every scan produced plus those its filters threw away: what the statement had to look at."""
    return sum(
        int((node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1))
        for node in nodes(plan)
        if "Relation Name" in node  # the table's scans, not those of a subquery's rows
    )


def shape(plan: dict[str, Any]) -> list[str]:
    return [f"{n['Node Type']} {n.get('Index Name', n.get('Relation Name', ''))}".strip() for n in nodes(plan)]


async def plan_of(engine: AsyncEngine, statement: Any) -> dict[str, Any]:
    async with engine.connect() as connection:
        with explained(engine):
            found = (await connection.execute(statement)).scalar_one()
        await connection.rollback()
    document = found if isinstance(found, list) else json.loads(found)
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


def buffers(node: dict[str, Any]) -> int:
    return int(node["Shared Hit Blocks"] + node["Shared Read Blocks"])


def assert_reads_about(plan: dict[str, Any], rows: int) -> None:
    """Reads about ``rows`` rows, and about as many pages: an index range, not the queue nor the table."""
    read, kinds = rows_read(plan), shape(plan)
    assert read <= 3 * rows + 10, (read, kinds)
    # A day partition made ahead holds nothing yet: the planner may well scan and sort its nothing.
    heavy = [
        kind
        for kind, node in zip(kinds, nodes(plan), strict=True)
        if kind.startswith(("Seq Scan", "Sort", "Bitmap"))
        and node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0) > rows
    ]
    assert not heavy, kinds
    # The choice of rows (the update's own index writes aside): an index page per hundreds of entries, a heap page
    # and a lock per row. Index entries skipped inside an index scan show here only: a scan of the whole
    # ix_events_claim reads some 6,000 pages.
    chosen = next(node for node in nodes(plan) if node["Node Type"] == "Limit")
    assert buffers(chosen) <= 5 * rows + 50, (buffers(chosen), kinds)


async def test_a_claim_reads_its_batch_not_the_million_queued(engine: AsyncEngine) -> None:
    now = utcnow()
    plan = await plan_of(engine, claim_statement(owner="w", size=BATCH, lease_seconds=60, now=now))
    assert plan["Actual Rows"] == BATCH
    assert_reads_about(plan, BATCH)

    # Timed once, for the record: the claim itself, as the worker sends it.
    async with engine.connect() as connection:
        started = time.perf_counter()
        claimed = (await connection.execute(claim_statement(owner="w", size=BATCH, lease_seconds=60, now=now))).all()
        elapsed = time.perf_counter() - started
        await connection.rollback()
    queued = f"{QUEUED + SCHEDULED:,} queued, {SENT:,} sent"
    print(f"\nclaim of {BATCH} among {queued}: {elapsed * 1000:.1f} ms; {shape(plan)}")
    assert len(claimed) == BATCH


async def test_a_claim_past_a_mode_with_nothing_due_reads_only_what_it_takes(engine: AsyncEngine) -> None:
    """A claim when no real-time event is due yet: the 1.2 million real-time events due later are not read."""
    before_any = utcnow() - timedelta(hours=2, minutes=30)  # no real-time event due yet, the batch ones are
    plan = await plan_of(engine, claim_statement(owner="w", size=BATCH, lease_seconds=60, now=before_any))
    assert plan["Actual Rows"] == BATCH
    assert_reads_about(plan, BATCH)


async def test_a_dead_workers_events_come_before_the_queue(engine: AsyncEngine) -> None:
    plan = await plan_of(engine, claim_statement(owner="w", size=LEASED, lease_seconds=60, now=utcnow()))
    async with engine.connect() as connection:  # the index, and its part in each day's partition
        parts = set(
            (await connection.execute(text("SELECT relid::text FROM pg_partition_tree('ix_events_leases')"))).scalars()
        )
    leases = [n for n in nodes(plan) if n.get("Index Name") in parts]
    assert leases and sum(n["Actual Rows"] for n in leases) == LEASED
    assert_reads_about(plan, LEASED)


async def test_the_queue_depth_reading_stops_at_its_cap(engine: AsyncEngine) -> None:
    cap = 10_000
    async with create_sessionmaker(engine)() as session:
        assert await due_events(session, cap, utcnow()) == cap
    plan = await plan_of(engine, queue_depth(cap, utcnow()))
    # Merging the day partitions' index ranges reads one entry more of each partition that is not used up.
    assert plan["Actual Rows"] == 1 and cap <= rows_read(plan) <= cap + 10
    assert_reads_about(plan, cap)

    # Timed once, for the record: the reading at the default limit, a million.
    async with create_sessionmaker(engine)() as session:
        started = time.perf_counter()
        depth = await due_events(session, QUEUED, utcnow())
        elapsed = time.perf_counter() - started
    print(f"\nqueue depth read up to {QUEUED:,}: {elapsed * 1000:.0f} ms")
    assert depth == QUEUED
