"""The benchmark's table and its JSON record (machine, commit, versions, every figure)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.table import Table

# (key, label, unit, baseline key or None, target as text)
ROWS: list[tuple[str, str, str, str | None, str]] = [
    ("insert_baseline_rows_per_s", "raw insert baseline", "rows/s", None, ""),
    ("smtp_baseline_messages_per_s", "raw SMTP baseline", "msg/s", None, ""),
    (
        "batch_ingest_events_per_s",
        "batch ingest (1,000/call)",
        "events/s",
        "insert_baseline_rows_per_s",
        "≥ 50,000 and ≥ 50 %",
    ),
    ("single_ingest_events_per_s", "single ingest, 64 clients", "events/s", "insert_baseline_rows_per_s", "≥ 5,000"),
    ("single_ingest_p99_ms", "single ingest p99", "ms", None, "≤ 50"),
    ("e2e_messages_per_s", "end to end, full load", "msg/s", "smtp_baseline_messages_per_s", "≥ 1,000 and ≥ 50 %"),
    ("e2e_p50_ms", "e2e p50, full load", "ms", None, ""),
    ("e2e_p99_ms", "e2e p99, full load", "ms", None, ""),
    ("e2e_p50_ms_half_load", "e2e p50, half load", "ms", None, ""),
    ("e2e_p99_ms_half_load", "e2e p99, half load", "ms", None, "≤ 100"),
    ("peak_rss_mb", "peak RSS of any process", "MB", None, "≤ 300"),
]
PACKAGES = ("envoi", "fastapi", "starlette", "uvicorn", "sqlalchemy", "aiosqlite", "psycopg", "aiosmtplib", "aiosmtpd")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def table(results: dict[str, dict[str, Any]]) -> Table:
    grid = Table(title="Envoi benchmark")
    grid.add_column("figure")
    grid.add_column("unit")
    for backend in results:
        grid.add_column(backend, justify="right")
        grid.add_column("vs baseline", justify="right")
    grid.add_column("target")
    for key, label, unit, baseline, target in ROWS:
        cells = [label, unit]
        for figures in results.values():
            value = figures.get(key)
            cells.append(_fmt(value) if isinstance(value, (int, float)) else "-")
            base = figures.get(baseline) if baseline else None
            cells.append(f"{value / base:.0%}" if base and isinstance(value, (int, float)) else "")
        grid.add_row(*cells, target)
    return grid


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        memory_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024**2, 1),
        "kernel": platform.release(),
    }


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def record(results: dict[str, dict[str, Any]], *, mode: str) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "machine": _machine(),
        "commit": _commit(),
        "versions": _versions(),
        "backends": results,
    }


def write(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n")
