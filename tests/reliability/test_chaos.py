"""Workers SIGKILLed mid-batch and the SMTP relay down, against real processes on PostgreSQL: the chaos run
of ``envoi bench --quick --chaos``, with its promises asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from envoi.bench.chaos import CHAOS_QUICK, ChaosRun
from envoi.bench.chaos_report import Window, lease_lost_events, messages_per_event, sink_figures, summary
from tests.conftest import PG_ADMIN_URL


@pytest.mark.slow
async def test_killed_workers_and_a_relay_outage_lose_nothing_and_resend_within_the_window(tmp_path: Path) -> None:
    figures = await ChaosRun(CHAOS_QUICK, tmp_path / "chaos", PG_ADMIN_URL).run()
    said = summary(figures)
    print(said, *figures["timeline"], sep="\n")

    assert figures["kills"] == CHAOS_QUICK.kills and figures["kills_mid_batch"] > 0, said
    assert figures["sink_down_s"] >= CHAOS_QUICK.sink_down_seconds, said
    assert not figures["timed_out"], said
    assert figures["events_stored"] == CHAOS_QUICK.events, said
    assert figures["events_not_processed"] == 0, said
    assert figures["events_left_processing"] == 0, said
    assert figures["processed_never_at_sink"] == 0, said
    assert figures["duplicate_messages"] <= figures["duplicate_bound"], said
    assert figures["duplicate_messages"] <= figures["in_flight_window"] + figures["lease_lost_events"], said
    assert figures["passed"], said


def test_duplicates_are_counted_per_event_and_checked_against_the_window(tmp_path: Path) -> None:
    log = tmp_path / "arrivals.log"
    log.write_text("1.0 60000000 7\n1.1 60000001 8\n1.2 60000000 7\n1.3 60000000 7\n1.4 -1 -1\n")
    per_event = messages_per_event(log)
    figures = sink_figures(per_event, processed_ids={7, 8, 9})
    assert figures == {
        "messages_at_sink": 5,
        "duplicate_messages": 2,  # event 7 arrived three times
        "events_sent_more_than_once": 1,
        "processed_never_at_sink": 1,  # event 9: processed, but the sink never saw it
        "messages_not_matched": 1,
    }
    window = Window(kills=10, outages=1, workers=3, batch_size=50, concurrency=4, smtp_connections=16)
    assert window.messages == 10 * 4 * 50 + 3 * 16

    worker_log = tmp_path / "worker-0.log"
    worker_log.write_text('{"event": "delivery.lease_lost", "events": 3}\n{"event": "delivery.batch_recorded"}\n')
    assert lease_lost_events([worker_log]) == 3
