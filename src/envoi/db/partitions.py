"""Day partitions on PostgreSQL: events, messages and the timeline are each partitioned by day (UTC) on their own
time, so that the purge drops a day's tables instead of deleting its rows one by one. SQLite keeps plain tables.

Every table gets the same bounds: ``<table>_YYYYMMDD`` holds one day, and ``<table>_before_YYYYMMDD`` (made by
migration 0016 from the table as it was) everything before that day. A row's children are never older than it
(a message is sent after its event was received), so once every event of a day and of the days before it is
gone, that day's messages and timeline belong to no event left and go too.

Partitions are made ``DAYS_AHEAD`` days ahead by ``envoi migrate`` (and serve's start) and by the daily purge;
there is no default partition (it would have to be scanned under an exclusive lock by every new partition), so
an event received past the last partition would be refused: ``envoi doctor`` warns well before."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, text

# Table -> the time it is partitioned on.
PARTITIONED = {"events": "created_at", "messages": "created_at", "event_status_changes": "at"}
DAYS_AHEAD = 7
# A foreign key to a partitioned table must name its whole key (id and day), which these columns cannot: they
# are foreign keys on SQLite only. What their ON DELETE did, the purge does itself.
NOT_ON_POSTGRESQL = {
    "fk_messages_event_id_events",
    "fk_event_status_changes_event_id_events",
    "fk_tracking_hits_message_id_messages",
    "fk_bounces_message_id_messages",
}
# A child row (a message, a status change) is written after its event, but maybe by another host, whose clock
# may run behind the one that received the event: a lookup of an event's children reads from this much earlier.
CLOCK_SKEW = timedelta(hours=1)
_NAME = re.compile(r"^(events|messages|event_status_changes)_(before_)?(\d{8})$")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    day: date | None  # None: the partition of everything before ``end``
    end: datetime  # exclusive


def children_since(event_created_at: datetime) -> datetime:
    """The earliest time an event's messages and status changes can carry: reading from it, PostgreSQL skips the
    days before the event's."""
    return event_created_at - CLOCK_SKEW


def in_the_models(item: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's include_object: what the models describe, so neither a day partition nor a foreign key that is
    SQLite's only (see NOT_ON_POSTGRESQL) is taken for a difference."""
    if kind == "table" and name is not None and _NAME.match(name):
        return False
    return not (kind == "foreign_key_constraint" and name in NOT_ON_POSTGRESQL)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def day_partition(table: str, day: date) -> str:
    return f"{table}_{day:%Y%m%d}"


def partitioned(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('events')")).scalar()
    return bool(kind == "p")


def partitions(connection: Connection, table: str) -> list[Partition]:
    """The table's partitions of ours, oldest first."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(:table)"
        ),
        {"table": table},
    ).scalars()
    found = []
    for name in names:
        match = _NAME.match(name)
        if match is None or match[1] != table:
            continue  # someone else's: left alone
        day = datetime.strptime(match[3], "%Y%m%d").replace(tzinfo=UTC).date()
        if match[2]:
            found.append(Partition(name, None, midnight(day)))
        else:
            found.append(Partition(name, day, midnight(day + timedelta(days=1))))
    return sorted(found, key=lambda p: p.end)


def ensure_partitions(connection: Connection, today: date, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Make each table's missing day partitions up to ``today + days_ahead``; returns their names. A new table is
    made apart and then attached, which holds off no reader or writer (CREATE ... PARTITION OF would lock the
    whole table)."""
    if not partitioned(connection):
        return []
    made = []
    for table in PARTITIONED:
        existing = partitions(connection, table)
        day = existing[-1].end.date() if existing else today
        while day <= today + timedelta(days=days_ahead):
            name = day_partition(table, day)
            connection.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
            connection.execute(
                text(
                    f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{midnight(day).isoformat()}')"
                    f" TO ('{midnight(day + timedelta(days=1)).isoformat()}')"
                )
            )
            made.append(name)
            day += timedelta(days=1)
    return made


def days_ahead(connection: Connection, today: date) -> int | None:
    """How many whole days after today events can still be received for (None: not partitioned)."""
    if not partitioned(connection):
        return None
    ends = [p.end for p in partitions(connection, "events")]
    return (max(ends).date() - today).days - 1 if ends else -1


def drop_day(connection: Connection, events_partition: Partition) -> None:
    """Drop one day (or the partition of everything before a day) from every partitioned table, with what
    pointed at its rows: the hits on its messages, the idempotency keys of its events. The caller checked that
    no event of that day or before is still wanted."""
    suffix = events_partition.name.removeprefix("events_")
    hits = f"DELETE FROM tracking_hits WHERE message_id IN (SELECT id FROM messages_{suffix})"  # noqa: S608 (ours)
    connection.execute(text(hits))
    connection.execute(text("DELETE FROM idempotency_keys WHERE created_at < :end"), {"end": events_partition.end})
    for table in ("messages", "event_status_changes", "events"):
        connection.execute(text(f"DROP TABLE IF EXISTS {table}_{suffix}"))
