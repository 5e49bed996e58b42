"""CPU time by process kind, from /proc: what each part of a delivery costs, whatever else runs on the machine.

Wall-clock throughput on a shared machine moves with the neighbours' load; the CPU seconds a process used
do not, so the scaling run reports both (see envoi.bench.scaling).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process in seconds; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent on anything but idle and I/O wait, since boot."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def load_average() -> float:
    """The 1-minute load average: how many processes wanted a core, over the last minute."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def postgres_pids(conn: psycopg.Connection[Any]) -> tuple[set[int], set[int]]:
    """(the server processes serving ``conn``'s database, the server's own background processes).
    ``conn`` itself is left out; background processes work for every database of the server."""
    rows = conn.execute(
        "SELECT pid, coalesce(datname = current_database() AND backend_type = 'client backend', false) "
        "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND (datname = current_database() OR datname IS NULL)"
    ).fetchall()
    return {int(pid) for pid, ours in rows if ours}, {int(pid) for pid, ours in rows if not ours}


@dataclass
class CpuMeter:
    """CPU seconds per kind of process between ``start`` and ``stop``. A process first seen after ``start``
    counts from its birth (a connection the pool opened mid-run belongs to the run)."""

    kinds: dict[str, set[int]] = field(default_factory=dict)
    _baseline: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _machine: float = 0.0
    _started: float = 0.0
    machine_seconds: float = 0.0
    wall_seconds: float = 0.0

    def add(self, kind: str, pids: Iterable[int]) -> None:
        self.kinds.setdefault(kind, set()).update(pids)
        self.sample()

    def start(self) -> None:
        self._machine, self._started = machine_busy_seconds(), time.monotonic()
        for pids in self.kinds.values():
            for pid in pids:
                self._baseline[pid] = process_cpu_seconds(pid) or 0.0
        self._last = dict(self._baseline)

    def sample(self) -> None:
        """Read every process now: one that exits before ``stop`` keeps what it had used by its last sample."""
        for pids in self.kinds.values():
            for pid in pids:
                if (seconds := process_cpu_seconds(pid)) is not None:
                    self._last[pid] = seconds
                    self._baseline.setdefault(pid, 0.0)

    def stop(self) -> dict[str, float]:
        self.sample()
        self.machine_seconds = machine_busy_seconds() - self._machine
        self.wall_seconds = time.monotonic() - self._started
        return {
            kind: round(sum(self._last.get(pid, 0.0) - self._baseline.get(pid, 0.0) for pid in pids), 3)
            for kind, pids in self.kinds.items()
        }
