"""The harness's own arithmetic and records: what the benchmark reports must be computed right."""

from __future__ import annotations

from pathlib import Path

from envoi.bench.httpload import percentile
from envoi.bench.report import record, table
from envoi.bench.scenarios import end_to_end, read_arrivals


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 or percentile(values, 50) == 51.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_end_to_end_throughput_and_latency_come_from_accept_and_arrival_times() -> None:
    accepted = {seq: 100.0 + seq * 0.01 for seq in range(100)}  # 100 events over one second
    arrivals = {seq: t + 0.020 for seq, t in accepted.items()}  # each delivered 20 ms later
    result = end_to_end(accepted, arrivals)
    assert round(result.p50_ms) == 20 and round(result.p99_ms) == 20
    assert round(result.messages_per_s) == round(100 / (0.99 + 0.02))


def test_sink_log_is_read_back_by_sequence(tmp_path: Path) -> None:
    log = tmp_path / "arrivals.log"
    log.write_text("1700000000.500000 42\n1700000000.750000 -1\n")
    assert read_arrivals(log) == {42: 1700000000.5, -1: 1700000000.75}


def test_record_carries_machine_commit_versions_and_every_figure() -> None:
    figures = {"e2e_messages_per_s": 1000.0, "smtp_baseline_messages_per_s": 2000.0}
    content = record({"sqlite": figures}, mode="quick")
    assert content["backends"]["sqlite"] == figures
    assert content["machine"]["cores"] and content["versions"]["python"] and content["commit"]
    rendered = table({"sqlite": figures})
    assert rendered.row_count > 5
