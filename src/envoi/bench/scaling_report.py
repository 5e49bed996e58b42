"""The scaling run's tables and its explanation: throughput per worker count, and CPU per message by process."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# (key in cpu_s, column label) in the order a message meets them; the harness is the benchmark itself.
KINDS = [
    ("workers", "workers"),
    ("postgres", "PostgreSQL backends"),
    ("postgres_background", "PG background*"),
    ("sink", "SMTP sink"),
    ("api", "API (idle)"),
    ("harness", "harness"),
]
OURS = ("workers", "postgres", "postgres_background", "sink", "api")  # what a drain costs without the bench


def per_message_ms(run: dict[str, Any]) -> dict[str, float]:
    return {kind: 1000 * seconds / run["messages"] for kind, seconds in run["cpu_s"].items()}


def derive(figures: dict[str, Any]) -> None:
    """Add to each run what the tables show: the ratio to one worker, CPU per message, the ceiling the CPU sets
    on this machine (its cores divided by the CPU one message costs, all processes together), and the ratio to
    one worker that CPU alone would allow (see best_case)."""
    runs = figures["runs"]
    base = next((r["messages_per_s"] for r in runs if r["workers"] == 1), None)
    cores = figures["cores"] or 1
    for run in runs:
        per_message = per_message_ms(run)
        run["cpu_ms_per_message"] = {kind: round(ms, 3) for kind, ms in per_message.items()}
        total = sum(per_message[kind] for kind in OURS if kind in per_message)
        run["cpu_ms_per_message_total"] = round(total, 3)
        span = run.get("metered_s") or run["drain_s"]  # CPU was counted from the release to the last record
        run["cores_used_by_workers"] = round(run["cpu_s"]["workers"] / span, 2) if span else 0.0
        run["cores_used_in_all"] = round(sum(run["cpu_s"][k] for k in OURS) / span, 2) if span else 0.0
        run["other_programs_cores"] = round(run["other_programs_cpu_s"] / span, 2) if span else 0.0
        run["cpu_ceiling_messages_per_s"] = round(cores * 1000 / total, 1) if total else 0.0
        run["ratio_to_1_worker"] = round(run["messages_per_s"] / base, 2) if base else None
    one = next((r for r in runs if r["workers"] == 1), None)
    for run in runs:
        ceiling = best_case(one, cores) if one else 0.0
        run["cpu_bound_messages_per_s"] = round(best_case(run, cores), 1)
        run["cpu_bound_ratio"] = round(best_case(run, cores) / ceiling, 2) if ceiling else None
        run["exactly_once"] = (
            run["messages_missing"] == 0 and run["messages_sent_twice"] == 0 and run["events_not_processed"] == 0
        )


def throughput_table(figures: dict[str, Any]) -> Table:
    grid = Table(
        title=f"End to end on {figures['database']}, {figures['events_per_run']:,} events per run, "
        f"{figures['cores']} cores"
    )
    for label in (
        "workers",
        "msg/s",
        "x 1 worker",
        "drain s",
        "each sent once",
        "cores busy: workers / all ours",
        "load 1m before → after",
        "other programs: cores",
    ):
        grid.add_column(label, justify="right")
    for run in figures["runs"]:
        ratio = run.get("ratio_to_1_worker")
        once = (
            "yes"
            if run["exactly_once"]
            else (
                f"NO: {run['messages_missing']} missing, {run['messages_sent_twice']} twice, "
                f"{run['events_not_processed']} unprocessed"
            )
        )
        grid.add_row(
            str(run["workers"]),
            f"{run['messages_per_s']:,.0f}",
            f"{ratio:.2f}x" if ratio is not None else "-",
            f"{run['drain_s']:.1f}",
            once,
            f"{run['cores_used_by_workers']:.2f} / {run['cores_used_in_all']:.2f}",
            f"{run['load_1m_before']:.2f} → {run['load_1m_after']:.2f}",
            f"{run['other_programs_cores']:.2f}",
        )
    return grid


def cpu_table(figures: dict[str, Any]) -> Table:
    grid = Table(title="CPU per message, milliseconds (utime + stime from /proc, over the drain)")
    grid.add_column("workers", justify="right")
    for _kind, label in KINDS:
        grid.add_column(label, justify="right")
    grid.add_column("total (no harness)", justify="right")
    grid.add_column("CPU ceiling msg/s", justify="right")
    grid.add_column("CPU-bound best x 1 worker", justify="right")
    for run in figures["runs"]:
        ms = run["cpu_ms_per_message"]
        grid.add_row(
            str(run["workers"]),
            *(f"{ms.get(kind, 0.0):.3f}" for kind, _label in KINDS),
            f"{run['cpu_ms_per_message_total']:.3f}",
            f"{run['cpu_ceiling_messages_per_s']:,.0f}",
            f"{run['cpu_bound_ratio']:.2f}x" if run.get("cpu_bound_ratio") else "-",
        )
    return grid


def explanation(figures: dict[str, Any]) -> list[str]:
    """Plain sentences under the tables: what bounds the drain on this machine."""
    runs = {run["workers"]: run for run in figures["runs"]}
    cores = figures["cores"]
    settings = figures["settings"]
    lines = [
        "msg/s: events / (last arrival - first arrival at the SMTP sink); each run drains a queue filled while no "
        "worker ran, released at once when every worker was up.",
        "* PG background: the server's WAL writer, checkpointer and background writer; they serve every database "
        "on the server, so other programs' writes land there too.",
        f"Worker settings: batch {settings['worker_batch_size']}, {settings['worker_concurrency']} batches in "
        f"flight, {settings['smtp_connections']} SMTP connections, pool {settings['database_pool_size']} "
        "(ENVOI_WORKER_BATCH_SIZE, ENVOI_WORKER_CONCURRENCY, ENVOI_SMTP_CONNECTIONS).",
    ]
    one = runs.get(1)
    if one is None:
        return lines
    ms = one["cpu_ms_per_message"]
    lines.append(
        f"One worker kept {one['cores_used_by_workers']:.2f} of a core busy (a Python process runs on one core at a "
        f"time); per message it spent {ms['workers']:.2f} ms of CPU, PostgreSQL "
        f"{ms['postgres'] + ms.get('postgres_background', 0.0):.2f} ms, the sink {ms['sink']:.2f} ms."
    )
    for count, run in sorted(runs.items()):
        if count == 1:
            continue
        lines.append(
            f"{count} workers, if CPU is all that bounds them: at most min({min(count, cores)} busy cores x 1000 / "
            f"{run['cpu_ms_per_message']['workers']:.2f} ms of worker CPU, {cores} cores x 1000 / "
            f"{run['cpu_ms_per_message_total']:.2f} ms of all processes) = {best_case(run, cores):,.0f} msg/s, "
            f"against at most {best_case(one, cores):,.0f} for one worker: {run['cpu_bound_ratio']:.2f}x."
        )
    lines.append(
        "PostgreSQL and the sink take their share of the same cores, so on this machine the ratio stays under "
        f"{cores} however cheap the worker gets; it nears the number of workers only where they run elsewhere."
    )
    busy = max(run["other_programs_cores"] for run in runs.values())
    if busy > 0.2 * cores:
        lines.append(
            f"[yellow]Other programs used up to {busy:.2f} of the {cores} cores during these runs: the msg/s and "
            "ratios above are not comparable; the CPU per message is. Run again on a quiet machine.[/]"
        )
    return lines


def best_case(run: dict[str, Any], cores: int) -> float:
    """The most a run's workers could deliver if every process were CPU-bound: each worker on its own core
    (or fewer, if there are fewer cores), and every process together on all the cores."""
    per_worker = run["cpu_ms_per_message"]["workers"]
    if not per_worker or not run["cpu_ms_per_message_total"]:
        return 0.0
    workers = min(run["workers"], cores)
    return float(min(workers * 1000 / per_worker, cores * 1000 / run["cpu_ms_per_message_total"]))
