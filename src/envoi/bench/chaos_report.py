"""What a chaos run found: messages sent twice against the in-flight window, events lost, and the verdict.

The in-flight window, from the code (envoi.delivery.worker, envoi.channels.smtp):
- A worker sends a batch between the commit of its claim and the commit of its record. Killed in between,
  its events stay ``processing`` under its lease and are sent again by whichever worker claims them when the
  lease ends. A worker has at most ``worker_concurrency`` batches of ``worker_batch_size`` events in hand:
  each SIGKILL can cause at most concurrency x batch size duplicates.
- A relay that goes down can have accepted a message (the sink logs it before answering 250) whose reply the
  worker never read: the worker retries it. Each SMTP connection carries one message at a time: each outage
  can cause at most workers x ``smtp_connections`` duplicates.
The run checks a tighter bound it measures: instead of concurrency x batch size per kill, the events the
killed worker actually held under its lease when it died (counted right after the kill).
- A batch slower than its lease is taken over and sent again; its first worker records nothing and logs
  ``delivery.lease_lost``. That is not part of the window (a lease is set far longer than a batch takes):
  the run counts those events from the workers' logs and adds them to the bound it checks, and reports them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table


@dataclass(frozen=True)
class Window:
    kills: int
    outages: int
    workers: int
    batch_size: int
    concurrency: int
    smtp_connections: int

    @property
    def outage_messages(self) -> int:
        return self.outages * self.workers * self.smtp_connections

    @property
    def messages(self) -> int:
        return self.kills * self.concurrency * self.batch_size + self.outage_messages

    def explain(self) -> str:
        return (
            f"{self.kills} kills x {self.concurrency} batches x {self.batch_size} events"
            f" + {self.outages} outage x {self.workers} workers x {self.smtp_connections} connections"
        )


def messages_per_event(arrivals_log: Path) -> Counter[int]:
    """How many messages the sink accepted for each event id (from Message-ID); -1 for unmatched messages."""
    counts: Counter[int] = Counter()
    with arrivals_log.open() as log:
        for line in log:
            parts = line.split()
            if len(parts) == 3:
                counts[int(parts[2])] += 1
    return counts


def lease_lost_events(logs: list[Path]) -> int:
    """Events whose batch outlived its lease, from the workers' JSON logs."""
    lost = 0
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if "delivery.lease_lost" in line:
                try:
                    lost += int(json.loads(line).get("events", 0))
                except (ValueError, AttributeError):
                    continue
    return lost


def sink_figures(per_event: Counter[int], processed_ids: set[int]) -> dict[str, int]:
    return {
        "messages_at_sink": sum(per_event.values()),
        "duplicate_messages": sum(n - 1 for event_id, n in per_event.items() if n > 1 and event_id > 0),
        "events_sent_more_than_once": sum(1 for event_id, n in per_event.items() if n > 1 and event_id > 0),
        "processed_never_at_sink": len(processed_ids - per_event.keys()),
        "messages_not_matched": per_event.get(-1, 0),
    }


def failures(figures: dict[str, Any]) -> list[str]:
    """Every promise the run broke, in words; empty when it kept them all."""
    found = []
    if figures["timed_out"]:
        found.append(f"the queue was not empty after {figures['timeout_s']:.0f} s")
    if figures["events_stored"] != figures["events"]:
        found.append(f"{figures['events_stored']} events stored for {figures['events']} accepted")
    if figures["events_not_processed"]:
        found.append(f"{figures['events_not_processed']} events not processed: {figures['statuses']}")
    if figures["events_left_processing"]:
        found.append(f"{figures['events_left_processing']} events left processing")
    if figures["processed_never_at_sink"]:
        found.append(f"{figures['processed_never_at_sink']} processed events never reached the sink")
    if figures["duplicate_messages"] > figures["duplicate_bound"]:
        found.append(f"{figures['duplicate_messages']} duplicates, over the bound of {figures['duplicate_bound']}")
    return found


def summary(figures: dict[str, Any]) -> str:
    """One line, for assertion messages and logs."""
    return (
        f"{figures['events']} events, {figures['kills']} kills ({figures['kills_mid_batch']} mid-batch, "
        f"{figures['events_held_by_killed_workers']} events held), sink down {figures['sink_down_s']:.1f} s: "
        f"{figures['events_not_processed']} not processed, {figures['events_left_processing']} left processing, "
        f"{figures['duplicate_messages']} duplicates (bound {figures['duplicate_bound']}), "
        f"{figures['processed_never_at_sink']} never at the sink, {figures['elapsed_s']:.0f} s"
    )


def table(figures: dict[str, Any]) -> Table:
    grid = Table(title="Envoi chaos run (PostgreSQL)", caption=figures["shortened"])
    grid.add_column("figure")
    grid.add_column("value", justify="right")
    grid.add_column("must be")
    rows = [
        ("events pushed through the API", f"{figures['events']:,}", ""),
        ("worker processes", str(figures["workers"]), ""),
        ("SIGKILLs (of a worker mid-batch)", f"{figures['kills']} ({figures['kills_mid_batch']})", ""),
        ("events held by killed workers", f"{figures['events_held_by_killed_workers']:,}", ""),
        ("SMTP sink down", f"{figures['sink_down_s']:.1f} s", ""),
        ("events not processed", f"{figures['events_not_processed']:,}", "0"),
        ("events left processing", f"{figures['events_left_processing']:,}", "0"),
        ("longest an event showed processing past its lease", f"{figures['longest_expired_lease_s']:.1f} s", ""),
        ("processed events never at the sink", f"{figures['processed_never_at_sink']:,}", "0"),
        ("messages at the sink", f"{figures['messages_at_sink']:,}", ""),
        (
            "duplicate messages (events sent more than once)",
            f"{figures['duplicate_messages']:,} ({figures['events_sent_more_than_once']:,})",
            f"≤ {figures['duplicate_bound']:,} (held by killed workers + outage connections)",
        ),
        ("in-flight window (any such run)", f"{figures['in_flight_window']:,}", figures["in_flight_window_is"]),
        ("events of batches that outlived their lease", f"{figures['lease_lost_events']:,}", "0 expected"),
        ("ingest batches refused and retried", f"{figures['ingest_refusals']:,}", ""),
        ("elapsed", f"{figures['elapsed_s']:.0f} s", ""),
        ("verdict", "kept" if figures["passed"] else "BROKEN: " + "; ".join(figures["failures"]), ""),
    ]
    for row in rows:
        grid.add_row(*row)
    return grid
