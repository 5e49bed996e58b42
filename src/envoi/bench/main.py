"""``envoi bench``: run each backend, print one table, write the JSON records."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from envoi.bench.chaos import CHAOS_FULL, CHAOS_QUICK, ChaosRun
from envoi.bench.chaos_report import summary
from envoi.bench.chaos_report import table as chaos_table
from envoi.bench.report import record, table, write
from envoi.bench.runner import FULL, QUICK, Run
from envoi.bench.scaling import SCALING_FULL, SCALING_QUICK, ScalingRun
from envoi.bench.scaling_report import cpu_table, derive, explanation, throughput_table

BACKENDS = ("sqlite", "postgresql")


def _progress(console: Console, amount: str) -> Progress:
    """The bars every mode shows: what runs, how far (``amount``, a column's format), for how long."""
    columns = TextColumn("{task.description}"), BarColumn(), TextColumn(amount), TimeElapsedColumn()
    return Progress(*columns, console=console)


def run_bench(*, quick: bool, backends: list[str], out: Path | None, pg_admin_url: str, console: Console) -> None:
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise SystemExit(f"unknown backend {unknown[0]!r}: use sqlite or postgresql")
    sizes = QUICK if quick else FULL
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="envoi-bench-") as tmp,
        _progress(console, "{task.percentage:>3.0f}%") as progress,
    ):
        for backend in backends:
            run = Run(backend, sizes, Path(tmp) / backend, pg_admin_url, progress)
            results[backend] = asyncio.run(run.run())
    Console(width=max(console.width, 140)).print(table(results))  # the table is unreadable folded to 80
    mode = "quick" if quick else "full"
    if out is not None:
        write(out, record(results, mode=mode))
        console.print(f"Wrote {out}")
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    for backend, figures in results.items():
        path = Path("benchmarks/results") / f"{stamp}-{backend}{'-quick' if quick else ''}.json"
        write(path, record({backend: figures}, mode=mode))
        console.print(f"Wrote {path}")


def run_chaos(*, quick: bool, out: Path | None, pg_admin_url: str, console: Console) -> None:
    """Workers killed mid-batch and the SMTP sink down, on PostgreSQL; exits 1 if a promise was broken."""
    sizes = CHAOS_QUICK if quick else CHAOS_FULL
    label = f"[postgresql] chaos: {sizes.events:,} events, {sizes.kills} kills, sink down {sizes.sink_down_seconds:g} s"
    with (
        tempfile.TemporaryDirectory(prefix="envoi-chaos-") as tmp,
        _progress(console, "{task.completed:,.0f} processed") as progress,
    ):
        task = progress.add_task(label, total=sizes.events)
        run = ChaosRun(sizes, Path(tmp), pg_admin_url, lambda done, _total: progress.update(task, completed=done))
        figures = asyncio.run(run.run())
    Console(width=max(console.width, 120)).print(chaos_table(figures))
    mode = "chaos-quick" if quick else "chaos"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    path = out or Path("benchmarks/results") / f"{stamp}-postgresql-{mode}.json"
    write(path, record({"postgresql": figures}, mode=mode))
    console.print(f"Wrote {path}")
    if not figures["passed"]:
        console.print(f"[red]Broken: {summary(figures)}[/]")
        raise SystemExit(1)


def parse_worker_counts(text: str) -> list[int]:
    """``1,2,4`` -> [1, 2, 4]; one worker is measured too when missing, as the ratios are against it."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--workers takes counts separated by commas, such as 1,2,4: not {text!r}") from None
    if not counts or any(c < 1 or c > 32 for c in counts):
        raise SystemExit(f"--workers: each count must be between 1 and 32, got {text!r}")
    return sorted(set(counts) | {1})


def run_scaling(
    *, quick: bool, counts: list[int], out: Path | None, pg_admin_url: str, profile_dir: Path | None, console: Console
) -> dict[str, Any]:
    """End-to-end throughput on PostgreSQL per number of ``envoi worker`` processes, with CPU per process kind."""
    sizes = SCALING_QUICK if quick else SCALING_FULL
    with (
        tempfile.TemporaryDirectory(prefix="envoi-scaling-") as tmp,
        _progress(console, "{task.completed:,.0f}/{task.total:,.0f}") as progress,
    ):
        run = ScalingRun(sizes, counts, Path(tmp), pg_admin_url, progress, profile_dir)
        figures = asyncio.run(run.run())
    derive(figures)
    wide = Console(width=max(console.width, 150))  # the tables are unreadable folded to 80
    wide.print(throughput_table(figures))
    wide.print(cpu_table(figures))
    for line in explanation(figures):
        wide.print(line, highlight=False)
    mode = "workers-quick" if quick else "workers"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    path = out or Path("benchmarks/results") / f"{stamp}-postgresql-{mode}.json"
    write(path, record({"postgresql": figures}, mode=mode))
    console.print(f"Wrote {path}")
    if profile_dir is not None:
        console.print(f"Worker profiles (cProfile) in {profile_dir}: python -m pstats <file>, then sort cumtime")
    return figures
