"""``envoi bench --workers``: the command runs end to end on PostgreSQL and reports what a user reads off it;
its CPU accounting and arithmetic are checked on their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from envoi.bench.cpu import CpuMeter
from envoi.bench.main import parse_worker_counts
from envoi.bench.scaling_report import derive, explanation
from tests.conftest import PG_ADMIN_URL


@pytest.mark.slow
def test_bench_workers_quick_drains_every_event_once_per_count_and_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "scaling.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")} | {"ENVOI_BENCH_PG_URL": PG_ADMIN_URL}
    done = subprocess.run(
        [sys.executable, "-m", "envoi", "bench", "--workers", "1,2", "--quick", "--out", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "CPU ceiling" in done.stdout and "x 1 worker" in done.stdout

    figures = json.loads(out.read_text())["backends"]["postgresql"]
    assert [run["workers"] for run in figures["runs"]] == [1, 2]
    for run in figures["runs"]:
        assert run["exactly_once"], run
        assert run["messages"] == figures["events_per_run"]
        assert run["messages_per_s"] > 0 and run["ratio_to_1_worker"] > 0
        # Every process kind did real work during the drain, and the workers most of all.
        assert run["cpu_s"]["workers"] > 0 and run["cpu_s"]["postgres"] > 0 and run["cpu_s"]["sink"] > 0
        assert run["cpu_ms_per_message"]["workers"] > run["cpu_ms_per_message"]["api"]
    assert figures["runs"][0]["ratio_to_1_worker"] == 1.0


def test_cpu_meter_counts_a_busy_process_and_not_an_idle_one(tmp_path: Path) -> None:
    spin = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(5)"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        time.sleep(0.2)  # both have started; the busy one is spinning
        meter = CpuMeter()
        meter.add("busy", [busy.pid])
        meter.add("idle", [idle.pid])
        meter.start()
        time.sleep(1.0)
        used = meter.stop()
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    assert 0.1 <= used["busy"] <= 0.5
    assert used["idle"] < 0.05
    assert meter.machine_seconds >= used["busy"]


def test_worker_counts_always_include_one_worker_to_compare_with() -> None:
    assert parse_worker_counts("2,4") == [1, 2, 4]
    assert parse_worker_counts("4,1,2,2") == [1, 2, 4]
    with pytest.raises(SystemExit, match="1,2,4"):
        parse_worker_counts("one,two")
    with pytest.raises(SystemExit, match="between 1 and 32"):
        parse_worker_counts("0,2")


def test_ratios_cpu_per_message_and_the_ceiling_are_computed_from_the_runs() -> None:
    def run(workers: int, rate: float, worker_cpu: float) -> dict[str, Any]:
        messages = 1000
        return {
            "workers": workers,
            "messages": messages,
            "messages_per_s": rate,
            "drain_s": messages / rate,
            "cpu_s": {"workers": worker_cpu, "postgres": 0.2, "postgres_background": 0.0, "sink": 0.1, "api": 0.0},
            "other_programs_cpu_s": 0.0,
            "messages_missing": 0,
            "messages_sent_twice": 0,
            "events_not_processed": 0,
        }

    figures: dict[str, Any] = {
        "cores": 2,
        "settings": {
            "worker_batch_size": 50,
            "worker_concurrency": 4,
            "smtp_connections": 16,
            "database_pool_size": 10,
        },
        "runs": [run(1, 1000.0, 0.7), run(2, 1800.0, 0.8)],
    }
    derive(figures)
    one, two = figures["runs"]
    assert one["cpu_ms_per_message"]["workers"] == 0.7  # 0.7 s over 1,000 messages
    assert one["cpu_ms_per_message_total"] == 1.0
    assert one["cpu_ceiling_messages_per_s"] == 2000.0  # 2 cores / 1 ms per message
    assert one["cores_used_by_workers"] == 0.7
    assert two["ratio_to_1_worker"] == 1.8 and two["exactly_once"]
    # CPU-bound, one worker is held to its one core (1 / 0.7 ms); two are held by the 2 cores (2 / 1.1 ms).
    assert one["cpu_bound_messages_per_s"] == 1428.6
    assert two["cpu_bound_messages_per_s"] == 1818.2 and two["cpu_bound_ratio"] == 1.27
    said = " ".join(explanation(figures))
    assert "1,818 msg/s" in said and "1.27x" in said and "not comparable" not in said
